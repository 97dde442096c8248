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
    model_output: Mapping[str, Any] | None = None  # OnnxDetector.output_health() (None: model-free backend)


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    """The outbox as the health record reports it."""

    depth: int | None = None  # rows waiting for the broker
    oldest_age_s: float | None = None
    dropped: int | None = None  # rows evicted since start (all priorities)


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """Everything one health record is built from, gathered by its owner (the agent runner) every
    ``health_interval_s``; this module only formats it."""

    system: Mapping[str, Any]  # SystemSampler.sample()
    cameras: Sequence[CameraHealth]
    outbox: OutboxHealth = field(default_factory=OutboxHealth)
    broker_connected: bool | None = None
    clock: str = "unknown"  # HardwareManager.clock_quality(): "ntp" | "gps" | "rtc" | "unsynced" | "unknown"
    agent_version: str = ""
    config_hash: str = ""
    hardware: Mapping[str, Any] | None = None  # HardwareManager.health()


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
        if c.model_output is not None:
            mo = c.model_output
            cam["model_output"] = {
                "state": mo["state"],
                "passes": int(mo["passes"]),
                "bad_passes": int(mo["bad_passes"]),
                "nonfinite_values": int(mo["nonfinite_values"]),
                "dropped_rows": {k: int(v) for k, v in mo["dropped_rows"].items()},
            }
        cams.append(cam)
    ob = inp.outbox
    outbox = {"depth": ob.depth, "oldest_age_s": _round(ob.oldest_age_s), "dropped": ob.dropped}
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


def health_record(inp: HealthInputs, *, t: float, ts: float, device_id: str) -> EventDraft:
    """The ``device_health`` draft of ``inp``, with its one-line ``summary``."""
    payload = build_health_payload(inp)
    payload["summary"] = summary_line(payload)
    return health_draft(payload, t=t, ts=ts, device_id=device_id)


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
        if (cam.get("model_output") or {}).get("state") == "garbage":
            problems.append(f"camera {cam['camera_id']} model gives only garbage outputs (run edge-agent model check)")
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
        + ("/MODEL=garbage" if (c.get("model_output") or {}).get("state") == "garbage" else "")
        for c in payload.get("cameras", [])
    )
    ob = payload.get("outbox") or {}
    return (
        f"cpu={payload.get('cpu_percent')}% load={(payload.get('load') or [None])[0]} "
        f"temp={payload.get('temperature_c')}C outbox={ob.get('depth')}/{ob.get('oldest_age_s')}s "
        f"broker={payload.get('broker_connected')} clock={payload.get('clock')} [{cams}]"
    )
