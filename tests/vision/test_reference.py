"""Every shipped manifest on every shared image agrees with the independent reference decoder:
same counts per label at the reference threshold, every box within IoU 0.9 of a reference box."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge.geometry import iou_matrix
from tests.fixtures.assets import require_asset

REPO = Path(__file__).resolve().parents[2]
REFERENCE = {  # manifest name -> reference file
    "yolox_nano_416": "yolox_nano_416",
    "nanodet_plus_m_416": "nanodet_plus_m_416",
    "picodet_xs_320": "picodet_xs_320_post",
    "deimv2_atto_320": "deimv2_atto_320",
    "light_person_192": "light_person_192",
}


def _run_detect(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    """Drive the real ``detect`` sub-command through argparse (what edge-agent does)."""
    import argparse

    from edge.vision.cli import register

    parser = argparse.ArgumentParser(prog="edge-agent")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    rc = args.func(args)
    cap = capsys.readouterr()
    return rc, [json.loads(ln) for ln in cap.out.splitlines() if ln.strip()], cap.err


def _assert_matches(model: str, image: str, got: list[dict], ref: dict) -> None:
    counts = Counter(d["label"] for d in got)
    assert dict(counts) == ref["counts"], (
        f"{model} on {image}: counts {dict(counts)} != reference {ref['counts']}"
    )
    if got:
        ours = np.array([d["box"] for d in got], float)
        theirs = np.array([d["box"] for d in ref["detections"]], float)
        best = iou_matrix(ours, theirs).max(axis=1)
        assert best.min() >= 0.9, (
            f"{model} on {image}: a box overlaps no reference box (IoU {best.min():.3f})"
        )


@pytest.mark.assets
@pytest.mark.parametrize("model", sorted(REFERENCE))
def test_detect_matches_reference(model: str, assets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = json.loads(require_asset(f"reference/{REFERENCE[model]}.json").read_text())
    images = {str(assets / rel): rel for rel in ref["images"]}
    rc, lines, _ = _run_detect(
        ["detect", "--model", model, "--threshold", str(ref["score_threshold"]), *images], capsys
    )
    assert rc == 0
    assert [ln["image"] for ln in lines] == list(images)
    for ln in lines:
        assert ln["model"] == model and len(ln["model_sha256"]) == 8
        for d in ln["detections"]:
            assert d["class"] in ("person", "bicycle", "motorcycle", "car", "bus", "truck", "other")
        _assert_matches(model, images[ln["image"]], ln["detections"], ref["images"][images[ln["image"]]])


@pytest.mark.assets
def test_class_map_gives_canonical_class_and_other(assets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = require_asset("media/darknet_dog_bicycle.jpg")
    rc, lines, _ = _run_detect(
        ["detect", "--model", "yolox_nano_416", "--threshold", "0.3", str(img)], capsys
    )
    assert rc == 0
    pairs = {(d["label"], d["class"]) for d in lines[0]["detections"]}
    assert ("dog", "other") in pairs and ("bicycle", "bicycle") in pairs and ("truck", "truck") in pairs


@pytest.mark.assets
def test_detect_annotate_writes_png(assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    img = require_asset("media/roboflow-inference_truck.jpg")
    rc, lines, _ = _run_detect(
        ["detect", "--model", "picodet_xs_320", "--annotate", str(tmp_path), str(img)], capsys
    )
    assert rc == 0 and lines[0]["detections"]
    out = cv2.imread(str(tmp_path / "roboflow-inference_truck.png"))
    src = cv2.imread(str(img))
    assert out is not None and out.shape == src.shape
    x1, y1, x2, _y2 = (int(v) for v in lines[0]["detections"][0]["box"])
    # the box outline was drawn: pixels on its edge differ from the source
    assert np.abs(out[y1 + 1, x1:x2].astype(int) - src[y1 + 1, x1:x2].astype(int)).sum() > 0


def test_detect_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run_detect(["detect", "--model", "no_such_model", str(tmp_path / "x.jpg")], capsys)
    assert rc == 2
    assert "unknown model 'no_such_model'" in err and "available: " in err and "yolox_nano_416" in err


@pytest.mark.assets
def test_detect_unreadable_image_exit_2(
    assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    good = require_asset("media/coco_val2017/000000008211.jpg")
    rc, lines, err = _run_detect(["detect", "--model", "light_person_192", str(bad), str(good)], capsys)
    assert rc == 2
    assert "not_an_image.jpg: cannot read as an image" in err
    assert [ln["image"] for ln in lines] == [str(good)]  # the good image is still processed


@pytest.mark.assets
def test_detect_through_real_cli_subprocess(assets: Path) -> None:
    """``python -m edge detect`` end to end (the lead's edge/cli.py registers edge.vision.cli)."""
    ref = json.loads(require_asset("reference/deimv2_atto_320.json").read_text())
    rel = "media/coco_val2017/000000334371.jpg"
    env = {**os.environ, "EDGE_MODEL_PATH": str(assets / "models")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "detect",
            "--model",
            "deimv2_atto_320",
            "--threshold",
            str(ref["score_threshold"]),
            str(assets / rel),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    _assert_matches("deimv2_atto_320", rel, line["detections"], ref["images"][rel])


@pytest.mark.assets
def test_detect_shows_the_models_own_boxes_unless_asked_to_merge_person_parts(
    assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`detect` is the model's output (what the reference decoder checks); --merge-person-parts applies the
    agent's rule: the man at the trolley, boxed twice by NanoDet (with and without the trolley), is one."""
    img = str(require_asset("media/coco_val2017/000000009891.jpg"))

    def people(*extra: str) -> int:
        rc, lines, _ = _run_detect(["detect", "--model", "nanodet_plus_m_416", *extra, img], capsys)
        assert rc == 0
        return sum(d["class"] == "person" for d in lines[0]["detections"])

    assert (people(), people("--merge-person-parts")) == (3, 2)
