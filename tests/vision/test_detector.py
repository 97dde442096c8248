"""OnnxDetector on real models: ROI, masks, filters, thresholds, identity, timing, build_detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.classes import CAR, CLASS_ID, OTHER
from edge.config.detector import DetectorConfig
from edge.config.site import CameraConfig
from edge.errors import ModelError
from edge.geometry import iou_matrix, points_in_polygon
from edge.types import Frame
from edge.vision.detector import OnnxDetector, build_detector, model_identity
from edge.vision.manifest import load_manifest
from edge.vision.preprocess import read_image
from tests.fixtures.assets import require_asset

pytestmark = pytest.mark.assets


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    return read_image(str(require_asset("media/opendatacam_webcam_street.jpg")))


@pytest.fixture(scope="module")
def dog_bicycle() -> np.ndarray:
    return read_image(str(require_asset("media/darknet_dog_bicycle.jpg")))


def _yolox(cfg: DetectorConfig | None = None, **kw: object) -> OnnxDetector:
    return OnnxDetector(load_manifest("yolox_nano_416"), cfg, **kw)  # type: ignore[arg-type]


FAR_ZONE = [(0.10, 0.18), (0.45, 0.18), (0.45, 0.42), (0.10, 0.42)]  # the far lanes: cars 40-90 px wide


def _cars_in_zone(det_xyxy: np.ndarray, cls: np.ndarray, w: int, h: int) -> int:
    c = np.stack([(det_xyxy[:, 0] + det_xyxy[:, 2]) / 2 / w, (det_xyxy[:, 1] + det_xyxy[:, 3]) / 2 / h], 1)
    return int((points_in_polygon(c, FAR_ZONE) & (cls == CAR)).sum())


@pytest.mark.slow
@pytest.mark.parametrize("roi", ["zones", "tiles"])
def test_roi_finds_small_far_cars_missed_on_the_full_frame(roi: str, street: np.ndarray) -> None:
    h, w = street.shape[:2]
    plain = _yolox(DetectorConfig(threads=2)).detect_image(street)
    det = _yolox(DetectorConfig(threads=2, roi=roi, tile_grid=(2, 2)), zones=[FAR_ZONE])
    found = det.detect_image(street)
    n_plain = _cars_in_zone(plain.xyxy, plain.class_id, w, h)
    n_roi = _cars_in_zone(found.xyxy, found.class_id, w, h)
    assert n_plain <= 3  # the full frame at 416 px misses the far cars
    assert n_roi >= n_plain + 6, (n_plain, n_roi)
    # the near, large cars seen on the full frame are still there (merged, not lost or doubled)
    near = plain.xyxy[plain.xyxy[:, 1] > 0.5 * h]
    assert (iou_matrix(near, found.xyxy).max(1) > 0.7).all()
    same = found.class_id[:, None] == found.class_id[None, :]
    ious = iou_matrix(found.xyxy, found.xyxy)
    np.fill_diagonal(ious, 0)
    assert not ((ious > 0.6) & same).any(), "ROI merge left duplicate boxes"
    assert det.last_timing_ms["infer"] > 0


def test_roi_rects_cover_zone_with_margin() -> None:
    det = _yolox(DetectorConfig(roi="zones", roi_margin=0.1), zones=[FAR_ZONE], warmup=False)
    ((x1, y1, x2, y2),) = det.roi_rects(1000, 500)
    assert (x1, y1) == (65, 78) and (x2, y2) == (485, 222)
    inner = [(0.2, 0.2), (0.3, 0.2), (0.3, 0.3), (0.2, 0.3)]  # inside FAR_ZONE: one crop, not two
    far = [(0.8, 0.8), (0.9, 0.8), (0.9, 0.9)]
    det2 = _yolox(DetectorConfig(roi="zones", roi_margin=0.1), zones=[FAR_ZONE, inner, far], warmup=False)
    assert det2.roi_rects(1000, 500) == [(65, 78, 485, 222), (790, 395, 910, 455)]
    tiles = _yolox(DetectorConfig(roi="tiles", tile_grid=(3, 2), roi_margin=0.0), warmup=False).roi_rects(
        900, 400
    )
    assert tiles[0] == (0, 0, 300, 200) and tiles[-1] == (600, 200, 900, 400) and len(tiles) == 6


def test_exclusion_mask_drops_detections_anchored_inside(dog_bicycle: np.ndarray) -> None:
    h, w = dog_bicycle.shape[:2]
    base = _yolox(DetectorConfig(threshold=0.3))
    d0 = base.detect_image(dog_bicycle)
    car = d0[d0.class_id == CAR]
    assert len(car) == 1
    ax, ay = car.anchor[0] / (w, h)
    mask = [(ax - 0.05, ay - 0.05), (ax + 0.05, ay - 0.05), (ax + 0.05, ay + 0.05), (ax - 0.05, ay + 0.05)]
    d1 = _yolox(DetectorConfig(threshold=0.3), masks=[mask]).detect_image(dog_bicycle)
    assert CAR not in d1.class_id.tolist()
    assert len(d1) == len(d0) - 1 - int(
        ((d0.class_id != CAR) & points_in_polygon(d0.anchor / (w, h), mask)).sum()
    )


@pytest.mark.parametrize(
    ("cfg", "present", "absent"),
    [
        (
            DetectorConfig(threshold=0.3),
            {"bicycle", "car", "truck"},
            {"other"},
        ),  # keep_other off: dog dropped
        (DetectorConfig(threshold=0.3, keep_other=True), {"bicycle", "car", "truck", "other"}, set()),
        (DetectorConfig(threshold=0.3, thresholds={"truck": 0.9}), {"bicycle", "car"}, {"truck"}),
        (DetectorConfig(thresholds={"vehicle": 0.81}), {"bicycle"}, {"car", "truck"}),
        (DetectorConfig(threshold=0.3, max_area_frac=0.2), {"car", "truck"}, {"bicycle"}),
        (DetectorConfig(threshold=0.3, min_area_px=25_000), {"bicycle"}, {"car", "truck"}),
        (DetectorConfig(threshold=0.3, min_aspect=1.5), {"bicycle", "car", "truck"}, set()),
        (DetectorConfig(threshold=0.3, max_aspect=2.0), {"bicycle"}, {"car", "truck"}),
    ],
)
def test_thresholds_and_filters(
    cfg: DetectorConfig, present: set[str], absent: set[str], dog_bicycle: np.ndarray
) -> None:
    from edge.classes import class_name

    d = _yolox(cfg).detect_image(dog_bicycle)
    names = {class_name(int(c)) for c in d.class_id}
    assert present <= names, names
    assert not (absent & names), names


def test_agnostic_nms_merges_car_and_truck_on_the_same_vehicle(dog_bicycle: np.ndarray) -> None:
    aware = _yolox(DetectorConfig(threshold=0.3)).detect_image(dog_bicycle)
    agn = _yolox(DetectorConfig(threshold=0.3, nms="agnostic")).detect_image(dog_bicycle)
    assert len(agn) == len(aware) - 1  # the 0.31 'truck' box on the pickup goes
    assert CLASS_ID["truck"] not in agn.class_id.tolist()


def test_build_detector_from_camera_config_and_identity(dog_bicycle: np.ndarray) -> None:
    cam = CameraConfig(id="cam1", source="x.jpg", model="yolox_nano_416", detector=DetectorConfig(threads=1))
    det = build_detector(cam)
    assert isinstance(det, OnnxDetector)
    assert det.name == "yolox_nano_416"
    assert det.sha256 == "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    assert model_identity(det) == {"name": "yolox_nano_416", "sha256": "695e750a"}
    assert det.session.threads == 1
    out = det.detect(Frame(image=dog_bicycle, seq=1, t=0.0, ts=0.0, camera_id="cam1"))
    assert len(out) >= 3 and out.xyxy.dtype == np.float32 and OTHER not in out.class_id.tolist()
    assert set(det.last_timing_ms) == {"pre", "infer", "post"}
    assert all(v > 0 for v in det.last_timing_ms.values())
    h, w = dog_bicycle.shape[:2]
    assert (out.xyxy >= 0).all() and (out.xyxy[:, [0, 2]] <= w).all() and (out.xyxy[:, [1, 3]] <= h).all()


def test_build_detector_motion_uses_the_motion_backend() -> None:
    pytest.importorskip("edge.vision.motion")
    from edge.config.zones import CalibrationConfig

    cal = CalibrationConfig(
        image_points=[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)],
        ground_points_m=[(0.0, 0.0), (20.0, 0.0), (20.0, 12.0), (0.0, 12.0)],
    )
    cam = CameraConfig(id="cam1", source="x.jpg", model="motion", calibration=cal)
    det = build_detector(cam)
    assert type(det).__name__ == "MotionDetector" and det.sha256 == ""


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(
        ModelError,
        match=r"execution provider NoSuchExecutionProvider is not installed; available here: .*CPUExecutionProvider",
    ):
        _yolox(DetectorConfig(provider="NoSuchExecutionProvider"), warmup=False)


def test_warmup_runs_at_load() -> None:
    det = _yolox(DetectorConfig(threads=1))
    assert det.last_timing_ms["infer"] > 0  # set by the warm-up inference
    cold = _yolox(DetectorConfig(threads=1), warmup=False)
    assert cold.last_timing_ms["infer"] == 0


def test_missing_weights_say_where_they_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MODEL_PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as exc:
        _yolox()
    msg = str(exc.value)
    assert "yolox_nano_416.onnx" in msg and str(tmp_path) in msg and "/var/lib/edge/models" in msg
    assert "695e750a5d57" in msg


def test_runtime_logs_stay_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    """The non-clean NanoDet export makes onnxruntime warn once per weight initializer (158 lines)
    at its default log level; the agent's session must print none of that."""
    from edge.vision.runtime import OnnxSession

    path = require_asset("models/nanodet_plus_m_416_opencvzoo_2022nov.onnx")
    capfd.readouterr()
    sess = OnnxSession(path, threads=1)
    assert len(sess.outputs) == 6
    out, err = capfd.readouterr()
    assert "Initializer" not in err and "graph inputs" not in err, err[:500]
    assert out == ""
