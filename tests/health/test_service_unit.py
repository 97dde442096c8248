"""The systemd unit carries the supervision contract."""

from __future__ import annotations

import configparser
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "edge-agent.service"


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(UNIT.read_text())
    return cp


def test_notify_watchdog_restart() -> None:
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["Restart"] == "always"
    assert svc["WatchdogSec"].rstrip("s").isdigit() and int(svc["WatchdogSec"].rstrip("s")) >= 10
    assert svc["User"] == "edge"
    assert svc["ExecStart"].endswith("edge-agent run --config /etc/edge/site.yaml")
    assert svc["KillSignal"] == "SIGTERM" and "TimeoutStopSec" in svc


def test_hardened() -> None:
    svc = _unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert svc[key] == value, key
    assert "/var/lib/edge" in svc["ReadWritePaths"]
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"
