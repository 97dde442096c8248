"""The box's own periodic duties, run by the agent's main thread a few times a second.

* ``HardwareDuties``: GPIO behaviours and device events, the status LED (tamper > offline >
  degraded > healthy), the PIR's detect-rate boost, the IR relay following the scene brightness;
* ``HealthDuties``: the ``device_health`` record every ``health_interval_s``, gathered from the
  parts the runner owns into typed ``HealthInputs`` (``edge.health.report`` only formats them);
* ``IntegrationDuties``: the retained state topics and Home Assistant discovery (``edge.integrations``
  builds the messages; the uplink sends them);
* ``MetricsSource``: what ``/metrics`` shows at each scrape (``edge.health.metrics`` formats it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge import __version__
from edge.agent.camera import CameraRuntime
from edge.config import SiteConfig, config_hash
from edge.hardware.manager import HardwareManager
from edge.health.metrics import CameraCounters, MetricsInputs
from edge.health.report import HealthInputs, OutboxHealth, health_record
from edge.health.system import SystemSampler, existing_dir
from edge.integrations.discovery import DiscoveryContext, discovery_documents
from edge.integrations.model import BoxState, CameraState, ZoneState
from edge.integrations.state import StateTopics, encode, state_documents, state_key, state_topics_of
from edge.ports import EventSink
from edge.types import SourceState
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink

log = logging.getLogger(__name__)

Cameras = Callable[[], Mapping[str, CameraRuntime]]
_NOT_ONLINE = (SourceState.OFFLINE, SourceState.ENDED)


class HardwareDuties:
    """Moves the hardware along and lets it reflect the cameras' and the uplink's state."""

    def __init__(self, hw: HardwareManager, cfg: SiteConfig, cameras: Cameras, uplink: Uplink, sink: EventSink) -> None:
        self.hw = hw
        self.cfg = cfg
        self._cameras = cameras
        self._uplink = uplink
        self._sink = sink
        self._pir_boost = False

    def tick(self, now: float) -> None:
        hw = self.hw
        try:
            self._sink.submit(hw.poll(now, time.time()))
            hw.heartbeat()
            cams = list(self._cameras().values())
            offline = not self._uplink.connected and self.cfg.uplink.mqtt is not None
            degraded = any(cr.state is SourceState.OFFLINE for cr in cams)
            tampered = any(cr.blinded for cr in cams) or hw.enclosure_open()
            hw.set_status("tamper" if tampered else "offline" if offline else "degraded" if degraded else "healthy")
            self._apply_pir(hw.motion_active(), cams)
            lumas = [cr.tamper.brightness for cr in cams if cr.tamper is not None and cr.tamper.brightness is not None]
            if lumas:
                hw.set_scene_brightness(min(lumas))
        except Exception:
            log.exception("hardware tick failed")

    def _apply_pir(self, motion: bool, cams: list[CameraRuntime]) -> None:
        """PIR motion raises every camera's detect rate; it falls back when the street is quiet."""
        if motion == self._pir_boost:
            return
        self._pir_boost = motion
        pir = self.cfg.hardware.pir
        factor = pir.boost_factor if (pir is not None and motion) else 1.0
        for cr in cams:
            setter = getattr(cr.source, "set_detect_fps", None)  # live OpenCV sources can change rate
            if setter is not None:
                setter(min(30.0, cr.cam.detect_fps * factor))
        log.info("PIR %s: detect rate x%.1f", "motion" if motion else "quiet", factor)


class HealthDuties:
    """Publishes the health record on its interval; keeps the last payload for ``/metrics``."""

    def __init__(
        self,
        cfg: SiteConfig,
        cameras: Cameras,
        outbox: Outbox,
        uplink: Uplink,
        sink: EventSink,
        *,
        hardware: Callable[[], HardwareManager | None],
        clock_quality: Callable[[], str],
    ) -> None:
        self.cfg = cfg  # the runner replaces it on a config reload
        self._cameras = cameras
        self._outbox = outbox
        self._uplink = uplink
        self._sink = sink
        self._hardware = hardware
        self._clock_quality = clock_quality
        disk = cfg.health.disk_path or str(Path(cfg.uplink.outbox_path).resolve().parent)
        self._sampler = SystemSampler(disk_path=existing_dir(disk), thermal_root=cfg.health.thermal_root)
        self._last_t: float | None = None
        self.last_payload: dict[str, Any] | None = None

    def tick(self, now: float) -> None:
        if self._last_t is not None and now - self._last_t < self.cfg.health.health_interval_s:
            return
        self._last_t = now
        try:
            draft = health_record(self.inputs(), t=now, ts=time.time(), device_id=self.cfg.device_id)
        except Exception:
            log.exception("health sampling failed")
            return
        self.last_payload = dict(draft.payload)
        self._sink.submit([draft])

    def inputs(self) -> HealthInputs:
        """What the health record is built from, gathered from the running parts."""
        ob = self._outbox.stats()
        up = self._uplink.stats()
        hardware = None
        hw = self._hardware()
        if hw is not None:
            try:
                hardware = dict(hw.health())
            except Exception:  # a hardware fault must not cost the health record
                log.exception("hardware health failed")
        return HealthInputs(
            system=self._sampler.sample(),
            cameras=[cr.health() for cr in list(self._cameras().values())],
            outbox=OutboxHealth(
                depth=int(ob["pending"]), oldest_age_s=float(ob["oldest_age_s"]), dropped=int(ob["dropped_total"])
            ),
            broker_connected=bool(up["connected"]) if up.get("mode") == "mqtt" else None,
            clock=self._clock_quality(),
            agent_version=__version__,
            config_hash=config_hash(self.cfg),
            hardware=hardware,
        )


