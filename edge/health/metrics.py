"""Prometheus metrics through ``prometheus_client``, served at ``http://127.0.0.1:{port}/metrics``.

Naming follows Prometheus' rules: base units in the name (``_seconds``, ``_bytes``, ``_ratio``),
counters end in ``_total``, durations are histograms in seconds, ``edge_build_info`` carries the
version as labels. Two kinds of metric:

* observed as they happen: ``edge_inference_duration_seconds{camera}`` (frames the detector ran on)
  and ``edge_pipeline_step_duration_seconds{camera}`` (a frame's whole step: detect, checks, rules),
  fed by ``AgentMetrics.observe_step`` from each camera's rules thread;
* read at scrape time from ``MetricsInputs`` (gathered by the agent's ``MetricsSource``): the box
  (CPU, load, temperature, memory, disk; from the last health sample), the outbox, the broker
  connection, events by kind, each camera's frame counters, online and tamper state, each zone's
  objects, occupancy, density and level of service, and the enclosure door.

The registry is the agent's own (no global default registry); the process and Python platform
collectors of ``prometheus_client`` are registered in it too (``process_*``, ``python_info``).
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Histogram, Info, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.registry import Collector

from edge import __version__
from edge.config.health import MetricsConfig
from edge.health.tamper import FAULTS
from edge.integrations.model import LOS_LEVELS, BoxState

log = logging.getLogger(__name__)

#: Seconds. Detector latency on a Pi-class CPU runs from a few ms (motion backend) to ~1 s (large models).
DURATION_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
#: The stages of a frame's step in ``StepResult.timing_ms`` (edge.agent.pipeline): detection (or the
#: gate's decision), tamper checks, tracker + rules. Other keys there are parts of these or spans across them.
STEP_STAGES = frozenset({"detect", "checks", "analytics"})


@dataclass(frozen=True, slots=True)
class CameraCounters:
    """A camera's frame counters since it was started (a config reload starts it again)."""

    camera_id: str
    captured: int
    processed: int
    dropped: int  # overwritten in the one-slot capture buffer
    skipped: int  # processed without running the detector (motion gating)
    errors: int  # frames a stage failed on
    model_output: Mapping[str, Any] | None = None  # the detector's output guard (None: model-free backend)


@dataclass(frozen=True, slots=True)
class MetricsInputs:
    """Everything the scrape-time metrics are read from."""

    health: Mapping[str, Any] | None  # the last device_health payload (system readings)
    box: BoxState
    cameras: tuple[CameraCounters, ...]
    outbox: Mapping[str, Any]  # Outbox.stats()
    uplink: Mapping[str, Any] | None  # Uplink.stats(); None without a broker
    events: Mapping[str, int]  # accepted events by kind, and "rejected"
    config_hash: str = ""


