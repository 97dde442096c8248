"""``edge-agent model check``: the shipped models pass; broken models are refused with a report a
technician can act on and a non-zero exit; a vendor's new manifest passes without code changes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.vision.cli import register
from tests.fixtures.assets import require_asset
from tests.vision.synth import constant_model, sha256, shipped, synthetic_manifest, write_manifest

SHIPPED = ["yolox_nano_416", "nanodet_plus_m_416", "picodet_xs_320", "deimv2_atto_320", "light_person_192"]


def model_check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="edge-agent")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["model", "check", *argv])
    rc = args.func(args)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.mark.assets
@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_models_pass(model: str, assets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = require_asset("media/coco_val2017/000000181542.jpg")
    rc, out = model_check([model, "--image", str(img), "--repeats", "3"], capsys)
    assert rc == 0, out
    assert out.rstrip().endswith("PASS")
    assert (
        "latency (median of 3" in out and "inference" in out and "pre-processing" in out and "decoding" in out
    )
    assert "000000181542.jpg (640x" in out and "detections (" in out


# ---- broken models: each (name, how to break it, what the report must say, exit code) ----------


def _yolox(tmp: Path) -> dict[str, Any]:
    return shipped("yolox_nano_416")


def _corrupt(tmp: Path) -> dict[str, Any]:
    src = require_asset("models/yolox_nano_416.onnx")
    bad = tmp / "corrupt_yolox.onnx"
    bad.write_bytes(src.read_bytes()[:200_000])
    m = shipped("yolox_nano_416")
    m["file"].update(name=bad.name, sha256=sha256(bad))
    return m


def _set(path: str, value: Any, base: str = "yolox_nano_416") -> Callable[[Path], dict[str, Any]]:
    def make(tmp: Path) -> dict[str, Any]:
        m = shipped(base)
        node = m
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return m

    return make


def _nan_model(tmp: Path) -> dict[str, Any]:
    out = np.zeros((1, 84, 6), np.float32)  # yolox grid for 64x64: 64 + 16 + 4 cells
    out[0, :, 4] = np.nan
    f = constant_model(tmp / "nan.onnx", "images", [1, 3, 64, 64], {"output": out})
    return synthetic_manifest("nan_model", f, "yolox", ["person"], class_map={"person": "person"})


def _yolox_rows(
    name: str, rows: dict[int, list[float]], fill: float = 0.0
) -> Callable[[Path], dict[str, Any]]:
    """A 64x64 yolox-family graph with constant outputs: ``rows`` {cell: [dx, dy, log_w, log_h, obj, cls]}."""

    def make(tmp: Path) -> dict[str, Any]:
        out = np.full((1, 84, 6), fill, np.float32)  # yolox grid for 64x64: 64 + 16 + 4 cells
        for cell, row in rows.items():
            out[0, cell] = row
        f = constant_model(tmp / f"{name}.onnx", "images", [1, 3, 64, 64], {"output": out})
        return synthetic_manifest(name, f, "yolox", ["person"], class_map={"person": "person"})

    return make


# exp(3) * 8 = 160 px wide around cell 5: beyond a 64 px image, but not absurd
_far_boxes = _yolox_rows("far", {5: [0.5, 0.5, 3.0, 3.0, 0.9, 0.9]})
# exp(8) * 8 px wide: thousands of image widths
_astronomic_boxes = _yolox_rows("astro", {5: [0.5, 0.5, 8.0, 8.0, 0.9, 0.9]})
# obj and cls are logits but the manifest says probabilities: score 6 * 9 = 54
_logit_scores = _yolox_rows("logits", {5: [0.5, 0.5, 1.0, 1.0, 6.0, 9.0], 9: [0.5, 0.5, 1.0, 1.0, -4.0, 2.0]})
# finite but absurd raw values: exp() of them overflows to inf
_huge_outputs = _yolox_rows("huge", {5: [1e30, 1e30, 1e30, 1e30, 0.9, 0.9]})
# one NaN cell among sane ones: the output check still sees it
_one_nan_cell = _yolox_rows("one_nan", {5: [0.5, 0.5, 1.0, 1.0, 0.9, 0.9], 7: [float("nan")] * 6})
# every value the largest float32: boxes become inf/NaN
_max_float = _yolox_rows("maxf", {}, fill=3e38)


def _picodet_labels_10(tmp: Path) -> dict[str, Any]:
    m = shipped("picodet_xs_320")
    m["labels"] = m["labels"][:10]
    return m


BROKEN: list[tuple[str, Callable[[Path], dict[str, Any]], list[str], int]] = [
    ("corrupt file", _corrupt, ["cannot be loaded by onnxruntime", "corrupt_yolox.onnx"], 1),
    ("wrong sha256", _set("file.sha256", "0" * 64), ["sha256 is 695e750a", "expects 000000"], 1),
    (
        "missing file",
        _set("file.name", "nowhere.onnx"),
        ["nowhere.onnx", "not found; looked in", "EDGE_MODEL_PATH"],
        1,
    ),
    (
        "wrong input size",
        _set("input.size", [320, 320]),
        ["input images has shape [1,3,416,416]; the manifest says NCHW 320x320"],
        1,
    ),
    (
        "wrong input name",
        _set("input.name", "image"),
        ["input 'image' (input.name) is not in the graph", "images [1,3,416,416]"],
        1,
    ),
    (
        "wrong layout",
        _set("input.layout", "NHWC"),
        ["input images has shape [1,3,416,416]; the manifest says NHWC"],
        1,
    ),
    (
        "wrong input dtype",
        _set("input.dtype", "uint8"),
        ["input images is float32; the manifest says input.dtype uint8"],
        1,
    ),
    (
        "wrong decoder family",
        _set("decoder", {"family": "yolov8", "params": {"strides": [8, 16, 32]}}),
        ["output 0 has shape [1,3549,85]; the yolov8 decoder expects [1,4+C,N]"],
        1,
    ),
    ("detr family on a grid model", _set("decoder", {"family": "detr"}), ["the detr decoder expects"], 1),
    (
        "unknown decoder family",
        _set("decoder", {"family": "yolo9000"}),
        ["decoder family 'yolo9000' is unknown; available: detr"],
        1,
    ),
    (
        "wrong strides",
        _set("decoder.params", {"strides": [16, 32, 64]}),
        ["expects [1,894,5+C] (N=894 cells for input 416x416, strides [16, 32, 64])"],
        1,
    ),
    (
        "unknown decoder param",
        _set("decoder.params", {"strides": [8, 16, 32], "anchors": 3}),
        ["unknown ['anchors']"],
        1,
    ),
    (
        "wrong reg_max",
        _set("decoder.params", {"reg_max": 10}, base="nanodet_plus_m_416"),
        ["stride 8: no box head [1,2704,44]", "output 3 [1,2704,32]"],
        1,
    ),
    (
        "missing extra input",
        _set("input.extra", [], base="picodet_xs_320"),
        ["graph input scale_factor [1,2] float32 is not fed: add it to input.extra"],
        1,
    ),
    (
        "extra input not in graph",
        _set("input.extra", [{"name": "im_shape", "kind": "orig_size_hw"}]),
        ["input.extra 'im_shape' is not a graph input"],
        1,
    ),
    (
        "label count differs",
        _set("labels", shipped("yolox_nano_416")["labels"][:79]),
        ["the outputs carry 80 classes but the manifest lists 79 labels"],
        1,
    ),
    (
        "label ids beyond the label list",
        _picodet_labels_10,
        ["decoded label id", "manifest lists 10 labels"],
        1,
    ),
    (
        "class_map to a non-canonical class",
        _set("class_map", {"car": "automobile"}),
        ["class_map.car: 'automobile' is not a canonical class"],
        1,
    ),
    (
        "class_map of an unknown label",
        _set("class_map", {"lorry": "truck"}),
        ["class_map: 'lorry' is not one of the model's labels"],
        1,
    ),
    ("NaN outputs", _nan_model, ["output 0 has 84 NaN/inf values"], 1),
    ("boxes outside the image", _far_boxes, ["boxes fall outside the", "check input.size"], 1),
    ("astronomic boxes", _astronomic_boxes, ["boxes are of astronomic size", "check input.size"], 1),
    (
        "logit scores",
        _logit_scores,
        ["decoded scores are outside 0..1", "score 54", "set the decoder's sigmoid"],
        1,
    ),
    (
        "huge outputs",
        _huge_outputs,
        ["output 0 has values as large as 1e+30", "decoded boxes or scores are NaN/inf", "overflow"],
        1,
    ),
    ("one NaN cell", _one_nan_cell, ["output 0 has 6 NaN/inf values of 504"], 1),
    ("largest floats", _max_float, ["values as large as 3e+38", "NaN/inf (e.g. box [nan"], 1),
]


@pytest.mark.assets
@pytest.mark.parametrize(("case", "make", "expect", "code"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_model_refused(
    case: str,
    make: Callable[[Path], dict[str, Any]],
    expect: list[str],
    code: int,
    assets: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = write_manifest(tmp_path, make(tmp_path), name=f"broken_{len(case)}")
    img = require_asset("media/darknet_dog_bicycle.jpg")
    rc, out = model_check([str(manifest), "--image", str(img), "--repeats", "1"], capsys)
    assert rc == code, out
    assert "FAIL" in out and "PASS" not in out
    for text in expect:
        assert text in out, f"{case}: expected {text!r} in the report:\n{out}"


def test_broken_count() -> None:
    assert len(BROKEN) >= 10


def test_unreadable_image_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = model_check(["yolox_nano_416", "--image", str(tmp_path / "none.jpg")], capsys)
    assert rc == 2 and "cannot read as an image" in out


# ---- vendor models: a new manifest, no code ---------------------------------------------------


@pytest.mark.assets
def test_vendor_manifest_for_existing_family(
    assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vendor ships its own YOLOX-family person model under its own name and thresholds."""
    weights = require_asset("models/light_person_detector_kazuhito00.onnx")
    m = shipped("light_person_192")
    m.update(
        name="acme_person_v2",
        labels=["pedestrian"],
        class_map={"pedestrian": "person"},
        thresholds={"default": 0.25, "person": 0.35},
    )
    m["file"].update(name=weights.name, licence="Proprietary", source="ACME Corp")
    manifest = write_manifest(tmp_path, m)
    img = require_asset("media/coco_val2017/000000038829.jpg")
    rc, out = model_check([str(manifest), "--image", str(img), "--repeats", "2"], capsys)
    assert rc == 0, out
    assert "image " in out and "pedestrian" in out


