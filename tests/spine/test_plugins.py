"""The simulator plugs into the agent through entry points; the agent never imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge import plugins
from edge.capture import open_source
from edge.config.hardware import HardwareConfig
from edge.config.site import CameraConfig
from edge.errors import CaptureError, HardwareError
from edge.hardware.manager import HardwareManager

REPO = Path(__file__).resolve().parents[2]


def test_simulator_plugins_are_installed() -> None:
    assert plugins.names(plugins.SOURCES) == ["sim"]
    assert "scenario" in plugins.names(plugins.GPIO_DRIVERS)
    assert "demo" in plugins.names(plugins.COMMANDS)


def test_sim_source_opens_through_the_plugin() -> None:
    cam = CameraConfig.model_validate({"id": "s", "source": "sim://street?duration=1", "model": "motion",
                                       "calibration": {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                                       "ground_points_m": [[0, 0], [32, 0], [32, 20], [0, 20]]}})
    src = open_source(cam)
    try:
        assert type(src).__module__.startswith("firmware_sim.")
    finally:
        src.close()


def test_unknown_scheme_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"URL scheme 'nope' is not supported; use one of rtsp.* plug-in \(sim\)"):
        CameraConfig.model_validate({"id": "c1", "source": "nope://x", "model": "motion"})
    cam = CameraConfig.model_validate({"id": "c1", "source": "sim://street", "model": "motion"})
    monkeypatch.setattr(plugins, "source_factory", lambda scheme: None)  # a box without the simulator
    with pytest.raises(CaptureError, match=r"camera c1: no frame source handles sim://.*firmware_sim"):
        open_source(cam)


def test_missing_gpio_plugin_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "gpio_driver", lambda name: None)
    cfg = HardwareConfig.model_validate({"pin_factory": "mock", "mock_scenario": "gpio_box", "pir": {"pin": 17}})
    m = HardwareManager(cfg, "UTC", pin_factory=MockFactory(), ntp_status=lambda: None)
    with pytest.raises(HardwareError, match="mock_scenario needs the GPIO scenario driver"):
        m.start()


def test_edge_modules_never_import_firmware_sim() -> None:
    """Importing every edge module pulls in no firmware_sim module (the plug-ins load on demand)."""
    code = (
        "import pkgutil, importlib, sys, edge\n"
        "for m in pkgutil.walk_packages(edge.__path__, 'edge.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] == 'firmware_sim')\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_command_comes_from_the_plugin() -> None:
    r = subprocess.run([sys.executable, "-m", "edge", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and "demo" in r.stdout
