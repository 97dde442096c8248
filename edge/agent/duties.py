"""The box's own periodic duties, run by the agent's main thread a few times a second.

* ``HardwareDuties``: GPIO behaviours and device events, the status LED (tamper > offline >
  degraded > healthy), the PIR's detect-rate boost, the IR relay following the scene brightness;
* ``HealthDuties``: the ``device_health`` record every ``health_interval_s``, gathered from the
  parts the runner owns into typed ``HealthInputs`` (``edge.health.report`` only formats them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge import __version__
from edge.agent.camera import CameraRuntime
from edge.config import SiteConfig, config_hash
from edge.hardware.manager import HardwareManager
from edge.health.report import HealthInputs, OutboxHealth, health_record
from edge.health.system import SystemSampler, existing_dir
from edge.ports import EventSink
from edge.types import SourceState
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink

log = logging.getLogger(__name__)

Cameras = Callable[[], Mapping[str, CameraRuntime]]


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
