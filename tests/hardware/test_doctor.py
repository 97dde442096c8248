"""``edge-agent doctor`` on a simulated box: sim serial devices on sockets, mock pins, a real
mosquitto with mutual TLS, a real image file as the camera."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.config import parse_config
from edge.config.site import SiteConfig
from edge.hardware.doctor import exit_code, format_table, run_doctor
from edge.hardware.pins import MockFactory
from tests.fixtures.broker import Broker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim_box(tmp_path: Path, radar_sim: Any, gps_sim: Any, modem_sim: Any) -> dict[str, Any]:
    img = tmp_path / "cam0.png"
    cv2.imwrite(str(img), np.full((240, 320, 3), 90, np.uint8))
    radar = radar_sim({"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 200, "energy": 50}]})
    gps = gps_sim({"rate_hz": 5})
    modem = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 21}]})
    return {
        "config_version": 1,
        "device_id": "pole-1",
        "site_id": "lab",
        "timezone": "Asia/Shanghai",
        "cameras": [{"id": "cam0", "source": str(img), "model": "motion"}],
        "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
        "hardware": {
            "pin_factory": "mock",
            "status_led": {"pin": 5},
            "beacon": {"pin": 6},
            "tamper_switch": {"pin": 27, "pull": "none"},
            "pir": {"pin": 17, "pull": "none"},
            "ir_relay": {"pin": 22},
            "heartbeat": {"pin": 24},
            "radar": {"url": radar.url},
            "gps": {"url": gps.url},
            "modem": {"url": modem.url, "fallback": {"host": "127.0.0.1", "client_id": "pole-1"}},
            "disk_min_free_mb": 1,
        },
    }


def with_broker(raw: dict[str, Any], b: Broker, tmp: Path, *, client_cert: bool = True) -> dict[str, Any]:
    assert b.tls is not None
    tls: dict[str, Any] = {"ca_file": str(b.tls.ca)}
    if client_cert:
        cert, key = b.tls.client("pole-1")
        tls.update(cert_file=str(cert), key_file=str(key))
    raw = dict(raw)
    raw["uplink"] = {
        "outbox_path": str(tmp / "outbox.sqlite"),
        "mqtt": {"host": "127.0.0.1", "port": b.port, "tls": tls, "connect_timeout_s": 3},
    }
    return raw


def rows(results: list[Any]) -> dict[str, str]:
    return {r.name: r.status for r in results}


@pytest.mark.broker
def test_doctor_passes_on_simulated_box(
    sim_box: dict[str, Any], mosquitto_tls: Broker, tmp_path: Path
) -> None:
    cfg = SiteConfig.model_validate(with_broker(sim_box, mosquitto_tls, tmp_path))
    results = run_doctor(cfg, timeout_s=3, pin_factory=MockFactory(), ntp=lambda: True)
    table = format_table(results)
    assert rows(results) == {
        "camera cam0": "pass",
        "model cam0": "pass",
        "outbox disk": "pass",
        "gpio status_led": "pass",
        "gpio beacon": "pass",
        "gpio tamper_switch": "pass",
        "gpio pir": "pass",
        "gpio ir_relay": "pass",
        "gpio heartbeat": "pass",
        "broker": "pass",
        "radar": "pass",
        "gps": "pass",
        "modem": "pass",
        "clock": "pass",
    }, table
    assert exit_code(results) == 0
    assert "V1.02.22062416" in table and "320x240" in table and "registered_home" in table


def test_doctor_fails_clearly_when_a_device_is_missing(sim_box: dict[str, Any]) -> None:
    sim_box["hardware"]["radar"]["url"] = "socket://127.0.0.1:9"  # nothing listens on the discard port
    cfg = SiteConfig.model_validate(sim_box)
    results = run_doctor(cfg, timeout_s=1, pin_factory=MockFactory(), ntp=lambda: False)
    r = {x.name: x for x in results}
    assert r["radar"].status == "fail" and "cannot open" in r["radar"].detail
    assert r["gps"].status == "pass" and r["modem"].status == "pass"
    assert r["clock"].status == "warn"
    assert exit_code(results) == 1
    table = format_table(results)
    assert (
        "FAIL" in table
        and "hint: check the radar's UART wiring" in table
        and table.rstrip().split("\n")[-1].startswith("FAILED")
    )


def test_doctor_silent_radar_and_denied_modem(sim_box: dict[str, Any], modem_sim: Any) -> None:
    import socket

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    try:
        sim_box["hardware"]["radar"]["url"] = f"socket://127.0.0.1:{ls.getsockname()[1]}"
        sim_box["hardware"]["modem"]["url"] = modem_sim({"timeline": [{"at_s": 0, "registration": 3}]}).url
        results = run_doctor(
            SiteConfig.model_validate(sim_box), timeout_s=1, pin_factory=MockFactory(), ntp=lambda: True
        )
    finally:
        ls.close()
    r = {x.name: x for x in results}
    assert (
        r["radar"].status == "fail"
        and "no firmware-version ACK" in r["radar"].detail
        and "256000" in r["radar"].hint
    )
    assert r["modem"].status == "warn" and "denied" in r["modem"].detail and r["modem"].hint


@pytest.mark.broker
def test_doctor_fails_when_broker_refuses_the_certificate(
    sim_box: dict[str, Any], mosquitto_tls: Broker, tmp_path: Path
) -> None:
    cfg = SiteConfig.model_validate(with_broker(sim_box, mosquitto_tls, tmp_path, client_cert=False))
    results = run_doctor(cfg, timeout_s=3, pin_factory=MockFactory(), ntp=lambda: True)
    r = {x.name: x for x in results}
    assert r["broker"].status == "fail" and r["broker"].essential
    assert "certificate" in r["broker"].hint
    assert "FAIL" in format_table([r["broker"]])
    assert exit_code(results) == 1


def test_missing_probe_module_is_a_fail_row_not_a_crash(
    sim_box: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "edge.capture", None)  # import edge.capture now raises ImportError
    sim_box["uplink"]["mqtt"] = {
        "host": "127.0.0.1",
        "port": 9,
        "allow_insecure": True,
        "connect_timeout_s": 1,
    }
    monkeypatch.setitem(sys.modules, "edge.uplink.mqtt", None)
    results = run_doctor(
        SiteConfig.model_validate(sim_box), timeout_s=1, pin_factory=MockFactory(), ntp=lambda: True
    )
    r = {x.name: x for x in results}
    assert r["camera cam0"].status == "fail" and "cannot import" in r["camera cam0"].detail
    assert r["broker"].status == "fail" and "cannot import" in r["broker"].detail
    assert exit_code(results) == 1


def test_low_disk_fails(sim_box: dict[str, Any]) -> None:
    sim_box["hardware"]["disk_min_free_mb"] = 1e12
    results = run_doctor(
        SiteConfig.model_validate(sim_box), timeout_s=1, pin_factory=MockFactory(), ntp=lambda: True
    )
    assert rows(results)["outbox disk"] == "fail"


def test_doctor_cli_end_to_end(sim_box: dict[str, Any], tmp_path: Path) -> None:
    """The real command line: `python -m edge doctor --config FILE` prints the table and sets the exit code."""
    cfg_file = tmp_path / "site.yaml"
    cfg_file.write_text(yaml.safe_dump(sim_box))
    parse_config(yaml.safe_load(cfg_file.read_text()))  # the file is a valid site config
    ok = subprocess.run(
        [sys.executable, "-m", "edge", "doctor", "--config", str(cfg_file), "--timeout", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert "CHECK" in ok.stdout and "radar" in ok.stdout and "PASS" in ok.stdout, ok.stdout + ok.stderr
    assert ok.returncode == 0, ok.stdout + ok.stderr  # no broker configured: a warning, not a failure
    sim_box["hardware"]["gps"]["url"] = "/dev/ttyNOPE"
    cfg_file.write_text(yaml.safe_dump(sim_box))
    bad = subprocess.run(
        [sys.executable, "-m", "edge", "doctor", "--config", str(cfg_file), "--timeout", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert bad.returncode == 1
    assert any(line.startswith("gps") and "FAIL" in line for line in bad.stdout.splitlines()), bad.stdout
