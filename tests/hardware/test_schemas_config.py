"""Payload schemas of the kinds this package emits, config validation, and the simulator CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from edge.config import hardware as hwcfg
from edge.config.hardware import HardwareConfig
from edge.hardware.codecs import ld2410
from edge.hardware.manager import HardwareManager
from edge.hardware.pins import MockFactory
from tests.hardware.conftest import FakeClock

REPO = Path(__file__).resolve().parents[2]
KINDS = REPO / "edge" / "events" / "schemas" / "kinds"


@pytest.mark.parametrize("kind", ["tamper", "hardware_input", "sensor_status"])
def test_schema_is_valid_with_valid_example(kind: str) -> None:
    schema = json.loads((KINDS / f"{kind}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False and schema["description"]
    for ex in schema["examples"]:
        jsonschema.validate(ex, schema)


def test_emitted_payloads_match_their_schemas() -> None:
    clock = FakeClock()
    f = MockFactory()
    cfg = HardwareConfig.model_validate(
        {
            "pin_factory": "mock",
            "tamper_switch": {"pin": 27, "pull": "none", "debounce_s": 0},
            "pir": {"pin": 17, "pull": "none", "debounce_s": 0, "report_events": True},
            "radar": {"url": "socket://127.0.0.1:9", "stale_after_s": 0.1},
        }
    )
    m = HardwareManager(cfg, "UTC", pin_factory=f, clock=clock, ntp_status=lambda: None)
    m.start()
    try:
        f.pin(27).drive_high()
        f.pin(17).drive_high()
        trs = m.poll(clock.advance(1.0), 100.0)
        f.pin(27).drive_low()
        f.pin(17).drive_low()
        trs += m.poll(clock.advance(1.0), 101.0)
    finally:
        m.stop()
    kinds = sorted({t.kind for t in trs})
    assert kinds == ["hardware_input", "sensor_status", "tamper"]
    for t in trs:
        schema = json.loads((KINDS / f"{t.kind}.json").read_text())
        jsonschema.validate(dict(t.payload), schema)


def _models() -> list[type[BaseModel]]:
    return [
        v
        for v in vars(hwcfg).values()
        if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == hwcfg.__name__
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_config_field_is_described(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"ir_relay": {"pin": 22, "on_below_luma": 80, "off_above_luma": 70}},
            "must be greater than on_below_luma",
        ),
        ({"beacon": {"pin": 6, "quiet_hours": {"start": "25:00", "end": "07:00"}}}, "HH:MM"),
        (
            {"beacon": {"pin": 6, "quiet_hours": {"start": "07:00", "end": "07:00"}}},
            "start and end are equal",
        ),
        ({"status_led": {"pin": 40}}, "not a BCM pin"),
        ({"radar": {"url": "ttyAMA0"}}, "neither a device path"),
        ({"radar": {"url": "http://x"}}, "not supported"),
        ({"mock_scenario": "gpio_box"}, "only works with pin_factory: mock"),
        ({"status_led": {"pin": 5}, "pir": {"pin": 5}}, "already used"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"gps": {"url": "/dev/ttyS0", "bogus": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_problem(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HardwareConfig.model_validate(raw)


def test_is_empty() -> None:
    assert HardwareConfig().is_empty()
    assert not HardwareConfig.model_validate({"gps": {"url": "/dev/ttyS0"}}).is_empty()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_simulator_cli_speaks_ld2410_on_tcp() -> None:
    """`python -m firmware_sim radar --tcp PORT` answers a firmware-version command byte-for-byte."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "radar", "--tcp", str(port), "--scenario", "radar_presence"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"listening socket://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"".join(ld2410.encode_command(c) for c in (ld2410.enable_config(), ld2410.read_firmware()))
            )
            dec = ld2410.FrameDecoder()
            acks: list[ld2410.Ack] = []
            deadline = time.monotonic() + 5
            while len(acks) < 2 and time.monotonic() < deadline:
                acks += [m for m in dec.feed(s.recv(4096)) if isinstance(m, ld2410.Ack)]
        assert [a.command for a in acks] == [ld2410.CMD_ENABLE_CONFIG, ld2410.CMD_READ_FIRMWARE]
        assert ld2410.parse_firmware(acks[1].value) == "V1.02.22062416"
        assert proc.stdin is not None
        proc.stdin.write("bad_tail 2\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok bad_tail 2"  # faults on demand
    finally:
        proc.terminate()
        proc.wait(5)
    assert proc.returncode == 0


def test_bundled_scenarios_load() -> None:
    from firmware_sim.base import SCENARIO_DIR, load_scenario

    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    assert {
        "radar_presence",
        "gps_fix_lost",
        "modem_registered",
        "modem_rejected",
        "modem_slow",
        "modem_errors",
        "gpio_box",
    } <= set(names)
    for n in names:
        sc = load_scenario(n, n.split("_")[0])
        assert sc["timeline"], n


@pytest.mark.parametrize(
    ("lib", "home"), [("serial", "edge/hardware/serial_link.py"), ("gpiozero", "edge/hardware/pins.py")]
)
def test_vendor_library_imported_in_one_adapter_only(lib: str, home: str) -> None:
    import re

    pat = re.compile(rf"^\s*(import {lib}\b|from {lib}(\.| import))", re.M)
    users = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "edge").rglob("*.py") if pat.search(p.read_text())
    )
    assert users == [home]
