"""The model-free motion backend on the rendered street: it finds the objects with the right
classes, keeps parked ones, and its motion energy is ~0 on a static scene."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edge.classes import BICYCLE, BUS, CAR, OTHER, PERSON, TRUCK
from edge.errors import ConfigError
from edge.types import Detections, Frame
from edge.vision.motion import FootprintClasses, MotionDetector, MotionEnergy
from firmware_sim.street import Scenario, StreetOptions, StreetSource
from firmware_sim.street.scenario import Actor
from tests.street.conftest import street_camera


def _iou(dets: Detections, box: tuple[float, float, float, float]) -> np.ndarray:
    ix0 = np.maximum(dets.xyxy[:, 0], box[0])
    iy0 = np.maximum(dets.xyxy[:, 1], box[1])
    ix1 = np.minimum(dets.xyxy[:, 2], box[2])
    iy1 = np.minimum(dets.xyxy[:, 3], box[3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_b = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (dets.area + area_b - inter)


@pytest.mark.slow
def test_finds_every_rendered_object_with_its_class(cam) -> None:  # type: ignore[no-untyped-def]
    """Whole demo scenario at 2.5 fps: every actor fully in view is found (IoU >= 0.7) with its class."""
    src = StreetSource("street", fps=2.5)
    det = MotionDetector(cam)
    hits: Counter[tuple[str, str]] = Counter()
    misses: Counter[str] = Counter()
    spurious = 0
    while isinstance(frame := src.read(), Frame):
        dets = det.detect(frame)
        matched = np.zeros(len(dets), bool)
        for actor, x, y in src.scenario.visible(frame.t):
            box = src.renderer.box_px(actor, x, y)
            if box[0] < 0 or box[1] < 0 or box[2] > frame.width or box[3] > frame.height:
                continue  # partly out of the picture
            iou = _iou(dets, box) if len(dets) else np.zeros(0)
            if len(iou) == 0 or iou.max() < 0.7:
                misses[actor.kind] += 1
                continue
            j = int(iou.argmax())
            matched[j] = True
            hits[
                (
                    actor.kind,
                    ["person", "bicycle", "motorcycle", "car", "bus", "truck"][int(dets.class_id[j])],
                )
            ] += 1
        # a detection that is no actor is spurious unless it sits on the frame edge (partly visible actor)
        edge = (dets.xyxy[:, 0] <= 0) | (dets.xyxy[:, 2] >= frame.width) | (dets.xyxy[:, 1] <= 0)
        spurious += int((~matched & ~edge).sum())
    assert not misses, misses
    assert spurious == 0
    wrong = {k: v for k, v in hits.items() if k[0] != k[1]}
    assert not wrong, wrong
    for kind in ("person", "bicycle", "car", "bus", "truck"):
        assert hits[(kind, kind)] > 0, kind


def test_parked_car_stays_detected_for_ten_minutes(cam) -> None:  # type: ignore[no-untyped-def]
    car = Actor("car", "car", ((5.0, 21.0, 8.5), (700.0, 21.0, 8.5)), (40, 40, 200))
    src = StreetSource("street", fps=1.0, scenario=Scenario(actors=(car,), duration_s=700.0))
    det = MotionDetector(cam)
    counts = []
    while isinstance(frame := src.read(), Frame):
        d = det.detect(frame)
        if frame.t >= 5.0:
            counts.append(int((d.class_id == CAR).sum()))
    assert len(counts) == 696
    assert counts == [1] * len(counts)


def test_first_frame_seeds_background_and_timing_is_reported(cam) -> None:  # type: ignore[no-untyped-def]
    src = StreetSource("street", fps=5.0, options=StreetOptions(duration_s=30.0))
    det = MotionDetector(cam)
    assert (det.name, det.sha256) == ("motion", "")
    first = src.read()
    assert isinstance(first, Frame)
    assert len(det.detect(first)) == 0
    for _ in range(60):
        frame = src.read()
        assert isinstance(frame, Frame)
        det.detect(frame)
    assert set(det.last_timing_ms) == {"pre", "infer", "post"}
    assert all(v >= 0 for v in det.last_timing_ms.values())


def test_needs_a_calibration() -> None:
    cam = street_camera(calibration=None)
    with pytest.raises(ConfigError, match="calibration"):
        MotionDetector(cam)


@pytest.mark.parametrize(
    ("length_m", "width_m", "expect"),
    [
        (0.5, 0.5, PERSON),
        (0.9, 0.6, PERSON),
        (1.8, 0.6, BICYCLE),
        (2.2, 0.9, BICYCLE),
        (4.4, 1.8, CAR),
        (5.5, 2.1, CAR),
        (7.5, 2.3, TRUCK),
        (12.0, 2.5, BUS),
        (3.0, 3.0, OTHER),  # a square blob of 9 m2: two merged objects, no class
        (20.0, 0.3, OTHER),  # a thin long streak (a shadow line, a lamp post)
    ],
)
def test_footprint_table(length_m: float, width_m: float, expect: int) -> None:
    got = FootprintClasses().classify(
        np.array([length_m]), np.array([width_m]), np.array([length_m * width_m])
    )
    assert int(got[0]) == expect


def test_oblique_calibration_scales_footprints() -> None:
    """The same 100 x 20 px blob is a car far from the camera and a bicycle close to it."""
    cam = street_camera(
        calibration={
            # the top of the image is further away: it covers 32 m of ground width, the bottom 8 m
            "image_points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            "ground_points_m": [[0.0, 20.0], [32.0, 20.0], [20.0, 0.0], [12.0, 0.0]],
        }
    )
    det = MotionDetector(cam)
    img = np.full((400, 640, 3), 80, np.uint8)
    classes = []
    for i, top in enumerate((40, 370)):
        det.reset()
        det.detect(Frame(img, 2 * i, 2.0 * i, 2.0 * i, "street"))
        blob = img.copy()
        blob[top : top + 20, 300:400] = (40, 40, 200)
        d = det.detect(Frame(blob, 2 * i + 1, 2.0 * i + 0.2, 2.0 * i + 0.2, "street"))
        assert d.xyxy.tolist() == [[300.0, top, 400.0, top + 20]]
        classes.append(int(d.class_id[0]))
    assert classes == [CAR, BICYCLE]


def test_energy_is_zero_on_a_static_scene_and_local_to_the_moving_zone(cam) -> None:  # type: ignore[no-untyped-def]
    walker = Actor("p", "person", ((10.0, 4.5, 16.0), (20.0, 11.5, 16.0)), (40, 40, 210))  # crosses the plaza
    parked = Actor("c", "car", ((0.0, 21.0, 8.5), (30.0, 21.0, 8.5)), (40, 40, 200))  # there from the start
    src = StreetSource("street", fps=5.0, scenario=Scenario(actors=(walker, parked), duration_s=30.0))
    energy = MotionEnergy(cam)
    still, moving = [], []
    while isinstance(frame := src.read(), Frame):
        e = energy.update(frame)
        assert set(e) == {"kerb-no-parking", "bay-1", "bike-watch", "plaza", "*"}
        if 10.1 <= frame.t <= 20.0:
            moving.append(e)
        elif frame.t < 9.9 or frame.t > 20.3:  # (the frame after the walker vanishes shows a change too)
            still.append(e)
    assert max(e["*"] for e in still) < 0.001
    assert max(e["plaza"] for e in still) == 0.0
    assert min(e["plaza"] for e in moving) > 0.002  # above the motion gate's default threshold
    assert max(e["kerb-no-parking"] for e in moving) == 0.0
    assert max(e["bay-1"] for e in moving) == 0.0


def test_a_global_light_change_relearns_instead_of_one_giant_blob(cam) -> None:  # type: ignore[no-untyped-def]
    car = Actor("c", "car", ((2.0, 21.0, 8.5), (60.0, 21.0, 8.5)), (40, 40, 200))
    src = StreetSource("street", fps=5.0, scenario=Scenario(actors=(car,), duration_s=60.0))
    det = MotionDetector(cam)
    found = []
    while isinstance(frame := src.read(), Frame):
        img = frame.image
        if frame.t >= 30.0:  # street lights on: everything 60 grey levels brighter
            img = np.clip(img.astype(np.int16) + 60, 0, 255).astype(np.uint8)
        d = det.detect(Frame(img, frame.seq, frame.t, frame.ts, frame.camera_id))
        found.append((frame.t, len(d), int((d.class_id == CAR).sum())))
    at_switch = [n for t, n, _ in found if 30.0 <= t < 30.1]
    assert at_switch == [0]  # the frame of the switch reports nothing, not a frame-sized object
    # before the switch the car is found; after it the car is part of the new background (re-learned)
    assert all(c == 1 for t, _, c in found if 3.0 <= t < 30.0)
    assert all(n == 0 for t, n, _ in found if t >= 30.0)
