"""firmware_sim/street/demo-street.yaml (the demo's config) must match the street it watches, and load."""

from __future__ import annotations

from pathlib import Path

import yaml

from edge.config import load_config
from firmware_sim.street import open_street_source
from firmware_sim.street.scenario import camera_layout

CONFIG = Path(__file__).resolve().parents[2] / "firmware_sim" / "street" / "demo-street.yaml"


def test_demo_config_loads_and_uses_the_street_and_the_motion_backend() -> None:
    cfg = load_config(CONFIG)
    (cam,) = cfg.cameras
    assert cam.source == "sim://street"
    assert cam.model == "motion"
    assert cam.calibration is not None


def test_demo_config_zones_match_the_street_layout() -> None:
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["cameras"][0]
    layout = camera_layout()
    for key in ("lines", "calibration"):
        assert raw[key] == layout[key], key
    want = {z["id"]: z for z in layout["zones"]}  # type: ignore[attr-defined]
    got = {z["id"]: z for z in raw["zones"]}
    assert set(got) == set(want)
    for zid, zone in want.items():
        assert got[zid]["kind"] == zone["kind"]
        assert got[zid]["polygon"] == zone["polygon"], zid
        assert got[zid].get("capacity") == zone.get("capacity"), zid


def test_the_capture_hook_opens_the_configured_street() -> None:
    cfg = load_config(CONFIG)
    cam = cfg.cameras[0].model_copy(update={"source": "sim://street?duration=2&seed=4"})
    src = open_street_source(cam)
    assert src.fps == cam.detect_fps
    assert (src.renderer.width, src.renderer.height) == tuple(cam.resolution or ())
    assert src.duration_s == 2.0 and src.options.seed == 4
    assert src.camera_id == cam.id
