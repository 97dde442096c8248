"""Detection in three stages (prepare -> infer -> finish), the way the agent spreads it over threads,
gives exactly the detections of ``detect_image`` on real models and real images -- also with several
frames in flight on pooled input buffers, with ROI passes, and with the stages on three threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.config.detector import DetectorConfig
from edge.types import Detections
from edge.vision.detector import OnnxDetector
from edge.vision.manifest import load_manifest
from edge.vision.preprocess import read_image
from tests.fixtures.assets import require_asset

pytestmark = pytest.mark.assets

MODELS = ("yolox_nano_416", "nanodet_plus_m_416", "picodet_xs_320", "deimv2_atto_320", "light_person_192")
IMAGES = (
    "media/opendatacam_webcam_street.jpg",
    "media/darknet_dog_bicycle.jpg",
    "media/roboflow-inference_truck.jpg",
    "media/coco_val2017/000000181542.jpg",
    "media/coco_val2017/000000001584.jpg",
    "media/coco_val2017/000000334371.jpg",
)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [read_image(str(require_asset(rel))) for rel in IMAGES]


def same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_array_equal(a.label_id, b.label_id)


@pytest.mark.parametrize("model", MODELS)
def test_frames_in_flight_give_the_detections_of_detect_image(model: str, images: list[np.ndarray]) -> None:
    det = OnnxDetector(load_manifest(model), DetectorConfig(threads=1))
    reference = [det.detect_image(img) for img in images]
    assert sum(len(r) for r in reference) > 0  # real objects on real images
    # Every frame pre-processed before any is inferred, inferred in reverse order, finished in order:
    # each holds its own pooled buffer until its inference, so none is overwritten by the next frame.
    works = [det.prepare(img) for img in images]
    for w in reversed(works):
        det.infer(w)
    for ref, w in zip(reference, works, strict=True):
        same(det.finish(w), ref)
    # Buffers go back to the pool after inference and are reused: the pool never grew beyond the
    # number of frames that were in flight at once.
    allocated = det.inputs.allocated
    assert allocated <= len(images) + 1
    for img, ref in zip(images, reference, strict=True):
        same(det.detect_image(img), ref)
    assert det.inputs.allocated == allocated


def test_roi_passes_in_flight_give_the_detections_of_detect_image(images: list[np.ndarray]) -> None:
    cfg = DetectorConfig(threads=1, roi="tiles", tile_grid=(2, 2))
    det = OnnxDetector(load_manifest("yolox_nano_416"), cfg)
    reference = [det.detect_image(img) for img in images[:3]]
    works = [det.prepare(img) for img in images[:3]]
    assert all(len(w.passes) == 5 for w in works)  # the full frame and four tiles
    for w in works:
        det.infer(w)
    for ref, w in zip(reference, works, strict=True):
        same(det.finish(w), ref)


def test_staged_roi_passes_are_fused_like_the_passes_run_one_by_one(images: list[np.ndarray]) -> None:
    """The staged finish fuses tiles exactly as ``combine`` fuses ``run_passes`` (containment merge,
    person parts), and traces each detection to the same pass."""
    cfg = DetectorConfig(threads=1, roi="tiles", tile_grid=(2, 2))
    assert cfg.merge_person_parts and cfg.roi_merge_ios < 1.0  # the fusion steps are on
    det = OnnxDetector(load_manifest("yolox_nano_416"), cfg)
    from_tiles = 0
    for img in images[:3]:
        h, w = img.shape[:2]
        passes = det.run_passes(img)
        one_by_one, origin_ref = det.combine([(p.raw.xyxy, p.raw.score, p.raw.label, r) for p, r in passes], w, h)
        work = det.prepare(img)
        det.infer(work)
        staged, origin = det.finish_traced(work)
        same(staged, one_by_one)
        np.testing.assert_array_equal(origin, origin_ref)
        traced, origin_traced = det.detect_traced(img)
        same(traced, one_by_one)
        np.testing.assert_array_equal(origin_traced, origin_ref)
        from_tiles += int((origin_ref > 0).sum())
    assert from_tiles > 0  # the tiles contributed detections of their own


def test_stages_on_three_threads_give_the_detections_of_detect_image(images: list[np.ndarray]) -> None:
    """prepare on one thread, infer on another, finish on a third, frames overlapping (the agent)."""
    import queue

    det = OnnxDetector(load_manifest("yolox_nano_416"), DetectorConfig(threads=1))
    frames = images * 3
    reference = [det.detect_image(img) for img in frames]
    to_infer: queue.Queue[object] = queue.Queue(maxsize=2)
    to_finish: queue.Queue[object] = queue.Queue(maxsize=2)
    got: list[Detections] = []

    def infer() -> None:
        while (w := to_infer.get()) is not None:
            det.infer(w)  # type: ignore[arg-type]
            to_finish.put(w)
        to_finish.put(None)

    def finish() -> None:
        while (w := to_finish.get()) is not None:
            got.append(det.finish(w))  # type: ignore[arg-type]

    threads = [threading.Thread(target=infer), threading.Thread(target=finish)]
    for th in threads:
        th.start()
    for img in frames:
        to_infer.put(det.prepare(img))
    to_infer.put(None)
    for th in threads:
        th.join(timeout=120)
    assert len(got) == len(frames)
    for a, b in zip(got, reference, strict=True):
        same(a, b)


def test_stage_misuse_is_refused(images: list[np.ndarray]) -> None:
    det = OnnxDetector(load_manifest("yolox_nano_416"), DetectorConfig(threads=1))
    work = det.prepare(images[0])
    with pytest.raises(ValueError, match="before infer"):
        det.finish(work)
    det.infer(work)
    with pytest.raises(ValueError, match="twice"):
        det.infer(work)  # its buffer is back in the pool and may hold another frame by now
    same(det.finish(work), det.detect_image(images[0]))


def test_detectors_can_share_one_session(images: list[np.ndarray]) -> None:
    a = OnnxDetector(load_manifest("yolox_nano_416"), DetectorConfig(threads=1, threshold=0.3))
    b = OnnxDetector(load_manifest("yolox_nano_416"), DetectorConfig(threads=1, threshold=0.6), session=a.session)
    assert b.session is a.session
    ra, rb = a.detect_image(images[0]), b.detect_image(images[0])
    assert len(rb) < len(ra)  # each keeps its own thresholds on the shared model
    assert (rb.confidence >= 0.6).all()
