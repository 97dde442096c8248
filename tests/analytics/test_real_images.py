"""Real model on real images: ``edge.vision`` detections drive the tracker and the street rules.

A still image is "held" over simulated time: the detector runs once per distinct image (the model
is deterministic, so every held frame would give the same detections) and those detections are fed
to the tracker at ``fps`` for the whole hold, with the fake clock in Frame.t/ts.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.classes import PERSON, resolve
from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig
from edge.rules import CameraAnalytics
from edge.tracking import ByteTracker
from edge.types import Detections, EventDraft, Frame
from edge.zones.geometry import points_in_polygon
from tests.fixtures.assets import require_asset

pytestmark = [pytest.mark.assets, pytest.mark.slow]
cv2 = pytest.importorskip("cv2")
vision = pytest.importorskip("edge.vision.detector")

TS0 = 1_795_399_200.0  # 2026-11-23 (a Monday), 08:00 Asia/Shanghai


def _image(rel: str) -> np.ndarray:
    img = cv2.imread(str(require_asset(rel)))
    assert img is not None, f"cannot read {rel}"
    return img


def _detect(cam: CameraConfig, image: np.ndarray) -> Detections:
    det = vision.build_detector(cam)
    return det.detect(Frame(image=image, seq=0, t=0.0, ts=TS0, camera_id=cam.id))


def _hold(
    cam: CameraConfig,
    rules: RulesConfig,
    segments: list[tuple[np.ndarray, float]],
    fps: float = 1.0,
    commands: dict[float, tuple[str, str]] | None = None,
) -> tuple[list[EventDraft], CameraAnalytics]:
    """Feed each (image, seconds) segment as a held still; returns all transitions."""
    tracker = ByteTracker(rules.tracker)
    analytics = CameraAnalytics(cam, rules, "Asia/Shanghai")
    out: list[EventDraft] = []
    t = 0.0
    seq = 0
    for image, hold_s in segments:
        dets = _detect(cam, image)
        end = t + hold_s
        while t < end:
            frame = Frame(image=image, seq=seq, t=t, ts=TS0 + t, camera_id=cam.id)
            for at, (name, bay) in list((commands or {}).items()):
                if at <= t:
                    task = analytics.bikes.dispatch.by_bay[bay]
                    out.extend(analytics.command(name, {"task_id": task.task_id}, t, TS0 + t)[1])
                    del commands[at]  # type: ignore[index]
            out.extend(analytics.update(frame, tracker.update(dets, t)))
            seq += 1
            t += 1.0 / fps
    return out, analytics


def _in_zone(
    dets: Detections, polygon: list[list[float]], image: np.ndarray, classes: list[str], min_score: float
) -> int:
    h, w = image.shape[:2]
    keep = np.isin(dets.class_id, list(resolve(classes))) & (dets.confidence >= min_score)
    inside = points_in_polygon(dets.anchor[keep], np.array(polygon) * [w, h])
    return int(inside.sum())


def test_parked_cars_held_ten_minutes_give_one_violation_per_car() -> None:
    img = _image("media/coco_val2017/000000006723.jpg")
    kerb = [[0.2, 0.5], [0.45, 0.5], [0.45, 0.7], [0.2, 0.7]]  # round the cars parked at the left kerb
    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "still.jpg",
            "zones": [{"id": "kerb", "kind": "no_parking", "polygon": kerb}],
        }
    )
    rules = RulesConfig.model_validate({"parking": {"grace_s": 120, "update_s": 60, "leave_s": 30}})
    dets = _detect(cam, img)
    cars = _in_zone(dets, kerb, img, ["car", "bus", "truck", "motorcycle"], rules.tracker.new_track_score)
    assert cars == 2, f"the reference model sees two parked cars in the kerb zone, got {cars}: {dets}"
    trs, _ = _hold(cam, rules, [(img, 600.0)], fps=2.0)
    pv = [t for t in trs if t.kind == "parking_violation"]
    starts = [t for t in pv if t.phase == "start"]
    assert len(starts) == cars, [(t.phase, t.key) for t in pv]
    assert len({t.payload["track_id"] for t in starts}) == cars, "one violation per car, no duplicates"
    assert not [t for t in pv if t.phase == "end"], "held still: nobody left"
    for s in starts:
        ups = [t for t in pv if t.key == s.key and t.phase == "update"]
        assert len(ups) >= 7 and all(t.payload["track_id"] == s.payload["track_id"] for t in ups)
        assert s.t == pytest.approx(120.0, abs=5.0)


def test_scooters_on_the_pavement_are_bikes_outside_the_bay() -> None:
    img = _image("media/coco_val2017/000000008211.jpg")
    pavement = [[0.0, 0.55], [1.0, 0.55], [1.0, 0.8], [0.0, 0.8]]
    bay = [[0.6, 0.55], [0.95, 0.55], [0.95, 0.8], [0.6, 0.8]]  # an empty bay to the right of the scooters
    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "still.jpg",
            "model": "deimv2_atto_320",  # the shipped model that sees these scooters best
            "zones": [
                {"id": "bay-1", "kind": "bike_bay", "capacity": 4, "polygon": bay},
                {"id": "pavement", "kind": "bike_watch", "polygon": pavement},
            ],
        }
    )
    rules = RulesConfig.model_validate({"bike": {"dwell_s": 120, "leave_s": 30}})
    dets = _detect(cam, img)
    n = _in_zone(dets, pavement, img, ["bicycle", "motorcycle"], rules.tracker.new_track_score)
    assert n >= 1, f"no scooter detected on the pavement: {dets}"
    trs, analytics = _hold(cam, rules, [(img, 300.0)])
    outside = [t for t in trs if t.kind == "bike_outside_bay"]
    assert [t.phase for t in outside] == ["start"] * n
    assert len({t.track_id for t in outside}) == n
    assert all(t.t == pytest.approx(120.0, abs=3.0) for t in outside)
    assert outside[-1].payload["outside_count"] == n
    assert analytics.zone_states()["bay-1"]["count"] == 0


def test_bicycle_in_a_closed_bay_dispatch_loop_with_real_detections() -> None:
    """darknet_dog_bicycle: the bicycle stands in a bay of capacity 0 -> overflow -> task; the crew
    acknowledges; the bike is taken away (an empty frame) -> the camera verifies and resolves."""
    img = _image("media/darknet_dog_bicycle.jpg")
    bay = [[0.0, 0.55], [1.0, 0.55], [1.0, 0.9], [0.0, 0.9]]
    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "still.jpg",
            "zones": [{"id": "bay-0", "kind": "bike_bay", "capacity": 0, "polygon": bay}],
        }
    )
    rules = RulesConfig.model_validate(
        {
            "bike": {
                "overflow_s": 60,
                "clear_s": 30,
                "verify_s": 30,
                "reopen_s": 120,
                "hysteresis": 0,
                "status_debounce_s": 5,
            }
        }
    )
    dets = _detect(cam, img)
    assert _in_zone(dets, bay, img, ["bicycle", "motorcycle"], rules.tracker.new_track_score) == 1
    empty = np.full_like(img, 128)
    trs, _ = _hold(cam, rules, [(img, 200.0), (empty, 200.0)], commands={100.0: ("ack_task", "bay-0")})
    tasks = [(t.phase, t.payload["state"]) for t in trs if t.kind == "dispatch_task"]
    assert tasks == [("start", "open"), ("update", "acknowledged"), ("update", "resolved"), ("end", "closed")]
    task = [t for t in trs if t.kind == "dispatch_task"]
    assert len({t.key for t in task}) == 1
    assert task[0].payload["action"].startswith("remove 1 bike from bay-0")
    resolved = task[2].payload
    assert resolved["time_to_acknowledge_s"] == pytest.approx(100.0 - task[0].t, abs=1.0)
    assert (
        resolved["resolved_by"] == "camera"
        and resolved["time_to_resolve_s"] > resolved["time_to_acknowledge_s"]
    )
    overflow = [t.phase for t in trs if t.kind == "bike_bay_overflow"]
    assert overflow[0] == "start" and overflow[-1] == "end"


def _detail(region: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: what pixelation takes away."""
    r = region.astype(np.float32)
    return float(np.abs(np.diff(r, axis=0)).mean() + np.abs(np.diff(r, axis=1)).mean())


