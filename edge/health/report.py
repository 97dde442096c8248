"""Builds the ``device_health`` payload (schema ``edge/events/schemas/kinds/device_health.json``),
the ``camera_status`` Transitions, and the one-line log summary of a health record."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.types import EventDraft, Severity, SourceState, SourceStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """What the runner knows about one camera at health time."""

    stats: Mapping[str, Any]  # CameraStats.snapshot(t)
    online: bool
    tamper: Mapping[str, Any] | None = None  # TamperMonitor.state()
    skipped_fraction: float | None = None  # MotionGate.skipped_fraction (None: gating off)


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """Everything one health record is built from (the runner gathers it every health_interval_s)."""

    system: Mapping[str, Any]  # sample_system()
    cameras: Sequence[CameraHealth]
    uplink: Mapping[str, Any] = field(default_factory=dict)  # Uplink.stats()
    broker_connected: bool | None = None
    clock: str = "unknown"  # HardwareManager.clock_quality(): "ntp" | "gps" | "rtc" | "unsynced" | "unknown"
    agent_version: str = ""
    config_hash: str = ""
    hardware: Mapping[str, Any] | None = None  # HardwareManager.health()


def _count(v: Any) -> int | None:
    """A counter, or the total of a per-priority breakdown ({"alarm": 0, "info": 2, ...})."""
    if v is None:
        return None
    if isinstance(v, Mapping):
        return int(sum(int(x) for x in v.values()))
    return int(v)


def _round(v: Any) -> float | None:
    return None if v is None else round(float(v), 3)


def build_health_payload(inp: HealthInputs) -> dict[str, Any]:
    """The ``device_health`` payload. Missing facts stay None rather than being invented."""
    cams = []
    for c in inp.cameras:
        s = c.stats
        cam: dict[str, Any] = {
            "camera_id": s["camera_id"],
            "online": c.online,
            "fps_captured": s["fps_captured"],
            "fps_processed": s["fps_processed"],
            "fps_dropped": s["fps_dropped"],
            "inference_p50_ms": s["inference_p50_ms"],
            "inference_p95_ms": s["inference_p95_ms"],
            "skipped_fraction": c.skipped_fraction
            if c.skipped_fraction is not None
            else s["skipped_fraction"],
        }
        if c.tamper is not None:
            cam["tamper"] = {
                "active": list(c.tamper.get("active", [])),
                "learning": bool(c.tamper.get("learning", False)),
                "calibration_valid": bool(c.tamper.get("calibration_valid", True)),
                "brightness": c.tamper.get("brightness"),
            }
        cams.append(cam)
    up = inp.uplink
    outbox_src = up.get("outbox", up) if isinstance(up.get("outbox", up), Mapping) else up
    outbox = {
        "depth": _count(outbox_src.get("depth")),
        "oldest_age_s": _round(outbox_src.get("oldest_age_s")),
        "dropped": _count(outbox_src.get("dropped")),
    }
    sysd = inp.system
    payload: dict[str, Any] = {
        "cpu_percent": sysd.get("cpu_percent"),
        "load": sysd.get("load"),
        "temperature_c": sysd.get("temperature_c"),
        "throttled": sysd.get("throttled"),
        "memory": sysd.get("memory"),
        "disk": sysd.get("disk"),
        "uptime_s": sysd.get("uptime_s"),
        "cameras": cams,
        "outbox": outbox,
        "broker_connected": inp.broker_connected,
        "clock": inp.clock,
        "agent_version": inp.agent_version,
        "config_hash": inp.config_hash,
    }
    if inp.hardware is not None:
        payload["hardware"] = dict(inp.hardware)
    return payload


def health_draft(payload: Mapping[str, Any], *, t: float, ts: float, device_id: str) -> EventDraft:
    """An ``instant`` ``device_health`` EventDraft; severity rises with what is wrong."""
    problems: list[str] = []
    thr = payload.get("throttled") or {}
    if isinstance(thr, Mapping) and (thr.get("undervoltage") or thr.get("throttled")):
        problems.append("SoC throttled or under-voltage")
    for cam in payload.get("cameras", []):
        if not cam.get("online", True):
            problems.append(f"camera {cam['camera_id']} offline")
        active = (cam.get("tamper") or {}).get("active") or []
        if active:
            problems.append(f"camera {cam['camera_id']} tamper {','.join(active)}")
    if payload.get("broker_connected") is False:
        problems.append("broker disconnected")
    severity: Severity = "minor" if problems else "info"
    return EventDraft(
        kind="device_health",
        phase="instant",
        key=f"device_health/{device_id}/{round(ts * 1000)}",
        t=t,
        ts=ts,
        severity=severity,
        severity_reason="; ".join(problems),
        payload=dict(payload),
    )


def log_health(payload: Mapping[str, Any]) -> None:
    """One INFO line per health record (the issue asks for health in the logs too)."""
    cams = " ".join(
        f"{c['camera_id']}:{c['fps_processed']}fps/p95={c['inference_p95_ms']}ms/skip={c['skipped_fraction']}"
        for c in payload.get("cameras", [])
    )
    ob = payload.get("outbox") or {}
    log.info(
        "health cpu=%s%% load=%s temp=%sC uptime=%ss outbox=%s oldest=%ss broker=%s clock=%s cams=[%s]",
        payload.get("cpu_percent"),
        payload.get("load"),
        payload.get("temperature_c"),
        payload.get("uptime_s"),
        ob.get("depth"),
        ob.get("oldest_age_s"),
        payload.get("broker_connected"),
        payload.get("clock"),
        cams,
    )


class CameraStatusMonitor:
    """Turns a camera's ``SourceStatus`` stream into ``camera_status`` start/end Transitions:
    OFFLINE starts an episode (major), ONLINE after it ends the same episode (same key)."""

    def __init__(self) -> None:
        self._offline_since: dict[str, float] = {}

    def update(self, status: SourceStatus) -> EventDraft | None:
        cam = status.camera_id
        if status.state is SourceState.OFFLINE:
            if cam in self._offline_since:
                return None  # still offline: reconnect attempts are not new episodes
            self._offline_since[cam] = status.ts
            return camera_status_draft(status)
        if status.state is SourceState.ONLINE and cam in self._offline_since:
            since = self._offline_since.pop(cam)
            return camera_status_draft(status, offline_since_ts=since)
        return None


def camera_status_draft(
    status: SourceStatus, *, offline_since_ts: float | None = None
) -> EventDraft | None:
    """OFFLINE -> phase ``start`` severity major; ONLINE -> phase ``end``; STARTING/ENDED -> None.

    The key is the camera's (``camera_status/<camera>``): the event builder opens an incident
    on start and closes it on end, so each offline episode gets its own incident id. Pass the
    OFFLINE status's ``ts`` as ``offline_since_ts`` to report how long the camera was away.
    """
    key = f"camera_status/{status.camera_id}"
    payload: dict[str, Any] = {"status": status.state.value, "reason": status.reason}
    if status.state is SourceState.OFFLINE:
        return EventDraft(
            kind="camera_status",
            phase="start",
            key=key,
            t=status.t,
            ts=status.ts,
            camera_id=status.camera_id,
            severity="major",
            severity_reason=f"camera {status.camera_id} offline: {status.reason or 'no frames'}",
            started_ts=status.ts,
            payload=payload,
        )
    if status.state is SourceState.ONLINE:
        if offline_since_ts is not None:
            payload["offline_s"] = round(max(0.0, status.ts - offline_since_ts), 3)
        return EventDraft(
            kind="camera_status",
            phase="end",
            key=key,
            t=status.t,
            ts=status.ts,
            camera_id=status.camera_id,
            severity="major",
            severity_reason=f"camera {status.camera_id} back online",
            started_ts=offline_since_ts,
            payload=payload,
        )
    return None


def summary_line(payload: Mapping[str, Any]) -> str:
    """A one-line human summary of a health payload (logs, the record's ``summary``)."""
    cams = " ".join(
        f"{c['camera_id']}:{'up' if c.get('online') else 'DOWN'}/{c['fps_processed']}fps"
        f"/p95={c['inference_p95_ms']}ms/skip={c['skipped_fraction']}"
        + (f"/TAMPER={','.join(c['tamper']['active'])}" if (c.get("tamper") or {}).get("active") else "")
        for c in payload.get("cameras", [])
    )
    ob = payload.get("outbox") or {}
    return (
        f"cpu={payload.get('cpu_percent')}% load={(payload.get('load') or [None])[0]} "
        f"temp={payload.get('temperature_c')}C outbox={ob.get('depth')}/{ob.get('oldest_age_s')}s "
        f"broker={payload.get('broker_connected')} clock={payload.get('clock')} [{cams}]"
    )


def build_health_transition(agent: Any) -> EventDraft:
    """The health record of a running ``edge.agent.runner.Agent`` (duck-typed: ``cfg``,
    ``cameras`` of runtimes with ``cam``/``stats``/``tamper``/``state``/``pipeline.gate``,
    ``uplink``, ``_clock_quality()``, ``_hardware``). Keeps its ``SystemSampler`` on the agent."""
    import time

    from edge import __version__
    from edge.config import config_hash
    from edge.health.system import SystemSampler

    cfg = agent.cfg
    sampler = getattr(agent, "_health_sampler", None)
    if sampler is None:
        import os

        disk = cfg.health.disk_path or os.path.dirname(os.path.abspath(str(cfg.uplink.outbox_path)))
        sampler = SystemSampler(disk_path=_existing_dir(disk), thermal_root=cfg.health.thermal_root)
        agent._health_sampler = sampler
    now_t, now_ts = time.monotonic(), time.time()
    cams: list[CameraHealth] = []
    for cr in list(getattr(agent, "cameras", {}).values()):
        stats = cr.stats.snapshot()
        gate = getattr(getattr(cr, "pipeline", None), "gate", None)
        tamper = cr.tamper.state() if cr.tamper is not None else None
        cams.append(
            CameraHealth(
                stats=stats,
                online=getattr(cr, "state", SourceState.ONLINE) is not SourceState.OFFLINE,
                tamper=tamper,
                skipped_fraction=None if gate is None else round(gate.skipped_fraction, 4),
            )
        )
    up = agent.uplink.stats() if getattr(agent, "uplink", None) is not None else {}
    ob_raw = up.get("outbox")
    ob: Mapping[str, Any] = ob_raw if isinstance(ob_raw, Mapping) else {}
    outbox = {
        "depth": up.get("outbox_pending", ob.get("pending")),
        "oldest_age_s": up.get("outbox_oldest_age_s", ob.get("oldest_age_s")),
        "dropped": up.get("outbox_dropped", ob.get("dropped")),
    }
    hw = getattr(agent, "_hardware", None)
    hardware = None
    if hw is not None:
        try:
            hardware = dict(hw.health())
        except Exception:  # a hardware fault must not cost the health record
            log.exception("hardware health failed")
    inp = HealthInputs(
        system=sampler.sample(),
        cameras=cams,
        uplink={"outbox": outbox},
        broker_connected=bool(up["connected"]) if up.get("mode") == "mqtt" else None,
        clock=str(agent._clock_quality()) if hasattr(agent, "_clock_quality") else "unknown",
        agent_version=__version__,
        config_hash=config_hash(cfg),
        hardware=hardware,
    )
    payload = build_health_payload(inp)
    payload["summary"] = summary_line(payload)
    return health_draft(payload, t=now_t, ts=now_ts, device_id=cfg.device_id)


def _existing_dir(path: str) -> str:
    import os

    p = path
    while p and not os.path.isdir(p):
        parent = os.path.dirname(p.rstrip("/"))
        if parent == p:
            break
        p = parent
    return p or "/"