def _yolov8_vendor(tmp: Path) -> tuple[dict[str, Any], list[float]]:
    out = np.zeros((1, 6, 84), np.float32)  # [1, 4+C, N], C=2, N=84 cells for 64x64
    out[0, :, 10] = [32, 32, 20, 30, 0.05, 0.9]  # cx, cy, w, h, pedestrian, van
    out[0, :, 40] = [10, 12, 8, 8, 0.1, 0.05]  # below threshold
    f = constant_model(tmp / "acme_v8.onnx", "images", [1, 3, 64, 64], {"output0": out})
    m = synthetic_manifest(
        "acme_v8", f, "yolov8", ["pedestrian", "van"], class_map={"pedestrian": "person", "van": "car"}
    )
    return m, [44, 34, 84, 94]  # input box [22,17,42,47] / 0.5 for a 128x128 image


def _ssd_vendor(tmp: Path) -> tuple[dict[str, Any], list[float]]:
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, 3] = [0.25, 0.5, 0.5, 0.75]  # y1, x1, y2, x2 (normalised, TF order)
    scores = np.zeros((1, 10, 3), np.float32)
    scores[0, :, 0] = 0.9  # background everywhere
    scores[0, 3] = [0.1, 0.05, 0.85]
    f = constant_model(tmp / "acme_ssd.onnx", "images", [1, 3, 64, 64], {"boxes": boxes, "scores": scores})
    m = synthetic_manifest(
        "acme_ssd",
        f,
        "ssd",
        ["bike", "bus"],
        params={"box_order": "yxyx", "background": True},
        class_map={"bike": "bicycle", "bus": "bus"},
    )
    return m, [64, 32, 96, 64]


