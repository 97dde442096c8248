"""Every GPIO behaviour on gpiozero's own MockFactory, driven by a fake clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from gpiozero import Device

from edge.config.hardware import HardwareConfig
from edge.hardware import gpio
from edge.hardware.manager import HardwareManager
from edge.hardware.pins import MockFactory, make_pin_factory
from edge.types import EventDraft
from tests.hardware.conftest import FakeClock

LED, BEACON, TAMPER, PIR, IR, HB = 5, 6, 27, 17, 22, 24
TZ = "Asia/Shanghai"


def hw(**over: Any) -> HardwareConfig:
    base: dict[str, Any] = {
        "pin_factory": "mock",
        "status_led": {"pin": LED},
        "beacon": {"pin": BEACON, "severities": ["major", "critical"], "max_on_s": 20},
        "tamper_switch": {"pin": TAMPER, "pull": "none", "debounce_s": 0.2},
        "pir": {"pin": PIR, "pull": "none", "hold_s": 5, "debounce_s": 0.0},
        "ir_relay": {"pin": IR, "on_below_luma": 40, "off_above_luma": 70},
        "heartbeat": {"pin": HB},
    }
    base.update(over)
    return HardwareConfig.model_validate(base)


def local_ts(hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 11, 22, hour, minute, tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()


@pytest.fixture
def rig() -> Any:
    clock = FakeClock()
    factory = MockFactory()
    managers: list[HardwareManager] = []

    def make(cfg: HardwareConfig | None = None, start: bool = True) -> HardwareManager:
        m = HardwareManager(cfg or hw(), TZ, pin_factory=factory, clock=clock, ntp_status=lambda: None)
        if start:
            m.start()
        managers.append(m)
        return m

    make.clock = clock  # type: ignore[attr-defined]
    make.factory = factory  # type: ignore[attr-defined]
    yield make
    for m in managers:
        m.stop()


def alarm(
    sev: str, t: float, ts: float, phase: str = "start", key: str = "k1", kind: str = "parking_violation"
) -> EventDraft:
    return EventDraft(kind=kind, phase=phase, key=key, t=t, ts=ts, severity=sev)  # type: ignore[arg-type]


def test_global_pin_factory_is_never_assigned(rig: Any) -> None:
    before = Device.pin_factory
    rig()
    assert Device.pin_factory is before
    assert isinstance(make_pin_factory("mock"), MockFactory)


@pytest.mark.parametrize("state", list(gpio.LED_PATTERNS))
def test_led_pattern_drives_pin(rig: Any, state: str) -> None:
    m = rig()
    pin = rig.factory.pin(LED)
    m.set_status(state)
    seen = []
    t0 = rig.clock.t
    for i in range(40):  # 4 s at 10 Hz
        m.poll(t0 + i * 0.1 + (0.05 if i else 0.0), 0.0)  # mid-step samples, clear of float edges
        seen.append(bool(pin.state))
    expected = [gpio.pattern_level(state, i * 0.1 + (0.05 if i else 0.0)) for i in range(40)]
    assert seen == expected


def test_led_patterns_are_distinguishable() -> None:
    sampled = {s: tuple(gpio.pattern_level(s, i * 0.05 + 0.01) for i in range(80)) for s in gpio.LED_PATTERNS}
    assert len(set(sampled.values())) == len(gpio.LED_PATTERNS)
    lit = {s: sum(v) / len(v) for s, v in sampled.items()}
    assert lit["healthy"] < lit["offline"] < lit["degraded"]  # duty cycles differ too


def test_unknown_status_rejected(rig: Any) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        rig().set_status("sad")


def test_beacon_on_for_configured_severity_and_off_after_max_on_time(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(BEACON)
    t = rig.clock.t
    m.alarm(alarm("minor", t, local_ts(12)))
    assert not pin.state  # minor is not configured
    m.alarm(alarm("critical", t, local_ts(12)))
    assert pin.state
    m.poll(t + 19.9, local_ts(12))
    assert pin.state
    m.poll(t + 20.0, local_ts(12))
    assert not pin.state  # max_on_s = 20 even though the episode never ended


def test_beacon_off_when_episode_ends(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(BEACON)
    t = rig.clock.t
    m.alarm(alarm("major", t, local_ts(12), key="a"))
    m.alarm(alarm("major", t + 1, local_ts(12), key="b"))
    m.alarm(alarm("major", t + 2, local_ts(12), phase="end", key="a"))
    assert pin.state  # b is still open
    m.alarm(alarm("major", t + 3, local_ts(12), phase="end", key="b"))
    assert not pin.state


@pytest.mark.parametrize(
    ("hour", "sev", "sounds"),
    [
        (23, "major", False),
        (3, "major", False),
        (7, "major", True),
        (12, "major", True),
        (23, "critical", True),
    ],
)
def test_beacon_quiet_hours(rig: Any, hour: int, sev: str, sounds: bool) -> None:
    cfg = hw(
        beacon={
            "pin": BEACON,
            "severities": ["major", "critical"],
            "quiet_hours": {"start": "22:00", "end": "07:00", "allow": ["critical"]},
        }
    )
    m = rig(cfg)
    m.alarm(alarm(sev, rig.clock.t, local_ts(hour)))
    assert bool(rig.factory.pin(BEACON).state) is sounds
    assert m.beacon is not None and m.beacon.suppressed == (0 if sounds else 1)


def test_tamper_switch_start_and_end_with_debounce(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(TAMPER)
    t = rig.clock.t
    assert m.poll(t, 100.0) == []
    pin.drive_high()  # door opens
    assert m.poll(t + 0.1, 100.1) == []  # still bouncing (debounce 0.2 s)
    trs = m.poll(t + 0.35, 100.35)
    assert [(x.kind, x.phase) for x in trs] == [("tamper", "start")]
    assert trs[0].payload["state"] == "open" and trs[0].severity == "major"
    pin.drive_low()
    assert m.poll(t + 5.0, 105.0) == []
    end = m.poll(t + 5.3, 105.3)
    assert [(x.kind, x.phase) for x in end] == [("tamper", "end")]
    assert end[0].key == trs[0].key and end[0].started_ts == 100.35


def test_tamper_bounce_shorter_than_debounce_is_ignored(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(TAMPER)
    t = rig.clock.t
    m.poll(t, 0.0)
    pin.drive_high()
    m.poll(t + 0.05, 0.0)
    pin.drive_low()
    assert m.poll(t + 0.1, 0.0) == [] and m.poll(t + 1.0, 0.0) == []


def test_door_open_at_start_up_reports_tamper(rig: Any) -> None:
    rig.factory.pin(TAMPER).drive_high()
    m = rig()
    assert [x.phase for x in m.poll(rig.clock.t, 0.0)] == ["start"]


def test_pir_already_high_before_start_is_seen(rig: Any) -> None:
    """gpiozero never delivers an edge that happened before the device existed: read the level."""
    rig.factory.pin(PIR).drive_high()
    m = rig(hw(pir={"pin": PIR, "pull": "none", "hold_s": 5, "report_events": True}))
    assert m.motion_active()  # before any poll
    trs = m.poll(rig.clock.t, 0.0)
    assert [(x.kind, x.phase, x.payload["active"]) for x in trs] == [("hardware_input", "start", True)]


def test_pir_motion_holds_then_expires(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(PIR)
    t = rig.clock.t
    m.poll(t, 0.0)
    assert not m.motion_active()
    pin.drive_high()
    m.poll(t + 1, 0.0)
    assert m.motion_active()
    pin.drive_low()
    m.poll(t + 2, 0.0)
    assert m.motion_active()  # within hold_s = 5
    m.poll(t + 6.9, 0.0)
    assert m.motion_active()
    m.poll(t + 7.1, 0.0)
    assert not m.motion_active()
    feats = {f.key: f.value for f in m.features(t + 7.1)}
    assert feats["pir.motion"] == 0.0


def test_pir_pulse_between_polls_is_not_lost(rig: Any) -> None:
    m = rig(hw(pir={"pin": PIR, "pull": "none", "hold_s": 5, "debounce_s": 0, "report_events": True}))
    pin = rig.factory.pin(PIR)
    t = rig.clock.t
    m.poll(t, 0.0)
    pin.drive_high()
    pin.drive_low()
    trs = m.poll(t + 0.5, 0.0)
    assert [x.phase for x in trs] == ["start", "end"]
    assert m.motion_active()


@pytest.mark.parametrize(
    ("lumas", "states"),
    [
        ([100, 50, 39, 50, 69, 71, 45, 30], [False, False, True, True, True, False, False, True]),
        ([30, 80, 30, 80], [True, False, True, False]),
    ],
)
def test_ir_relay_hysteresis(rig: Any, lumas: list[float], states: list[bool]) -> None:
    m = rig()
    pin = rig.factory.pin(IR)
    got = []
    for luma in lumas:
        m.set_scene_brightness(luma)
        got.append(bool(pin.state))
    assert got == states


def test_ir_relay_active_low(rig: Any) -> None:
    m = rig(hw(ir_relay={"pin": IR, "active_high": False}))
    pin = rig.factory.pin(IR)
    assert pin.state  # off = high on an active-low relay board
    m.set_scene_brightness(10)
    assert not pin.state


def test_heartbeat_toggles(rig: Any) -> None:
    m = rig()
    pin = rig.factory.pin(HB)
    levels = []
    for _ in range(4):
        m.heartbeat()
        levels.append(bool(pin.state))
    assert levels == [True, False, True, False]
    assert m.health()["gpio"]["heartbeats"] == 4


def test_pull_up_input_inverts_correctly(rig: Any) -> None:
    """A normally-closed door switch to ground with the pull-up: closed reads low, open high."""
    m = rig(hw(tamper_switch={"pin": TAMPER, "pull": "up", "active_high": True, "debounce_s": 0}))
    pin = rig.factory.pin(TAMPER)
    pin.drive_low()  # door closed
    t = rig.clock.t
    assert m.poll(t, 0.0) == []
    pin.drive_high()  # door open
    assert [x.phase for x in m.poll(t + 0.1, 0.0)] == ["start"]


def test_pin_conflict_rejected() -> None:
    with pytest.raises(ValueError, match="already used by status_led"):
        hw(beacon={"pin": LED})


def test_gpio_scenario_drives_mock_pins_in_manager(rig: Any) -> None:
    cfg = hw(mock_scenario="gpio_box", pir={"pin": PIR, "pull": "none", "hold_s": 1})
    m = rig(cfg)
    t0 = rig.clock.t
    assert m.motion_active()  # GPIO17 high at t=0 of the scenario
    phases = []
    for i in range(120):
        phases += [(round(i * 0.1, 1), x.phase) for x in m.poll(t0 + i * 0.1, 0.0) if x.kind == "tamper"]
    assert phases == [(5.2, "start"), (9.2, "end")]  # door at 5 s / 9 s plus 0.2 s debounce


def test_beacon_kind_filter(rig: Any) -> None:
    m = rig(hw(beacon={"pin": BEACON, "severities": ["critical"], "kinds": ["tamper"]}))
    pin = rig.factory.pin(BEACON)
    m.alarm(alarm("critical", rig.clock.t, local_ts(12), kind="crowd_surge"))
    assert not pin.state
    m.alarm(alarm("critical", rig.clock.t, local_ts(12), kind="tamper"))
    assert pin.state


def test_status_led_follows_set_status_changes(rig: Any) -> None:
    """A new state restarts its pattern from the beginning, so 'tamper' shows at once."""
    m = rig()
    pin = rig.factory.pin(LED)
    t = rig.clock.t
    m.poll(t, 0.0)
    m.poll(t + 0.15, 0.0)
    assert not pin.state  # healthy blip is over
    m.set_status("tamper")
    m.poll(t + 0.16, 0.0)
    assert pin.state
    assert m.health()["gpio"]["status_led"] == "tamper"


def test_no_gpio_lines_needs_no_pin_factory() -> None:
    m = HardwareManager(HardwareConfig(pin_factory="lgpio"), TZ)  # lgpio is absent here: must not be touched
    m.start()
    try:
        assert m.pin_factory is None and m.poll(0.0, 0.0) == [] and not m.motion_active()
    finally:
        m.stop()


def test_missing_real_pin_factory_fails_fast_with_hint() -> None:
    from edge.errors import HardwareError

    m = HardwareManager(HardwareConfig(pin_factory="lgpio", status_led={"pin": 5}), TZ)  # type: ignore[arg-type]
    with pytest.raises(HardwareError, match="pin_factory: mock"):
        m.start()
