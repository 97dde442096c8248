"""Health records built from real samples validate against the published event schema;
camera offline/online transitions pair up."""

from __future__ import annotations

import os

import pytest

from edge.config.health import GatingConfig
from edge.events.schema import validate_payload
from edge.health.report import (
    CameraHealth,
    CameraStatusMonitor,
    HealthInputs,
    OutboxHealth,
    build_health_payload,
    camera_status_draft,
    health_draft,
    log_health,
)
from edge.health.stats import CameraStats
from edge.health.system import SystemSampler
from edge.types import SourceState, SourceStatus
from edge.vision.gating import MotionGate


def _inputs(online: bool = True, active: list[str] | None = None) -> HealthInputs:
    st = CameraStats("cam0", window_s=10.0)
    gate = MotionGate(GatingConfig(enabled=True))
    for i in range(50):
        t = i * 0.2
        st.record_captured(t)
        run = gate.should_infer(t, 0.0 if i % 4 else 0.5, False)
        st.record_processed(t, 20.0 + i % 7 if run else None)
    return HealthInputs(
        system=SystemSampler(disk_path=os.getcwd()).sample(),
        cameras=[
            CameraHealth(
                stats=st.snapshot(10.0),
                online=online,
                tamper={
                    "active": active or [],
                    "learning": False,
                    "calibration_valid": True,
                    "brightness": 101.5,
                },
                skipped_fraction=gate.skipped_fraction,
            )
        ],
        outbox=OutboxHealth(depth=4, oldest_age_s=2.5, dropped=0),
        broker_connected=True,
        clock="ntp",
        agent_version="0.1.0",
        config_hash="abc123",
    )


def test_health_payload_validates_and_carries_real_values(caplog: pytest.LogCaptureFixture) -> None:
    payload = build_health_payload(_inputs())
    validate_payload("device_health", payload)
    assert payload["memory"]["total_bytes"] > 0 and payload["uptime_s"] > 0
    cam = payload["cameras"][0]
    assert cam["fps_processed"] == pytest.approx(5.0, rel=0.05)
    assert 20.0 <= cam["inference_p50_ms"] <= cam["inference_p95_ms"] <= 26.0
    assert 0.5 < cam["skipped_fraction"] < 0.9
    assert payload["outbox"] == {"depth": 4, "oldest_age_s": 2.5, "dropped": 0}
    tr = health_draft(payload, t=10.0, ts=1.79e9, device_id="pole-17")
    assert tr.kind == "device_health" and tr.phase == "instant" and tr.severity == "info"
    with caplog.at_level("INFO", logger="edge.health.report"):
        log_health(payload)
    assert "outbox=4" in caplog.text and "cam0:" in caplog.text


def test_problems_raise_severity() -> None:
    payload = build_health_payload(_inputs(online=False, active=["covered"]))
    validate_payload("device_health", payload)
    tr = health_draft(payload, t=0.0, ts=1.79e9, device_id="pole-17")
    assert tr.severity == "minor"
    assert "cam0 offline" in tr.severity_reason and "covered" in tr.severity_reason


def test_schema_rejects_a_broken_record() -> None:
    payload = build_health_payload(_inputs())
    payload["cameras"][0]["fps_processed"] = -1
    with pytest.raises(ValueError):
        validate_payload("device_health", payload)


def test_camera_offline_online_episode() -> None:
    mon = CameraStatusMonitor()
    down = SourceStatus("cam0", SourceState.OFFLINE, t=10.0, ts=1.79e9 + 10, reason="rtsp timeout")
    start = mon.update(down)
    assert start is not None and start.phase == "start" and start.severity == "major"
    assert (
        mon.update(SourceStatus("cam0", SourceState.OFFLINE, t=12.0, ts=1.79e9 + 12)) is None
    )  # retry, same episode
    end = mon.update(SourceStatus("cam0", SourceState.ONLINE, t=47.5, ts=1.79e9 + 47.5))
    assert end is not None and end.phase == "end" and end.key == start.key
    assert end.payload["offline_s"] == pytest.approx(37.5) and end.started_ts == down.ts
    assert mon.update(SourceStatus("cam0", SourceState.ONLINE, t=48.0, ts=1.79e9 + 48)) is None
    for tr in (start, end):
        validate_payload("camera_status", tr.payload)
    again = mon.update(SourceStatus("cam0", SourceState.OFFLINE, t=100.0, ts=1.79e9 + 100))
    assert (
        again is not None and again.phase == "start" and again.key == start.key
    )  # the builder opens a new incident