def _detr_vendor(tmp: Path) -> tuple[dict[str, Any], list[float]]:
    logits = np.full((1, 5, 2), -6.0, np.float32)
    logits[0, 2, 1] = 3.0
    boxes = np.zeros((1, 5, 4), np.float32)
    boxes[0, 2] = [0.5, 0.5, 0.25, 0.5]  # cx, cy, w, h normalised
    f = constant_model(
        tmp / "acme_detr.onnx", "images", [1, 3, 64, 64], {"pred_logits": logits, "pred_boxes": boxes}
    )
    m = synthetic_manifest(
        "acme_detr",
        f,
        "detr",
        ["person", "truck"],
        nms="none",
        params={"box_format": "cxcywh", "box_space": "normalized"},
        class_map={"person": "person", "truck": "truck"},
    )
    return m, [48, 32, 80, 96]


def _nms_rows_vendor(tmp: Path) -> tuple[dict[str, Any], list[float]]:
    rows = np.array([[1, 0.8, 10, 20, 50, 60], [0, 0.2, 1, 1, 5, 5], [-1, 0, 0, 0, 0, 0]], np.float32)
    f = constant_model(
        tmp / "acme_rows.onnx",
        "images",
        [1, 3, 64, 64],
        {"dets": rows, "num": np.array([3], np.int32)},
        extra_inputs={"scale_factor": ([1, 2], "float32")},
    )
    m = synthetic_manifest(
        "acme_rows",
        f,
        "nms_rows",
        ["person", "motorbike"],
        nms="none",
        extra=[{"name": "scale_factor", "kind": "scale_factor"}],
        class_map={"person": "person", "motorbike": "motorcycle"},
    )
    return m, [10, 20, 50, 60]


