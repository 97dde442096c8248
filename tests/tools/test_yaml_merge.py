"""Saving from the calibration page edits only the keys it changed: every example config keeps its comments."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.tools.yaml_merge import SpliceError, splice_camera_keys

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def _comment_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("#")]


def _inline_comments(text: str) -> list[str]:
    return [
        ln.split(" #", 1)[1].strip()
        for ln in text.splitlines()
        if " #" in ln and not ln.strip().startswith("#")
    ]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_adding_a_zone_and_a_line_keeps_every_comment(path: Path) -> None:
    text = path.read_text()
    data = yaml.safe_load(text)
    cam = data["cameras"][0]
    zones = [
        *copy.deepcopy(cam.get("zones") or []),
        {"id": "new-zone", "kind": "count", "polygon": [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]},
    ]
    lines = [*copy.deepcopy(cam.get("lines") or []), {"id": "new-line", "a": [0.1, 0.5], "b": [0.9, 0.5]}]
    out = splice_camera_keys(
        text, cam["id"], {"zones": zones, "lines": lines, "calibration": cam.get("calibration")}
    )
    # Nothing else changed: every comment line and every trailing comment is still there.
    assert _comment_lines(out) == _comment_lines(text)
    assert _inline_comments(out) == _inline_comments(text)
    got = yaml.safe_load(out)
    want = copy.deepcopy(data)
    want["cameras"][0]["zones"] = zones
    want["cameras"][0]["lines"] = lines
    assert got == want
    # Lines of the original file are all still there, in order (only new ones were added).
    old_lines = text.splitlines()
    new_lines = iter(out.splitlines())
    assert all(any(o == n for n in new_lines) for o in old_lines)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_changing_one_zone_rewrites_only_that_zone(path: Path) -> None:
    text = path.read_text()
    data = yaml.safe_load(text)
    cam = data["cameras"][0]
    zones = copy.deepcopy(cam.get("zones") or [])
    if not zones:
        pytest.skip("no zones in this example")
    zones[-1]["polygon"] = [[0.3, 0.3], [0.4, 0.3], [0.4, 0.4]]
    out = splice_camera_keys(text, cam["id"], {"zones": zones})
    removed = [ln for ln in text.splitlines() if ln not in out.splitlines()]
    # At most the changed zone's own lines were rewritten.
    assert 0 < len(removed) <= len(yaml.safe_dump(cam["zones"][-1]).splitlines()) + 1, removed
    assert yaml.safe_load(out)["cameras"][0]["zones"] == zones


def test_removing_a_key_and_an_unchanged_save_is_a_no_op() -> None:
    text = (Path(__file__).resolve().parents[2] / "configs" / "plaza-crowd.yaml").read_text()
    data = yaml.safe_load(text)
    cam = data["cameras"][0]
    same = {k: cam.get(k) for k in ("zones", "lines", "calibration")}
    assert splice_camera_keys(text, cam["id"], same) == text
    out = splice_camera_keys(text, cam["id"], {"calibration": None})
    assert "calibration" not in yaml.safe_load(out)["cameras"][0]
    assert "image_points" not in out


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("cameras: [{id: c, source: x, zones: []}]\n", "block list"),
        ("base: &z {id: a}\ncameras:\n  - id: c\n    source: x\n    zones: [*z]\n", "aliases"),
        ("cameras:\n  - id: other\n    source: x\n", "no camera"),
    ],
)
def test_layouts_it_cannot_edit_in_place_are_refused(text: str, why: str) -> None:
    zones: list[dict[str, Any]] = [{"id": "z", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    with pytest.raises(SpliceError, match=why):
        splice_camera_keys(text, "c", {"zones": zones})
