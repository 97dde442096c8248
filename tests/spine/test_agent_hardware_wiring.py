"""How the runner uses the hardware manager: GPS time offset on event timestamps, radar/PIR
readings and the camera-blinded fusion in feature records, the PIR raising the detect rate,
alarms to the beacon, and a hardware failure at start-up that must not stop the cameras.

The manager here is a recording stand-in (a unit test of the runner's wiring); the real
HardwareManager on mock pins and simulated serial devices runs in tests/hardware/test_agent_sim.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.agent.runner import Agent
from edge.config import parse_config
from edge.errors import HardwareError
from edge.types import EventDraft, FeatureValue


class RecordingHardware:
    def __init__(self, *, offset_s: float | None = None, fail_start: bool = False) -> None:
        self.offset_s = offset_s
        self.fail_start = fail_start
        self.alarms: list[EventDraft] = []
        self.statuses: list[str] = []
        self.motion = True

    def start(self) -> None:
        if self.fail_start:
            raise HardwareError("GPIO chip /dev/gpiochip0 busy (test)")

    def stop(self) -> None: ...
    def fallback_link(self) -> None: return None
    def clock_quality(self) -> str: return "gps"
    def geo(self) -> dict[str, float]: return {"lat": 30.61, "lon": 104.07}
    def time_offset_s(self) -> float | None: return self.offset_s
    def poll(self, t: float, ts: float) -> list[EventDraft]: return []
    def heartbeat(self) -> None: ...
    def enclosure_open(self) -> bool: return False
    def set_status(self, state: str) -> None: self.statuses.append(state)
    def set_scene_brightness(self, luma: float) -> None: ...
    def motion_active(self) -> bool: return self.motion
    def radar_presence(self) -> bool | None: return True
    def alarm(self, tr: EventDraft) -> None: self.alarms.append(tr)
    def health(self) -> dict[str, Any]: return {"radar": "online"}

    def features(self, t: float) -> list[FeatureValue]:
        return [FeatureValue("radar.presence", None, 1.0, "1", 1.0, t),
                FeatureValue("radar.distance_m", None, 2.5, "m", 1.0, t)]


def config(tmp_path: Path) -> Any:
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), np.full((120, 160, 3), 80, np.uint8))
    return parse_config({
        "config_version": 1, "device_id": "pole-hw", "site_id": "lab",
        "cameras": [{
            "id": "cam0", "source": str(img), "playback": "realtime", "hold_s": 3600, "detect_fps": 4,
            "model": "motion",
            "calibration": {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]]},
            "zones": [{"id": "z", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        }],
        "rules": {"feature_interval_s": 1},
        "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
        "hardware": {"pin_factory": "mock", "pir": {"pin": 17, "boost_factor": 3}},
        "health": {"health_interval_s": 3600},
    })


def run_until(agent: Agent, events: list[dict[str, Any]], cond: Any, timeout_s: float = 20) -> None:
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not cond():
            time.sleep(0.05)
        assert cond(), f"condition not met; events: {[e['kind'] for e in events]}"
    finally:
        agent.stop()
        th.join(timeout=20)


def test_gps_offset_sensors_and_pir_boost(tmp_path: Path) -> None:
    hw = RecordingHardware(offset_s=3600.0)
    events: list[dict[str, Any]] = []
    agent = Agent(config(tmp_path), on_event=events.append, hardware=hw)
    run_until(agent, events, lambda: any(e["kind"] == "features" for e in events))
    feats = next(e for e in events if e["kind"] == "features")
    assert feats["payload"]["sensors"]["radar.presence"] == 1.0
    assert feats["payload"]["sensors"]["radar.distance_m"] == 2.5
    assert feats["payload"]["sensors"]["presence_while_blind"] is False  # the camera is not tampered
    assert feats["clock"] == "gps" and feats["geo"] == {"lat": 30.61, "lon": 104.07}
    # The system clock is an hour behind the GPS: event times carry the correction.
    from datetime import datetime

    ts = datetime.fromisoformat(feats["ts"].replace("Z", "+00:00")).timestamp()
    assert abs(ts - (time.time() + 3600)) < 60
    # PIR motion: the camera runs at detect_fps x boost_factor.
    src = agent.cameras["cam0"].source
    assert abs(src._period - 1 / 12) < 1e-9  # type: ignore[attr-defined]
    assert "healthy" in hw.statuses


def test_hardware_that_fails_to_start_does_not_stop_the_cameras(tmp_path: Path) -> None:
    hw = RecordingHardware(fail_start=True)
    events: list[dict[str, Any]] = []
    agent = Agent(config(tmp_path), on_event=events.append, hardware=hw)
    agent._own_hardware = True  # as if the agent had built it from the config
    run_until(agent, events, lambda: any(e["kind"] == "features" for e in events))
    feats = next(e for e in events if e["kind"] == "features")
    assert "sensors" not in feats["payload"]
    assert agent.cameras["cam0"].frames > 0


def test_beacon_gets_the_box_clock_not_video_time(tmp_path: Path) -> None:
    """Alarms reach the beacon stamped with the box's monotonic clock, whatever the frame time."""
    hw = RecordingHardware()
    agent = Agent(config(tmp_path), hardware=hw)
    video_t = 5.0  # a recording replayed in video time starts near zero
    tr = EventDraft(kind="tamper", phase="start", key="k", t=video_t, ts=1.0, severity="major",
                    severity_reason="door open", payload={"source": "enclosure_door", "line": "tamper_switch", "pin": 27, "state": "open"})
    before = time.monotonic()
    agent.events.submit([tr])
    agent.outbox.close()
    assert len(hw.alarms) == 1
    assert before <= hw.alarms[0].t <= time.monotonic()
    assert abs(hw.alarms[0].ts - time.time()) < 5


def test_an_observer_that_raises_never_stops_the_camera(tmp_path: Path) -> None:
    """A bug in an on_step/on_event observer is logged; the camera keeps processing to the end."""
    calls = {"step": 0, "event": 0}

    def bad_step(_result: Any) -> None:
        calls["step"] += 1
        raise RuntimeError("observer bug")

    def bad_event(_event: dict[str, Any]) -> None:
        calls["event"] += 1
        raise RuntimeError("observer bug")

    events: list[dict[str, Any]] = []
    agent = Agent(config(tmp_path), on_event=bad_event, on_step=bad_step, hardware=RecordingHardware())
    run_until(agent, events, lambda: calls["step"] >= 10 and calls["event"] >= 2)
    assert agent.cameras["cam0"].frames >= 10
    assert agent.cameras["cam0"].errors >= 10  # counted as stage errors for health