def _nhwc_uint8_vendor(tmp: Path) -> tuple[dict[str, Any], list[float]]:
    """A TFLite-converted style graph: NHWC uint8 input, RGB, stretched, yolov8 head."""
    out = np.zeros((1, 5, 84), np.float32)
    out[0, :, 7] = [16, 48, 16, 32, 0.7]  # one class
    f = constant_model(
        tmp / "acme_nhwc.onnx", "images", [1, 64, 64, 3], {"output0": out}, input_dtype="uint8"
    )
    m = synthetic_manifest("acme_nhwc", f, "yolov8", ["rider"], class_map={"rider": "bicycle"})
    m["input"].update(layout="NHWC", dtype="uint8", colour="RGB", resize="stretch")
    return m, [16, 64, 48, 128]  # input box [8,32,24,64] stretched x2 on a 128x128 frame


VENDORS = [
    ("nhwc_uint8", _nhwc_uint8_vendor, "bicycle"),
    ("yolov8", _yolov8_vendor, "car"),
    ("ssd", _ssd_vendor, "bus"),
    ("detr", _detr_vendor, "truck"),
    ("nms_rows", _nms_rows_vendor, "motorcycle"),
]


@pytest.mark.parametrize(("family", "make", "cls"), VENDORS, ids=[v[0] for v in VENDORS])
def test_vendor_model_of_supported_family(
    family: str,
    make: Callable[[Path], tuple[dict[str, Any], list[float]]],
    cls: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A new vendor graph + manifest: model check passes and detect decodes the right box and class."""
    import cv2

    data, want_box = make(tmp_path)
    manifest = write_manifest(tmp_path, data)
    img_path = tmp_path / "frame.png"
    cv2.imwrite(str(img_path), np.full((128, 128, 3), 90, np.uint8))
    rc, out = model_check([str(manifest), "--image", str(img_path), "--repeats", "1"], capsys)
    assert rc == 0, out
    assert "1 detections" in out

    from edge.vision.detector import OnnxDetector
    from edge.vision.manifest import load_manifest

    det = OnnxDetector(load_manifest(str(manifest)))
    d = det.detect_image(cv2.imread(str(img_path)))
    assert len(d) == 1
    np.testing.assert_allclose(d.xyxy[0], want_box, atol=0.6)
    from edge.classes import class_name

    assert class_name(int(d.class_id[0])) == cls