def test_stateless_transition() -> None:
    tr = camera_status_draft(
        SourceStatus("cam1", SourceState.OFFLINE, t=1.0, ts=2.0, reason="unplugged")
    )
    assert tr is not None
    assert (tr.kind, tr.phase, tr.severity, tr.camera_id) == ("camera_status", "start", "major", "cam1")
    assert tr.payload == {"status": "offline", "reason": "unplugged"}


@pytest.mark.parametrize("state", [SourceState.STARTING, SourceState.ENDED])
def test_other_states_are_not_events(state: SourceState) -> None:
    assert camera_status_draft(SourceStatus("cam1", state, t=1.0, ts=2.0)) is None


def test_episode_incidents_through_the_real_builder() -> None:
    """Two offline episodes of one camera get two incident ids; start/end of one share it."""
    from edge.events.builder import EventBuilder

    b = EventBuilder("pole-17", "site-a", config_hash="abc")
    mon = CameraStatusMonitor()
    evs = []
    for state, ts in [
        (SourceState.OFFLINE, 10),
        (SourceState.ONLINE, 20),
        (SourceState.OFFLINE, 30),
        (SourceState.ONLINE, 40),
    ]:
        tr = mon.update(SourceStatus("cam0", state, t=float(ts), ts=1.79e9 + ts))
        assert tr is not None
        evs.append(b.build(tr).to_dict())
    assert evs[0]["incident_id"] == evs[1]["incident_id"] != evs[2]["incident_id"] == evs[3]["incident_id"]


def test_health_record_from_a_camera_runtime_and_typed_inputs() -> None:
    """The runner gathers typed inputs (each camera's ``CameraRuntime.health()``, the outbox); the
    report only formats them, and the record validates."""
    from types import SimpleNamespace

    import numpy as np

    from edge.agent.camera import CameraRuntime
    from edge.config.health import TamperConfig
    from edge.config.site import CameraConfig
    from edge.health.report import OutboxHealth, health_record
    from edge.health.tamper import TamperMonitor
    from edge.types import Frame

    stats = CameraStats("cam0")
    tamper = TamperMonitor("cam0", TamperConfig(baseline_s=1.0))
    rng = np.random.default_rng(0)
    for i in range(20):
        t = 100.0 + i * 0.2
        stats.on_frame(t)
        tamper.update(Frame(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), i, t, 1.79e9 + t, "cam0"))
        stats.on_processed(t, 30.0 + i, inferred=i % 2 == 0)
    gate = MotionGate(GatingConfig(enabled=True))
    gate.should_infer(0.0, 0.0, False)
    gate.should_infer(0.2, 0.0, False)
    unused = SimpleNamespace()
    cr = CameraRuntime(
        cam=CameraConfig.model_validate({"id": "cam0", "source": "street.mp4"}),
        source=unused,  # type: ignore[arg-type]
        pipeline=SimpleNamespace(detector=None),  # type: ignore[arg-type]  # model-free: no output guard
        analytics=unused,  # type: ignore[arg-type]
        stats=stats,
        tamper=tamper,
        gate=gate,
        model=None,
        state=SourceState.ONLINE,
    )
    inputs = HealthInputs(
        system=SystemSampler(disk_path=os.getcwd()).sample(),
        cameras=[cr.health()],
        outbox=OutboxHealth(depth=7, oldest_age_s=12.5, dropped=1),
        broker_connected=False,
        clock="unsynced",
    )
    tr = health_record(inputs, t=1.0, ts=1.79e9, device_id="pole-17")
    validate_payload("device_health", tr.payload)
    p = tr.payload
    assert p["outbox"] == {"depth": 7, "oldest_age_s": 12.5, "dropped": 1}
    assert p["broker_connected"] is False and p["clock"] == "unsynced"
    cam = p["cameras"][0]
    assert cam["fps_processed"] == pytest.approx(5.0, rel=0.1)
    assert cam["skipped_fraction"] == 0.5 and cam["tamper"]["learning"] is False
    assert "model_output" not in cam  # a model-free backend has no output guard to report
    assert "broker disconnected" in tr.severity_reason and "outbox=7/12.5s" in p["summary"]