# ---------------------------------------------------------------------------------------------------
def box_state(
    cameras: Mapping[str, CameraRuntime], hw: HardwareManager | None, door_switch: bool, *, stopping: bool = False
) -> BoxState:
    """The box now, from the running cameras (their rules' zone views, tamper, source state) and the
    enclosure door. Safe from any thread: each camera's rules lock their own state. ``stopping``: the
    cameras have been stopped (a clean exit), none is online."""
    cams: list[CameraState] = []
    for cr in list(cameras.values()):
        views = cr.analytics.zone_states()
        zones = tuple(ZoneState.from_view(cr.cam.id, z, views.get(z.id) or {}) for z in cr.cam.zones)
        cams.append(
            CameraState(
                camera_id=cr.cam.id,
                online=not stopping and cr.frames > 0 and cr.state not in _NOT_ONLINE,
                tamper_checked=cr.tamper is not None,
                faults=tuple(cr.tamper.active_faults) if cr.tamper is not None else (),
                ts=cr.clock[1] if cr.clock is not None else None,
                zones=zones,
            )
        )
    door = hw.enclosure_open() if (door_switch and hw is not None) else None
    return BoxState(cameras=tuple(cams), door_open=door)


def discovery_shape(box: BoxState) -> tuple[object, ...]:
    """What decides which entities exist (not their values): rebuild the discovery configs when it changes."""
    return (
        box.door_open is not None,
        tuple(
            (
                c.camera_id,
                c.tamper_checked,
                tuple(
                    (z.zone_id, z.kind, z.classes, z.capacity is not None and z.occupancy is not None,
                     z.overflow is not None, z.density is not None, z.violations is not None)
                    for z in c.zones
                ),
            )
            for c in box.cameras
        ),
    )  # fmt: skip


