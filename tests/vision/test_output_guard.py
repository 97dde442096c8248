"""The run-time output guard: non-finite or absurd rows are dropped and counted, never reach the
tracker; a model that gives nothing but garbage is reported once per state change.

Real ONNX graphs built with ``onnx`` (tests/vision/synth.py) run in onnxruntime on real pixels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.vision.detector import GARBAGE_AFTER_PASSES, OnnxDetector, OutputCheck, OutputGuard
from edge.vision.manifest import load_manifest
from tests.vision.synth import constant_model, synthetic_manifest, write_manifest

NAN = float("nan")
FRAME = np.full((128, 128, 3), 90, np.uint8)


def yolox_detector(tmp: Path, name: str, rows: dict[int, list[float]], fill: float = 0.0) -> OnnxDetector:
    out = np.full((1, 84, 6), fill, np.float32)
    for cell, row in rows.items():
        out[0, cell] = row
    f = constant_model(tmp / f"{name}.onnx", "images", [1, 3, 64, 64], {"output": out})
    manifest = write_manifest(
        tmp, synthetic_manifest(name, f, "yolox", ["person"], class_map={"person": "person"})
    )
    return OnnxDetector(load_manifest(str(manifest)), warmup=False)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name == "edge.vision.detector"]


@pytest.mark.parametrize(
    ("name", "rows", "fill", "counter"),
    [
        ("all_nan", {}, NAN, "nonfinite_values"),
        ("logits", {5: [0.5, 0.5, 1.0, 1.0, 6.0, 9.0]}, 0.0, "score_range"),
        ("astro", {5: [0.5, 0.5, 9.0, 9.0, 0.9, 0.9]}, 0.0, "huge_box"),
        ("overflow", {5: [1e30, 1e30, 1e30, 1e30, 0.9, 0.9]}, 0.0, "non_finite"),
    ],
)
def test_garbage_only_model_is_reported_once_and_feeds_nothing(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    rows: dict[int, list[float]],
    fill: float,
    counter: str,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.vision.detector")
    det = yolox_detector(tmp_path, name, rows, fill)
    for _ in range(GARBAGE_AFTER_PASSES + 5):
        d = det.detect_image(FRAME)
        assert len(d) == 0  # nothing for the tracker
        assert np.isfinite(d.xyxy).all() and np.isfinite(d.confidence).all()
    h = det.output_health()
    assert h["state"] == "garbage" and h["bad_passes"] == h["passes"] == GARBAGE_AFTER_PASSES + 5
    if counter == "nonfinite_values":
        assert h["nonfinite_values"] == (GARBAGE_AFTER_PASSES + 5) * 84 * 6
    else:
        assert h["dropped_rows"][counter] == GARBAGE_AFTER_PASSES + 5  # type: ignore[index]
    warnings, errors = _messages(caplog, logging.WARNING), _messages(caplog, logging.ERROR)
    assert len(warnings) == 1 and f"model={name} gave non-finite or absurd outputs" in warnings[0]
    assert "edge-agent model check" in warnings[0]
    assert len(errors) == 1 and "produces only non-finite or absurd outputs" in errors[0]
    assert f"{GARBAGE_AFTER_PASSES} passes in a row" in errors[0]


def test_bad_rows_are_dropped_and_good_ones_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A NaN box next to a sane detection: the sane one reaches the tracker, the NaN one is counted."""
    caplog.set_level(logging.INFO, logger="edge.vision.detector")
    det = yolox_detector(
        tmp_path,
        "mixed",
        {
            5: [0.5, 0.5, 1.0, 1.0, 0.9, 0.9],  # a box around cell 5
            40: [NAN, 0.5, 1.0, 1.0, 0.9, 0.9],  # same score, NaN x
            41: [0.5, 0.5, 1.0, 1.0, 7.0, 0.9],  # score 6.3: not a probability
        },
    )
    for _ in range(5):
        d = det.detect_image(FRAME)
        assert len(d) == 1 and np.isfinite(d.xyxy).all() and 0 <= d.confidence[0] <= 1
    h = det.output_health()
    assert h["state"] == "ok" and h["bad_passes"] == 5
    assert h["dropped_rows"] == {"non_finite": 5, "score_range": 5, "huge_box": 0}
    assert h["nonfinite_values"] == 5
    assert len(_messages(caplog, logging.WARNING)) == 1 and not _messages(caplog, logging.ERROR)


def test_healthy_model_is_untouched(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.vision.detector")
    det = yolox_detector(tmp_path, "fine", {5: [0.5, 0.5, 1.0, 1.0, 0.9, 0.9]})
    assert len(det.detect_image(FRAME)) == 1
    assert det.output_health() == {
        "state": "ok",
        "passes": 1,
        "bad_passes": 0,
        "nonfinite_values": 0,
        "dropped_rows": {"non_finite": 0, "score_range": 0, "huge_box": 0},
    }
    assert not caplog.records


def test_guard_state_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.vision.detector")
    g = OutputGuard("m")
    bad, clean = OutputCheck(nonfinite_values=3), OutputCheck()
    timeline = [(bad, 0)] * 2 + [(bad, 2)] + [(bad, 0)] * 6 + [(clean, 1)] * 3 + [(bad, 0)] * 3
    states = []
    for check, kept in timeline:
        g.record(check, kept)
        states.append(g.state)
    # 2 garbage passes are not enough; a pass with detections resets the streak
    assert states[:9] == ["ok"] * 5 + ["garbage"] * 4
    assert states[9:12] == ["ok"] * 3 and states[-1] == "garbage"
    msgs = [(r.levelname, r.getMessage()[:40]) for r in caplog.records]
    assert [lvl for lvl, _ in msgs] == ["WARNING", "ERROR", "INFO", "ERROR"]