def _num(v: Any) -> float | None:
    """A finite number (bools count as 0/1), else None: a missing reading is left out, never 0."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) and v == v and abs(v) != float("inf"):
        return float(v)
    return None


def _gauge(
    name: str, doc: str, samples: Iterable[tuple[tuple[str, ...], Any]], labels: tuple[str, ...] = ()
) -> Metric | None:
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    n = 0
    for values, v in samples:
        x = _num(v)
        if x is not None:
            g.add_metric(list(values), x)
            n += 1
    return g if n else None


def _counter(
    name: str, doc: str, samples: Iterable[tuple[tuple[str, ...], Any]], labels: tuple[str, ...] = ()
) -> Metric | None:
    c = CounterMetricFamily(name, doc, labels=list(labels))
    n = 0
    for values, v in samples:
        x = _num(v)
        if x is not None:
            c.add_metric(list(values), x)
            n += 1
    return c if n else None


def system_metrics(health: Mapping[str, Any]) -> Iterator[Metric | None]:
    cpu = _num(health.get("cpu_percent"))
    yield _gauge(
        "edge_cpu_usage_ratio",
        "CPU busy fraction (0-1) at the last health sample.",
        [((), None if cpu is None else cpu / 100.0)],
    )
    load = health.get("load") or []
    yield _gauge(
        "edge_load_average",
        "System load average.",
        [((w,), v) for w, v in zip(("1m", "5m", "15m"), load, strict=False)],
        ("window",),
    )
    yield _gauge("edge_soc_temperature_celsius", "Hottest thermal zone.", [((), health.get("temperature_c"))])
    thr = health.get("throttled") or {}
    yield _gauge(
        "edge_throttled",
        "Raspberry Pi firmware throttling flags (1 = set).",
        [((k,), v) for k, v in thr.items() if isinstance(v, bool)],
        ("flag",),
    )
    mem = health.get("memory") or {}
    yield _gauge("edge_memory_available_bytes", "Available memory.", [((), mem.get("available_bytes"))])
    yield _gauge("edge_memory_total_bytes", "Total memory.", [((), mem.get("total_bytes"))])
    disk = health.get("disk") or {}
    yield _gauge("edge_disk_free_bytes", "Free space on the data filesystem.", [((), disk.get("free_bytes"))])
    yield _gauge("edge_disk_total_bytes", "Size of the data filesystem.", [((), disk.get("total_bytes"))])
    yield _gauge(
        "edge_system_uptime_seconds", "Seconds since the box booted.", [((), health.get("uptime_s"))]
    )


def outbox_metrics(ob: Mapping[str, Any]) -> Iterator[Metric | None]:
    yield _gauge(
        "edge_outbox_messages", "Messages waiting in the outbox for the broker.", [((), ob.get("pending"))]
    )
    yield _gauge("edge_outbox_bytes", "Bytes of messages waiting in the outbox.", [((), ob.get("bytes"))])
    yield _gauge("edge_outbox_limit_bytes", "The outbox's size cap in force.", [((), ob.get("limit_bytes"))])
    yield _gauge(
        "edge_outbox_oldest_age_seconds", "Age of the oldest message waiting.", [((), ob.get("oldest_age_s"))]
    )
    dropped = ob.get("dropped") or {}
    yield _counter(
        "edge_outbox_dropped",
        "Messages evicted or refused because the outbox was full, by priority (persisted across restarts).",
        [((str(p),), n) for p, n in dropped.items()],
        ("priority",),
    )
    yield _counter(
        "edge_outbox_write_failures",
        "Outbox writes the disk refused (full disk, I/O error).",
        [((), ob.get("write_failures"))],
    )


_UPLINK_COUNTERS = (
    ("sent", "edge_uplink_messages_sent", "Messages from the outbox handed to the broker connection."),
    (
        "acked",
        "edge_uplink_messages_acked",
        "Messages the broker acknowledged (then deleted from the outbox).",
    ),
    ("rejected", "edge_uplink_messages_rejected", "Messages the broker refused (kept in the outbox)."),
    ("reconnects", "edge_uplink_connects", "Successful connections to the broker."),
    ("connect_failures", "edge_uplink_connect_failures", "Failed or lost connection attempts."),
    ("fallback_sent", "edge_uplink_fallback_sent", "Alarms sent over the fallback link (cellular modem)."),
    ("latest_sent", "edge_uplink_state_messages_sent", "Retained state and discovery messages sent."),
)


def uplink_metrics(up: Mapping[str, Any]) -> Iterator[Metric | None]:
    yield _gauge(
        "edge_broker_connected", "1 when the MQTT broker connection is up.", [((), up.get("connected"))]
    )
    yield _gauge(
        "edge_broker_disconnected_seconds",
        "How long the broker has been unreachable (0 while connected).",
        [((), up.get("disconnected_for_s"))],
    )
    for key, name, doc in _UPLINK_COUNTERS:
        yield _counter(name, doc, [((), up.get(key))])
    yield _counter(
        "edge_uplink_commands",
        "Commands received, by outcome.",
        [((r,), up.get(f"commands_{r}")) for r in ("ok", "rejected", "rate_limited", "repeated", "dropped")],
        ("result",),
    )


def camera_metrics(inp: MetricsInputs) -> Iterator[Metric | None]:
    cams = inp.cameras
    for attr, doc in (
        ("captured", "Frames read from the camera."),
        ("processed", "Frames through the pipeline."),
        ("dropped", "Frames dropped by the capture buffer because the pipeline was busy."),
        ("skipped", "Frames processed without running the detector (motion gating)."),
    ):
        yield _counter(
            f"edge_camera_frames_{attr}", doc, [((c.camera_id,), getattr(c, attr)) for c in cams], ("camera",)
        )
    yield _counter(
        "edge_camera_pipeline_errors",
        "Frames a pipeline stage failed on.",
        [((c.camera_id,), c.errors) for c in cams],
        ("camera",),
    )
    states = inp.box.cameras
    yield _gauge(
        "edge_camera_online",
        "1 while the camera delivers frames.",
        [((c.camera_id,), c.online) for c in states],
        ("camera",),
    )
    yield _gauge(
        "edge_camera_tamper_active",
        "1 while a camera tamper fault is active (covered, defocused, moved, frozen, over/underexposed).",
        [((c.camera_id, f), f in c.faults) for c in states if c.tamper_checked for f in FAULTS],
        ("camera", "fault"),
    )
    guarded = [c for c in cams if c.model_output is not None]
    yield _gauge(
        "edge_camera_model_garbage",
        "1 while the camera's model gives only NaN/inf or absurd outputs (nothing reaches the rules).",
        [((c.camera_id,), c.model_output["state"] == "garbage") for c in guarded if c.model_output],
        ("camera",),
    )
    yield _counter(
        "edge_camera_model_rows_dropped",
        "Decoded detections the output guard dropped, by reason (non_finite, score_range, huge_box).",
        [
            ((c.camera_id, reason), n)
            for c in guarded
            if c.model_output
            for reason, n in dict(c.model_output["dropped_rows"]).items()
        ],
        ("camera", "reason"),
    )


def zone_metrics(box: BoxState) -> Iterator[Metric | None]:
    zones = [z for c in box.cameras for z in c.zones]
    key = ("camera", "zone")
    yield _gauge(
        "edge_zone_objects",
        "Objects the zone's rule counts in it now.",
        [((z.camera_id, z.zone_id), z.count) for z in zones],
        key,
    )
    by_class: list[tuple[tuple[str, ...], Any]] = []
    for z in zones:
        if z.count is None:
            continue
        for cls in dict.fromkeys([*z.classes, *z.counts]):  # watched classes always (0 too), others when seen
            by_class.append(((z.camera_id, z.zone_id, cls), z.counts.get(cls, 0)))
    yield _gauge("edge_zone_class_objects", "Objects in the zone now, by class.", by_class, (*key, "class"))
    yield _gauge(
        "edge_zone_occupancy_ratio",
        "Objects over capacity (bike bays; 1 = full).",
        [((z.camera_id, z.zone_id), z.occupancy) for z in zones],
        key,
    )
    yield _gauge(
        "edge_zone_density_persons_per_square_meter",
        "Crowd density in the zone (the crowd rule's smoothed count over the ground area).",
        [((z.camera_id, z.zone_id), z.density) for z in zones],
        key,
    )
    yield _gauge(
        "edge_zone_level_of_service",
        "Pedestrian level of service (Fruin): 1 for the current level, 0 for the others.",
        [
            ((z.camera_id, z.zone_id, lv), z.los == lv)
            for z in zones
            if z.los is not None
            for lv in LOS_LEVELS
        ],
        (*key, "level"),
    )
    yield _gauge(
        "edge_zone_active",
        "1 while the zone's schedule is in force.",
        [((z.camera_id, z.zone_id), z.active) for z in zones],
        key,
    )
    yield _gauge(
        "edge_zone_overflow",
        "1 while a bike bay is in overflow.",
        [((z.camera_id, z.zone_id), z.overflow) for z in zones],
        key,
    )
    yield _gauge(
        "edge_zone_violations",
        "Open parking violations in the zone.",
        [((z.camera_id, z.zone_id), z.violations) for z in zones],
        key,
    )


class AgentCollector(Collector):
    """Reads ``source()`` at each scrape and yields the metric families above."""

    def __init__(self, source: Callable[[], MetricsInputs]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # families depend on the running config; never collect at registration

    def collect(self) -> Iterator[Metric]:
        try:
            inp = self._source()
        except Exception:
            log.exception("gathering metrics failed")
            return
        parts: list[Iterable[Metric | None]] = []
        if inp.health:
            parts.append(system_metrics(inp.health))
        parts.append(outbox_metrics(inp.outbox))
        if inp.uplink is not None:
            parts.append(uplink_metrics(inp.uplink))
        ev = {k: v for k, v in inp.events.items() if k != "rejected"}
        parts.append(
            [
                _counter(
                    "edge_events",
                    "Events accepted into the outbox, by kind.",
                    [((k,), v) for k, v in sorted(ev.items())],
                    ("kind",),
                ),
                _counter(
                    "edge_events_rejected",
                    "Events dropped because their payload broke the schema (a bug).",
                    [((), inp.events.get("rejected", 0))],
                ),
                _gauge(
                    "edge_config_info",
                    "The site config in force (its hash).",
                    [((inp.config_hash,), 1)],
                    ("config_hash",),
                ),
                _gauge(
                    "edge_enclosure_door_open",
                    "1 while the enclosure door switch reads open.",
                    [((), inp.box.door_open)],
                ),
            ]
        )
        parts.append(camera_metrics(inp))
        parts.append(zone_metrics(inp.box))
        for part in parts:
            for m in part:
                if m is not None:
                    yield m


class AgentMetrics:
    """The agent's registry: per-frame histograms, build info, process metrics, and the scrape-time
    collector over ``source`` (set it with ``set_source``)."""

    def __init__(self, source: Callable[[], MetricsInputs] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.inference = Histogram(
            "edge_inference_duration_seconds",
            "Detector time per frame it ran on (pre-processing, inference, post-processing).",
            ["camera"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.step = Histogram(
            "edge_pipeline_step_duration_seconds",
            "A frame's whole pipeline step: detector (or motion gating), tamper checks, tracker and rules.",
            ["camera"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        Info("edge_build", "The agent's version.", registry=self.registry).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._collector: AgentCollector | None = None
        if source is not None:
            self.set_source(source)

    def set_source(self, source: Callable[[], MetricsInputs]) -> None:
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = AgentCollector(source)
        self.registry.register(self._collector)

    def observe_step(self, camera_id: str, timing_ms: Mapping[str, float], inferred: bool) -> None:
        """One processed frame: ``timing_ms`` is the step's stage times (``StepResult.timing_ms``). The
        step is its stages (``STEP_STAGES``); the parts of ``detect`` (pre, infer, post), the wait for
        the shared inference (queue) and the frame's latency are in it too but are not stages."""
        total = sum(v for k, v in timing_ms.items() if k in STEP_STAGES and v >= 0)
        self.step.labels(camera_id).observe(total / 1000.0)
        if inferred and "detect" in timing_ms:
            self.inference.labels(camera_id).observe(timing_ms["detect"] / 1000.0)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics %s", format % args)


class MetricsServer:
    """Serves ``metrics.registry`` at ``/metrics`` (404 elsewhere) on the configured loopback address."""

    def __init__(self, cfg: MetricsConfig, metrics: AgentMetrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        inner = make_wsgi_app(self.metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO", "") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"only /metrics is served\n"]
            return inner(environ, start_response)  # type: ignore[no-any-return]

        family = socket.getaddrinfo(self.cfg.host, self.cfg.port, type=socket.SOCK_STREAM)[0][0]

        class Server(ThreadingWSGIServer):
            address_family = family

        self._server = make_server(self.cfg.host, self.cfg.port, app, Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics endpoint http://%s:%d/metrics", self.cfg.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
