"""Pure unit tests (no shared assets): decoders on hand-made tensors, NMS, pre-processing,
manifest loading and search paths, the config check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config import parse_config
from edge.config.detector import DetectorConfig
from edge.errors import ModelError
from edge.geometry import iou_matrix, points_in_polygon
from edge.vision.adapters import DecodeContext, families, get_decoder
from edge.vision.checks import check_models
from edge.vision.manifest import available_models, load_manifest, resolve_model_file
from edge.vision.nms import nms
from edge.vision.preprocess import Preprocessor
from edge.vision.runtime import TensorInfo
from tests.vision.synth import shipped, write_manifest

SHIPPED = ["deimv2_atto_320", "light_person_192", "nanodet_plus_m_416", "picodet_xs_320", "yolox_nano_416"]


def ctx(w: int = 64, h: int = 64, floor: float = 0.3) -> DecodeContext:
    return DecodeContext(w, h, w, h, floor)


# ---- decoders -------------------------------------------------------------------------------


def test_every_family_is_an_adapter_file() -> None:
    assert set(families()) >= {"yolox", "nanodet", "yolov8", "detr", "nms_rows", "ssd"}


def test_yolox_decodes_grid_cell() -> None:
    dec = get_decoder("yolox", {}, (64, 64))
    assert dec.bind([TensorInfo("output", (1, 84, 7), "float32")]) == [] and dec.num_classes == 2
    out = np.zeros((1, 84, 7), np.float32)
    # stride-16 cell (x=2, y=1) is row 64 + 1*4 + 2 = 70
    out[0, 70] = [0.5, 0.25, np.log(2.0), np.log(1.0), 0.8, 0.1, 0.9]
    raw = dec.decode([out], ctx())
    assert raw.space == "input" and raw.label.tolist() == [1]
    np.testing.assert_allclose(raw.score, [0.72], rtol=1e-5)
    # centre ((2.5)*16, (1.25)*16) = (40, 20), size (32, 16)
    np.testing.assert_allclose(raw.xyxy[0], [24, 12, 56, 28], atol=1e-4)


def test_yolox_multi_label_vs_best_class() -> None:
    out = np.zeros((1, 84, 7), np.float32)
    out[0, 0] = [0, 0, 0, 0, 1.0, 0.6, 0.7]
    multi = get_decoder("yolox", {"multi_label": True}, (64, 64)).decode([out], ctx())
    best = get_decoder("yolox", {"multi_label": False}, (64, 64)).decode([out], ctx())
    assert sorted(multi.label.tolist()) == [0, 1] and best.label.tolist() == [1]


def test_nanodet_dfl_expectation_and_prior() -> None:
    dec = get_decoder("nanodet", {"strides": [8, 16, 32], "reg_max": 7}, (64, 64))
    shapes = [(1, 64, 3), (1, 16, 3), (1, 4, 3), (1, 64, 32), (1, 16, 32), (1, 4, 32)]
    order = [3, 0, 4, 1, 5, 2]  # heads listed in a scrambled order: matched by shape, not position
    infos = [TensorInfo(str(i), shapes[j], "float32") for i, j in enumerate(order)]
    assert dec.bind(infos) == [] and dec.num_classes == 3
    arrays = [np.zeros(shapes[j], np.float32) for j in order]
    cls8 = arrays[order.index(0)]
    reg8 = arrays[order.index(3)]
    cls8[0, 9, 2] = 0.9  # cell (1, 1) at stride 8: prior centre (1*8 + 3.5, 1*8 + 3.5)
    logits = np.full((4, 8), -20.0, np.float32)
    logits[0, 2] = logits[1, 1] = logits[2, 3] = logits[3, 0] = 20.0  # l=2, t=1, r=3, b=0 bins
    reg8[0, 9] = logits.ravel()
    raw = dec.decode(arrays, ctx())
    assert raw.label.tolist() == [2]
    np.testing.assert_allclose(raw.xyxy[0], [11.5 - 16, 11.5 - 8, 11.5 + 24, 11.5 + 0], atol=1e-3)


def test_nanodet_missing_head_reported() -> None:
    dec = get_decoder("nanodet", {"strides": [8, 16, 32]}, (64, 64))
    problems = dec.bind([TensorInfo("a", (1, 64, 3), "float32"), TensorInfo("b", (1, 64, 32), "float32")])
    assert any("stride 16: no box head [1,16,32]" in p for p in problems)


def test_yolov8_layout_and_the_issue_message() -> None:
    dec = get_decoder("yolov8", {}, (416, 416))
    assert dec.bind([TensorInfo("output", (1, 3549, 85), "float32")]) == [
        "output 0 has shape [1,3549,85]; the yolov8 decoder expects [1,4+C,N] (N=3549 cells for input 416x416, "
        "strides [8, 16, 32])"
    ]
    dec64 = get_decoder("yolov8", {}, (64, 64))
    assert dec64.bind([TensorInfo("o", (1, 6, 84), "float32")]) == [] and dec64.num_classes == 2
    out = np.zeros((1, 6, 84), np.float32)
    out[0, :, 3] = [30, 20, 10, 8, 0.1, 0.95]
    raw = dec64.decode([out], ctx())
    np.testing.assert_allclose(raw.xyxy, [[25, 16, 35, 24]])
    assert raw.label.tolist() == [1]


def test_detr_post_processed_and_raw_logits() -> None:
    dec = get_decoder("detr", {}, (320, 320))
    infos = [
        TensorInfo("labels", (1, 4), "int64"),
        TensorInfo("boxes", (1, 4, 4), "float32"),
        TensorInfo("scores", (1, 4), "float32"),
    ]
    assert dec.bind(infos) == []
    labels = np.array([[3, 1, 0, 2]], np.int64)
    boxes = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    scores = np.array([[0.9, 0.1, 0.5, 0.2]], np.float32)
    raw = dec.decode([labels, boxes, scores], ctx(320, 320))
    assert raw.space == "original" and raw.label.tolist() == [3, 0]
    np.testing.assert_allclose(raw.xyxy, boxes[0, [0, 2]])
    bad = dec.bind([TensorInfo("x", (1, 3549, 85), "float32")])
    assert bad and "the detr decoder expects" in bad[0]
    comb = get_decoder(
        "detr",
        {"combined": True, "sigmoid": False, "box_format": "cxcywh", "box_space": "normalized"},
        (100, 100),
    )
    assert comb.bind([TensorInfo("output0", (1, 3, 6), "float32")]) == [] and comb.num_classes == 2
    out = np.array(
        [[[0.5, 0.5, 0.2, 0.4, 0.1, 0.8], [0, 0, 0, 0, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1, 0.5, 0.2]]], np.float32
    )
    r = comb.decode([out], ctx(100, 100))
    assert r.label.tolist() == [1, 0] and r.space == "input"
    np.testing.assert_allclose(r.xyxy[0], [40, 30, 60, 70], atol=1e-4)


def test_nms_rows_count_and_padding() -> None:
    dec = get_decoder("nms_rows", {}, (320, 320))
    assert dec.bind([TensorInfo("r", (None, 6), "float32"), TensorInfo("n", (1,), "int32")]) == []
    rows = np.array([[2, 0.9, 1, 2, 3, 4], [5, 0.35, 5, 6, 7, 8], [7, 0.8, 0, 0, 1, 1]], np.float32)
    raw = dec.decode([rows, np.array([2], np.int32)], ctx(320, 320, 0.3))
    assert raw.label.tolist() == [2, 5]  # the third row is beyond the count


def test_ssd_background_and_yxyx() -> None:
    dec = get_decoder("ssd", {"box_order": "yxyx", "background": True}, (100, 100))
    assert dec.bind([TensorInfo("b", (1, 2, 4), "float32"), TensorInfo("s", (1, 2, 3), "float32")]) == []
    assert dec.num_classes == 2
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]]], np.float32)
    scores = np.array([[[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]]], np.float32)
    raw = dec.decode([boxes, scores], ctx(100, 100))
    assert raw.label.tolist() == [1]
    np.testing.assert_allclose(raw.xyxy, [[20, 10, 40, 30]], atol=1e-4)


@pytest.mark.parametrize(
    ("family", "params", "msg"),
    [
        ("yolox", {"strides": "8,16"}, "give a list of positive ints"),
        ("nanodet", {"reg_max": 0}, "give a positive int"),
        ("nanodet", {"prior": "middle"}, "use one of zoo, corner, center"),
        ("detr", {"box_space": "pixels"}, "use original, input or normalized"),
        ("ssd", {"box_order": "xywh"}, "use xyxy or yxyx"),
        ("yolov8", {"reg_max": 16}, "unknown ['reg_max'] for family yolov8"),
        ("centernet", {}, "decoder family 'centernet' is unknown; available: detr, nanodet"),
    ],
)
def test_bad_decoder_params(family: str, params: dict, msg: str) -> None:
    with pytest.raises(ModelError, match=None) as exc:
        get_decoder(family, params, (64, 64))
    assert msg in str(exc.value)


# ---- NMS and geometry ---------------------------------------------------------------------------


def test_nms_class_aware_and_agnostic() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    labels = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, 0.5, labels).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def test_iou_and_point_in_polygon() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0]])
    tri = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    pts = np.array([[0.2, 0.2], [0.8, 0.8], [0.5, 0.4], [-0.1, 0.1]])
    assert points_in_polygon(pts, tri).tolist() == [True, False, True, False]


# ---- pre-processing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resize", "geom"),
    [
        ("letterbox_topleft", (64, 32, 0, 0)),
        ("letterbox_center", (64, 32, 0, 16)),
        ("stretch", (64, 64, 0, 0)),
    ],
)
def test_preprocess_geometry_and_inverse(resize: str, geom: tuple[int, int, int, int]) -> None:
    m = shipped("yolox_nano_416")["input"]
    m.update(size=[64, 64], resize=resize, pad_value=114)
    from edge.vision.manifest import InputSpec

    pre = Preprocessor(InputSpec.model_validate(m))
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :, 0] = 10  # blue
    img[:, :, 2] = 200  # red
    feeds, tf = pre(img)
    x = feeds["images"]
    nw, nh, ox, oy = geom
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert pre.geometry(200, 100)[:4] == geom
    assert x[0, 0, oy + 1, ox + 1] == 10 and x[0, 2, oy + 1, ox + 1] == 200  # BGR kept, 0..255
    if resize != "stretch":
        assert x[0, 0, 63, 1] == 114 and x[0, 2, 63, 1] == 114  # padding below the image
        assert (x[0, 0, :oy] == 114).all() and (x[0, 0, oy : oy + nh] == 10).all()
    box = np.array([[ox, oy, ox + nw, oy + nh]], np.float32)
    np.testing.assert_allclose(tf.to_original(box), [[0, 0, 200, 100]], atol=1e-3)


def test_preprocess_rgb_mean_std_and_extra_inputs() -> None:
    from edge.vision.manifest import InputSpec

    spec = InputSpec.model_validate(shipped("picodet_xs_320")["input"])
    pre = Preprocessor(spec)
    img = np.zeros((160, 640, 3), np.uint8)
    img[:, :, 2] = 255  # red in BGR
    feeds, tf = pre(img)
    x = feeds["image"]
    np.testing.assert_allclose(x[0, 0, 5, 5], (1.0 - 0.485) / 0.229, rtol=1e-5)  # model channel 0 = R
    np.testing.assert_allclose(x[0, 2, 5, 5], (0.0 - 0.406) / 0.225, rtol=1e-5)
    np.testing.assert_allclose(feeds["scale_factor"], [[320 / 160, 320 / 640]])
    assert feeds["scale_factor"].dtype == np.float32 and tf.scale_x == 0.5 and tf.scale_y == 2.0
    deim = Preprocessor(InputSpec.model_validate(shipped("deimv2_atto_320")["input"]))
    f2, _ = deim(img)
    assert f2["orig_target_sizes"].tolist() == [[640, 160]] and f2["orig_target_sizes"].dtype == np.int64


# ---- manifests and search paths ------------------------------------------------------------------


def test_shipped_manifests_load_and_map_classes() -> None:
    assert set(SHIPPED) <= set(available_models())
    for name in SHIPPED:
        m = load_manifest(name)
        assert m.name == name and len(m.file.sha256) == 64 and m.file.licence and m.file.source
        cls = dict(zip(m.labels, m.class_of_label().tolist(), strict=True))
        assert cls["person"] == 0
        if m.num_classes == 80:
            assert [cls[k] for k in ("bicycle", "motorcycle", "car", "bus", "truck", "dog")] == [
                1,
                2,
                3,
                4,
                5,
                -1,
            ]
            assert m.groups["vehicle"] == ["car", "bus", "truck"]
    assert load_manifest("nanodet_plus_m_416").file.name.endswith("_clean.onnx")
    assert load_manifest("picodet_xs_320").file.name.endswith("_clean.onnx")


def test_threshold_resolution_order(tmp_path: Path) -> None:
    m = shipped("yolox_nano_416")
    m["thresholds"] = {"default": 0.3, "vehicle": 0.4, "truck": 0.5, "dog": 0.6}
    man = load_manifest(str(write_manifest(tmp_path, m, "thr")))
    t = dict(zip(man.labels, man.label_thresholds().tolist(), strict=True))
    assert (round(t["person"], 2), round(t["car"], 2), round(t["truck"], 2), round(t["dog"], 2)) == (
        0.3,
        0.4,
        0.5,
        0.6,
    )
    t2 = dict(zip(man.labels, man.label_thresholds(0.2, {"person": 0.7}).tolist(), strict=True))
    assert round(t2["truck"], 2) == 0.2 and round(t2["person"], 2) == 0.7


def test_manifest_search_path_prefers_edge_model_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = shipped("yolox_nano_416")
    m["description"] = "vendor override"
    write_manifest(tmp_path, m)
    monkeypatch.setenv("EDGE_MODEL_PATH", f"/nonexistent:{tmp_path}")
    assert load_manifest("yolox_nano_416").description == "vendor override"
    monkeypatch.setenv("EDGE_MODEL_PATH", "")
    assert load_manifest("yolox_nano_416").description != "vendor override"


def test_model_file_search_and_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    (d2 / "w.onnx").write_bytes(b"weights")
    import hashlib

    m = shipped("light_person_192")
    m["file"].update(name="w.onnx", sha256=hashlib.sha256(b"weights").hexdigest())
    man = load_manifest(str(write_manifest(tmp_path, m, "w")))
    monkeypatch.setenv("EDGE_MODEL_PATH", f"{d1}:{d2}")
    assert resolve_model_file(man) == d2 / "w.onnx"
    (d1 / "w.onnx").write_bytes(b"other")
    with pytest.raises(ModelError, match=r"sha256 is [0-9a-f]{64} but manifest w expects"):
        resolve_model_file(man)


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"input": None}, "input: "),
        ({"labels": []}, "labels: "),
        ({"class_map": {"car": "automobile"}}, "'automobile' is not a canonical class"),
        ({"thresholds": {"lorries": 0.3}}, "thresholds.lorries: not 'default', a canonical class"),
        ({"groups": {"vehicle": ["car", "tram"]}}, "groups.vehicle: ['tram'] are not canonical classes"),
        (
            {"file": {"name": "x.onnx", "sha256": "abc", "licence": "MIT", "source": "x"}},
            "must be 64 hex digits",
        ),
        ({"colour": "RGB"}, "colour: unknown key"),
    ],
)
def test_bad_manifest_messages(change: dict, msg: str, tmp_path: Path) -> None:
    m = shipped("yolox_nano_416")
    m.update(change)
    with pytest.raises(ModelError) as exc:
        load_manifest(str(write_manifest(tmp_path, m, "bad")))
    assert msg in str(exc.value) and "bad.yaml" in str(exc.value)


def test_unknown_model_lists_available() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'foo'.*available: .*yolox_nano_416"):
        load_manifest("foo")


# ---- config check ---------------------------------------------------------------------------------


def _site(model: str, **det: object) -> dict:
    return {
        "config_version": 1,
        "device_id": "box-1",
        "site_id": "s1",
        "cameras": [{"id": "c0", "source": "x.jpg", "model": model, "detector": det}],
    }


@pytest.mark.parametrize(
    ("model", "det", "problem"),
    [
        ("yolox_nano_416", {}, None),
        ("motion", {}, None),
        ("foo", {}, "cameras[0].model: unknown model 'foo'; available: motion, deimv2_atto_320"),
        (
            "yolox_nano_416",
            {"thresholds": {"lorry": 0.3}},
            "cameras[0].detector.thresholds.lorry: not a class",
        ),
        ("yolox_nano_416", {"thresholds": {"vehicle": 0.3, "dog": 0.5}}, None),
    ],
)
def test_check_models(
    model: str, det: dict, problem: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_MODEL_PATH", str(tmp_path))  # no weights anywhere: a clean clone
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(_site(model, **det))
    problems = check_models(cfg)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.parametrize(
    ("fields", "msg"),
    [
        ({"tile_grid": (0, 2)}, "tile_grid [0, 2] must have 1..8 columns and rows"),
        ({"provider": "cuda"}, "is not an onnxruntime provider name"),
        ({"min_aspect": 2.0, "max_aspect": 1.0}, "max_aspect: must be >= min_aspect"),
        ({"roi": "everything"}, "roi"),
    ],
)
def test_detector_config_validation(fields: dict, msg: str) -> None:
    with pytest.raises(ValueError) as exc:
        DetectorConfig(**fields)
    assert msg in str(exc.value)


def test_preprocess_nhwc_uint8_rgb() -> None:
    from edge.vision.manifest import InputSpec

    spec = InputSpec(
        name="x",
        size=(32, 32),
        layout="NHWC",
        dtype="uint8",
        colour="RGB",
        resize="letterbox_center",
        pad_value=7,
    )
    img = np.zeros((16, 32, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 1, 2, 3  # B, G, R
    feeds, tf = Preprocessor(spec)(img)
    x = feeds["x"]
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert x[0, 16, 5].tolist() == [3, 2, 1] and x[0, 0, 5].tolist() == [7, 7, 7]
    assert (tf.pad_x, tf.pad_y) == (0.0, 8.0)