def test_evidence_crop_pixelates_people_the_tracker_has_not_confirmed() -> None:
    """A real street crossing: the violation's crop pixelates every person the detector saw, even
    those that are not (yet) tracks; before, only confirmed person tracks were pixelated."""
    from edge.rules.redact import person_boxes
    from edge.types import Tracks

    img = _image("media/coco_val2017/000000181542.jpg")  # a crossing: riders and walkers beside cars
    h, w = img.shape[:2]
    cam = CameraConfig.model_validate(
        {"id": "cam0", "source": "x.jpg", "model": "yolox_nano_416",
         "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}
    )  # fmt: skip
    dets = _detect(cam, img)
    people = dets.xyxy[dets.class_id == PERSON]
    cars = dets[np.isin(dets.class_id, list(resolve(["parkable"])))]
    assert len(people) >= 1 and len(cars) >= 1, (len(people), len(cars))
    saved: list[np.ndarray] = []

    class Sink:
        def save(self, crop_bgr: np.ndarray, key: str, ts: float) -> str | None:
            saved.append(crop_bgr)
            return "1.jpg"

    rules = RulesConfig.model_validate({"membership": {"enter_s": 0}, "parking": {"grace_s": 2}})
    analytics = CameraAnalytics(cam, rules, "UTC", evidence=Sink())
    n = len(cars)
    car_tracks = Tracks(  # the cars are tracks; the people are detections nobody has confirmed yet
        xyxy=cars.xyxy, confidence=cars.confidence, class_id=cars.class_id,
        track_id=np.arange(1, n + 1, dtype=np.int64), first_t=np.zeros(n),
        velocity=np.zeros((n, 2), np.float32), speed_mps=np.full(n, np.nan, np.float32),
        stationary=np.ones(n, bool), stationary_s=np.full(n, 60.0, np.float32),
    )  # fmt: skip
    for i in range(5):
        analytics.update_at(float(i), TS0 + i, car_tracks, (w, h), img, detections=dets)
    assert saved, "a violation started and its crop was saved"
    # Where each crop came from: the car box widened by 10 %, as redacted_crop does; the people
    # overlapping it must be pixelated there.
    checked = 0
    for crop, (x1, y1, x2, y2) in zip(saved, cars.xyxy, strict=False):
        mx, my = (x2 - x1) * 0.1, (y2 - y1) * 0.1
        cx1, cy1 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        for px1, py1, px2, py2 in person_boxes(np.zeros((0, 4)), people):
            ax1, ay1 = int(max(cx1, np.floor(px1))), int(max(cy1, np.floor(py1)))
            ax2 = int(min(cx1 + crop.shape[1], np.ceil(px2)))
            ay2 = int(min(cy1 + crop.shape[0], np.ceil(py2)))
            if ax2 - ax1 >= 24 and ay2 - ay1 >= 24:
                region = crop[ay1 - cy1 : ay2 - cy1, ax1 - cx1 : ax2 - cx1]
                original = img[ay1:ay2, ax1:ax2]
                assert _detail(region) < 0.35 * _detail(original), "an unconfirmed person is readable in the crop"
                checked += 1
    assert checked >= 1, "no person overlapped a crop: the photo does not test the redaction"
