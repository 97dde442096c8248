"""Optional Prometheus text endpoint (``/metrics`` on 127.0.0.1) with the stdlib http.server.

It renders the latest ``device_health`` payload; ``provider`` is called per scrape, so
it must be cheap and thread-safe (the runner hands in a function returning its last record).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge.config.health import MetricsConfig

log = logging.getLogger(__name__)

_CAMERA_GAUGES = (
    ("fps_captured", "edge_camera_fps_captured", "Frames per second captured."),
    ("fps_processed", "edge_camera_fps_processed", "Frames per second through the pipeline."),
    ("fps_dropped", "edge_camera_fps_dropped", "Frames per second dropped by the capture buffer."),
    ("inference_p50_ms", "edge_camera_inference_p50_ms", "Median inference latency (ms)."),
    ("inference_p95_ms", "edge_camera_inference_p95_ms", "95th percentile inference latency (ms)."),
    (
        "skipped_fraction",
        "edge_camera_skipped_fraction",
        "Fraction of frames whose inference motion gating skipped.",
    ),
)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(payload: Mapping[str, Any]) -> str:
    """Prometheus text exposition (format 0.0.4) of a health payload; None values are left out."""
    lines: list[str] = []

    def gauge(name: str, help_: str, samples: list[tuple[str, Any]]) -> None:
        vals = [(lab, v) for lab, v in samples if isinstance(v, int | float)]  # bools count as 0/1
        if not vals:
            return
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")
        for lab, v in vals:
            lines.append(f"{name}{lab} {float(v):g}")

    gauge("edge_cpu_percent", "CPU busy percent since the last sample.", [("", payload.get("cpu_percent"))])
    load = payload.get("load") or []
    gauge(
        "edge_load",
        "Load average.",
        [(f'{{window="{w}"}}', v) for w, v in zip(("1m", "5m", "15m"), load, strict=False)],
    )
    gauge("edge_soc_temperature_celsius", "Hottest thermal zone.", [("", payload.get("temperature_c"))])
    thr = payload.get("throttled") or {}
    gauge(
        "edge_throttled",
        "Raspberry Pi firmware throttling flags (1 = set).",
        [(f'{{flag="{k}"}}', v) for k, v in thr.items() if isinstance(v, bool)],
    )
    mem = payload.get("memory") or {}
    gauge("edge_memory_available_bytes", "Available memory.", [("", mem.get("available_bytes"))])
    disk = payload.get("disk") or {}
    gauge("edge_disk_free_bytes", "Free space on the data filesystem.", [("", disk.get("free_bytes"))])
    gauge("edge_uptime_seconds", "Seconds since boot.", [("", payload.get("uptime_s"))])
    ob = payload.get("outbox") or {}
    gauge("edge_outbox_depth", "Rows waiting in the outbox.", [("", ob.get("depth"))])
    gauge("edge_outbox_oldest_age_seconds", "Age of the oldest outbox row.", [("", ob.get("oldest_age_s"))])
    gauge("edge_outbox_dropped_total", "Rows dropped because the outbox was full.", [("", ob.get("dropped"))])
    gauge(
        "edge_broker_connected",
        "1 when the MQTT broker connection is up.",
        [("", payload.get("broker_connected"))],
    )
    cams = payload.get("cameras") or []
    for key, name, help_ in _CAMERA_GAUGES:
        gauge(name, help_, [(f'{{camera="{_esc(str(c["camera_id"]))}"}}', c.get(key)) for c in cams])
    gauge(
        "edge_camera_online",
        "1 when the camera delivers frames.",
        [(f'{{camera="{_esc(str(c["camera_id"]))}"}}', c.get("online")) for c in cams],
    )
    tamper_samples: list[tuple[str, Any]] = []
    for c in cams:
        for fault in (c.get("tamper") or {}).get("active", []):
            tamper_samples.append((f'{{camera="{_esc(str(c["camera_id"]))}",fault="{_esc(fault)}"}}', 1))
    gauge("edge_camera_tamper_active", "Active camera tamper faults.", tamper_samples)
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``render_metrics(provider())`` at ``/metrics`` until ``stop()``."""

    def __init__(self, cfg: MetricsConfig, provider: Callable[[], Mapping[str, Any] | None]) -> None:
        self.cfg = cfg
        self._provider = provider
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        provider = self._provider

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                payload = provider()
                body = render_metrics(payload or {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics %s", format % args)

        self._server = ThreadingHTTPServer((self.cfg.host, self.cfg.port), Handler)
        self._server.daemon_threads = True
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