class RetainedLedger:
    """The retained topics this box has put on the broker (a JSON file beside the outbox), so that after a
    restart with a changed config the entities and states of removed zones or cameras are cleared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: set[str] = set()
        self._warned = False
        try:
            doc = json.loads(path.read_text())
            self.topics = {t for t in doc.get("topics", []) if isinstance(t, str) and t}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring %s (%s): retained topics of an older config may stay on the broker", path, exc)

    def write(self, topics: set[str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "topics": sorted(topics)}, indent=1))
            os.replace(tmp, self.path)
            self.topics = set(topics)
            self._warned = False
        except OSError as exc:
            if not self._warned:
                log.error("cannot write %s (%s): a later config change may leave stale retained topics", self.path, exc)
                self._warned = True


class IntegrationDuties:
    """The retained state topics (on change, at most every ``min_interval_s``) and Home Assistant
    discovery configs (on change), handed to the uplink as latest values; what a config no longer
    has (a zone, a camera, the integration itself) is cleared with an empty retained message."""

    def __init__(
        self,
        cfg: SiteConfig,
        cameras: Cameras,
        uplink: Uplink,
        *,
        hardware: Callable[[], HardwareManager | None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg  # the runner replaces it on a config reload
        self._cameras = cameras
        self._uplink = uplink
        self._hardware = hardware
        self._wall = wall
        base = uplink.topics.base
        self._states = StateTopics(base)
        self._status_topic = uplink.topics.status
        self._ledger = RetainedLedger(Path(cfg.uplink.outbox_path).resolve().parent / "retained-topics.json")
        self._sent: dict[str, tuple[str, float]] = {}  # state topic -> (state key, box time handed over)
        self._discovery: dict[str, bytes] = {}  # discovery topic -> payload handed over
        self._clearing: set[str] = set()  # empty retained messages not yet handed to the connection
        self._shape: object = None  # what the discovery configs were last built from
        self._configs: dict[str, bytes] = {}
        self._failing = False

    def _context(self) -> DiscoveryContext:
        ha = self.cfg.integrations.home_assistant
        return DiscoveryContext(
            discovery_prefix=ha.discovery_prefix,
            site_id=self.cfg.site_id,
            device_id=self.cfg.device_id,
            device_name=ha.device_name or self.cfg.device_id,
            version=__version__,
            status_topic=self._status_topic,
            states=self._states,
        )

    def tick(self, now: float, *, final: bool = False) -> None:
        """Publish what changed. ``final``: the last states before a clean stop (the cameras have stopped),
        sent whatever the minimum interval."""
        if not self._uplink.brokered:
            return
        try:
            self._publish(now, final)
            if self._failing:
                log.info("state topics published again")
            self._failing = False
        except Exception:
            if not self._failing:
                log.exception("state topics / discovery failed")
            self._failing = True

    def _publish(self, now: float, final: bool) -> None:
        integ = self.cfg.integrations
        st, ha = integ.state_topics, integ.home_assistant
        keep: set[str] = set()
        if st.enabled or ha.enabled or self._ledger.topics or self._sent or self._discovery:
            box = box_state(
                self._cameras(), self._hardware(), self.cfg.hardware.tamper_switch is not None, stopping=final
            )
        else:
            return  # nothing configured, nothing ever published
        # Discovery configs go first: the uplink sends in the order handed over, so a subscriber that sees
        # a state has already seen the entity it belongs to (Home Assistant's order: config, then state).
        if ha.enabled:
            shape = (ha, discovery_shape(box))
            if shape != self._shape:  # the entities change with the config, not with the counts
                self._shape = shape
                self._configs = {t: encode(d) for t, d in discovery_documents(self._context(), box).items()}
            for topic, payload in self._configs.items():
                keep.add(topic)
                if self._discovery.get(topic) != payload:
                    self._uplink.publish_latest(topic, payload)
                    self._discovery[topic] = payload
        if st.enabled:
            keep |= state_topics_of(self._states, box)
            for topic, doc in state_documents(self._states, box, self._wall()).items():
                key = state_key(doc)
                prev = self._sent.get(topic)
                if prev is not None and (prev[0] == key or (not final and now - prev[1] < st.min_interval_s)):
                    continue
                self._uplink.publish_latest(topic, encode(doc))
                self._sent[topic] = (key, now)
        for topic in (self._ledger.topics | set(self._sent) | set(self._discovery)) - keep - self._clearing:
            self._uplink.publish_latest(topic, b"")
            self._sent.pop(topic, None)
            self._discovery.pop(topic, None)
            self._clearing.add(topic)
            log.info("clearing retained %s (no longer in the config)", topic)
        if self._clearing:
            self._clearing &= self._uplink.latest_pending()
        ledger = set(self._sent) | set(self._discovery) | self._clearing
        if ledger != self._ledger.topics:
            self._ledger.write(ledger)


class MetricsSource:
    """What ``/metrics`` shows, gathered at each scrape (on the HTTP server's thread: every part read
    here is safe to read from another thread)."""

    def __init__(
        self,
        cfg: SiteConfig,
        cameras: Cameras,
        outbox: Outbox,
        uplink: Uplink,
        *,
        health: Callable[[], Mapping[str, Any] | None],
        events: Callable[[], Mapping[str, int]],
        hardware: Callable[[], HardwareManager | None],
    ) -> None:
        self.cfg = cfg  # the runner replaces it on a config reload
        self._cameras = cameras
        self._outbox = outbox
        self._uplink = uplink
        self._health = health
        self._events = events
        self._hardware = hardware

    def __call__(self) -> MetricsInputs:
        cams = self._cameras()
        box = box_state(cams, self._hardware(), self.cfg.hardware.tamper_switch is not None)
        counters = []
        for cr in list(cams.values()):
            totals = dict(cr.stats.totals)
            counters.append(
                CameraCounters(
                    camera_id=cr.cam.id,
                    captured=int(totals.get("captured", 0)),
                    processed=int(totals.get("processed", 0)),
                    dropped=int(totals.get("dropped", 0)),
                    skipped=int(totals.get("skipped", 0)),
                    errors=int(cr.errors),
                    model_output=cr.model_output(),
                )
            )
        return MetricsInputs(
            health=self._health(),
            box=box,
            cameras=tuple(counters),
            outbox=self._outbox.stats(),
            uplink=self._uplink.stats() if self._uplink.brokered else None,
            events=dict(self._events()),
            config_hash=config_hash(self.cfg),
        )
