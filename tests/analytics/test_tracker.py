"""ByteTracker: association stages, lifetimes in seconds, stationarity, velocity, place memory."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.classes import BUS, CAR, PERSON
from edge.config.rules import TrackerConfig
from edge.config.zones import CalibrationConfig
from edge.geometry import greedy_match, iou_matrix
from edge.tracking import ByteTracker
from edge.types import Detections, Tracks
from edge.zones.calibration import GroundPlane


def dets(*rows: tuple[list[float], float, int]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections.from_arrays([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def run(tracker: ByteTracker, frames: list[tuple[float, Detections]]) -> list[Tracks]:
    return [tracker.update(d, t) for t, d in frames]


def test_iou_matrix_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 1 / 3, 0], [1, 1 / 3, 0]], rtol=1e-6)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


@pytest.mark.parametrize("seed", range(8))
def test_greedy_match_equals_sorted_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.random((7, 9)) * (rng.random((7, 9)) < 0.5)
    r, c = greedy_match(s, 0.2)
    # Reference: walk the pairs by descending score in plain Python.
    used_r: set[int] = set()
    used_c: set[int] = set()
    ref = []
    for i, j in sorted(itertools.product(range(7), range(9)), key=lambda p: -s[p]):
        if s[i, j] >= 0.2 and i not in used_r and j not in used_c:
            used_r.add(i)
            used_c.add(j)
            ref.append((i, j))
    assert sorted(zip(r.tolist(), c.tolist(), strict=True)) == sorted(ref)


def moving(t: float, v: float = 50.0, y: float = 100.0) -> list[float]:
    x = 100 + v * t
    return [x, y, x + 40, y + 80]


@pytest.mark.parametrize("fps", [5, 10, 25])
def test_confirmation_and_lifetimes_are_seconds_not_frames(fps: int) -> None:
    cfg = TrackerConfig(confirm_s=0.5, lost_s=1.0)
    tr = ByteTracker(cfg)
    out = []
    for i in range(int(3 * fps)):
        t = i / fps
        d = dets((moving(t), 0.9, PERSON)) if t < 2.0 else Detections.empty()
        out.append((t, tr.update(d, t)))
    first_seen = min(t for t, o in out if len(o))
    assert first_seen == pytest.approx(0.5, abs=1.0 / fps + 1e-9)
    # Lost at 2.0; removed after lost_s (1.0 s) whatever the frame rate.
    tr = ByteTracker(cfg)
    for i in range(int(2 * fps)):
        tr.update(dets((moving(i / fps), 0.9, PERSON)), i / fps)
    tr.update(Detections.empty(), 2.0)
    tr.update(Detections.empty(), 2.0 + 0.9)
    assert len(tr) == 1
    tr.update(Detections.empty(), 2.0 + 1.1)
    assert len(tr) == 0


def test_id_survives_a_short_occlusion_of_a_moving_object() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=2.0))
    ids = []
    for i in range(60):
        t = i * 0.1
        hidden = 2.0 <= t < 3.5
        o = tr.update(Detections.empty() if hidden else dets((moving(t), 0.9, PERSON)), t)
        if len(o):
            ids.append(int(o.track_id[0]))
    assert set(ids) == {1}


def test_a_long_occlusion_of_a_moving_object_gives_a_new_id() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=1.0))
    ids = set()
    for i in range(60):
        t = i * 0.1
        hidden = 2.0 <= t < 3.5
        o = tr.update(Detections.empty() if hidden else dets((moving(t), 0.9, PERSON)), t)
        ids.update(o.track_id.tolist())
    assert ids == {1, 2}


def test_low_score_detections_extend_tracks_but_never_start_them() -> None:
    tr = ByteTracker(TrackerConfig(high_score=0.5, low_score=0.1))
    for i in range(10):
        tr.update(dets((moving(i * 0.1), 0.9, PERSON)), i * 0.1)
    # The score drops (partial occlusion): stage 2 keeps the track alive and visible.
    for i in range(10, 20):
        o = tr.update(dets((moving(i * 0.1), 0.3, PERSON), ([500, 500, 540, 580], 0.3, PERSON)), i * 0.1)
        assert o.track_id.tolist() == [1]


def test_bus_passing_in_front_does_not_steal_the_parked_car_and_memory_restores_it() -> None:
    cfg = TrackerConfig(lost_s=2.0, place_memory_s=600)
    tr = ByteTracker(cfg)
    car = [200.0, 200.0, 300.0, 260.0]
    stat_before = 0.0
    for i in range(0, 100):  # 50 s parked at 2 fps
        o = tr.update(dets((car, 0.9, CAR)), i * 0.5)
    stat_before = float(o.stationary_s[0])
    assert o.stationary.all() and stat_before > 40
    bus_ids = set()
    for i in range(100, 140):  # 20 s: a bus covers the car
        t = i * 0.5
        x = 600 - (t - 50) * 30
        o = tr.update(dets(([x, 120.0, x + 300, 300.0], 0.9, BUS)), t)
        bus_ids.update(o.track_id.tolist())
    assert 1 not in bus_ids
    o = tr.update(dets((car, 0.9, CAR)), 70.0)
    assert o.track_id.tolist() == [1], "the parked car continues its own track"
    assert o.stationary[0] and o.stationary_s[0] > 65, "and its stationary time went on while hidden"


def test_without_place_memory_the_reappearing_car_is_a_new_track() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=2.0, place_memory_s=1.0))
    car = [200.0, 200.0, 300.0, 260.0]
    for i in range(100):
        tr.update(dets((car, 0.9, CAR)), i * 0.5)
    tr.update(Detections.empty(), 55.0)
    tr.update(Detections.empty(), 69.0)
    tr.update(dets((car, 0.9, CAR)), 70.0)
    o = tr.update(dets((car, 0.9, CAR)), 70.5)
    assert o.track_id.tolist() == [2]


def test_stationarity_is_robust_to_detector_jitter() -> None:
    rng = np.random.default_rng(0)
    tr = ByteTracker(TrackerConfig(stationary_after_s=3.0, stationary_ratio=0.15))
    base = np.array([400.0, 300.0, 520.0, 380.0])
    last = 0.0
    for i in range(200):
        t = i * 0.2
        o = tr.update(dets(((base + rng.uniform(-4, 4, 4)).tolist(), 0.9, CAR)), t)
        if t > 3.5:
            assert o.stationary[0], f"jitter broke stationarity at t={t}"
            assert o.stationary_s[0] >= last
            last = float(o.stationary_s[0])
    assert last == pytest.approx(39.8 - 0.2, abs=1.0)


def test_velocity_px_per_s_and_m_per_s_with_calibration() -> None:
    # 0.1 m per pixel everywhere.
    unit = [[0, 0], [1, 0], [1, 1], [0, 1]]
    ground = GroundPlane(CalibrationConfig(image_points=unit, ground_points_m=[[0, 0], [100, 0], [100, 100], [0, 100]]))
    tr = ByteTracker(TrackerConfig(), ground=ground)
    for i in range(50):
        t = i * 0.1
        o = tr.update(dets((moving(t, v=50.0), 0.9, PERSON)), t, (1000, 1000))
    assert o.velocity[0, 0] == pytest.approx(50.0, rel=0.05)
    assert abs(o.velocity[0, 1]) < 1.0
    assert o.speed_mps[0] == pytest.approx(5.0, rel=0.05)
    assert not o.stationary[0]
    o2 = ByteTracker().update(dets((moving(0), 0.9, PERSON)), 0.0)
    assert len(o2) == 0 or np.isnan(o2.speed_mps).all()


def test_class_votes_stabilise_a_flickering_label() -> None:
    tr = ByteTracker()
    box = [100.0, 100.0, 200.0, 160.0]
    for i in range(30):
        cls = CAR if i % 4 else BUS  # a top-down car sometimes labelled bus
        o = tr.update(dets((box, 0.8, cls)), i * 0.2)
    assert o.track_id.tolist() == [1] and o.class_id.tolist() == [CAR]


def test_many_objects_keep_their_ids() -> None:
    rng = np.random.default_rng(5)
    n = 120
    pos = rng.uniform(50, 1800, size=(n, 2))
    order = np.argsort(pos[:, 0] * 10000 + pos[:, 1])
    pos = pos[order]
    pos[:, 0] = np.arange(n) * 15.0  # spread out so boxes overlap only slightly
    vel = rng.normal(0, 20, size=(n, 2))
    tr = ByteTracker()
    ids_at = {}
    for i in range(50):
        t = i * 0.1
        p = pos + vel * t
        xyxy = np.c_[p[:, 0], p[:, 1], p[:, 0] + 12, p[:, 1] + 30]
        o = tr.update(Detections.from_arrays(xyxy, np.full(n, 0.9), np.zeros(n)), t)
        if i in (5, 49):
            ids_at[i] = o.track_id.copy()
    assert len(ids_at[5]) == n and np.array_equal(ids_at[5], ids_at[49])


BIKE = 1  # canonical bicycle


@pytest.mark.parametrize("fps", [2, 5])
def test_a_steady_low_score_object_becomes_a_track(fps: int) -> None:
    """A parked bike the model scores 0.32 in every frame passed the detector's 0.3 threshold: the
    rules must see it (it used to stay below new_track_score 0.35 for ever), after low_confirm_s."""
    cfg = TrackerConfig()
    tr = ByteTracker(cfg)
    box = [100.0, 100.0, 200.0, 180.0]
    out = run(tr, [(k / fps, dets((box, 0.32, BIKE))) for k in range(4 * fps)])
    first = next(k for k, o in enumerate(out) if len(o))
    assert first / fps == pytest.approx(cfg.low_confirm_s, abs=1.0 / fps + 1e-9)
    assert all(len(o) == 1 for o in out[first:])


def test_a_flickering_or_brief_low_score_box_does_not() -> None:
    cfg = TrackerConfig()
    tr = ByteTracker(cfg)
    box = [100.0, 100.0, 200.0, 180.0]
    frames = [(k / 5, dets((box, 0.32, BIKE)) if k % 2 == 0 else dets()) for k in range(40)]
    frames += [(8.0 + k / 5, dets((box, 0.32, BIKE))) for k in range(5)]  # 0.8 s < low_confirm_s
    assert all(len(o) == 0 for o in run(tr, frames))
    off = ByteTracker(TrackerConfig(low_birth_score=0.35))  # equal to new_track_score: turned off
    assert all(len(o) == 0 for o in run(off, [(k / 5, dets((box, 0.32, BIKE))) for k in range(40)]))


def test_a_low_start_is_never_confirmed_later_than_a_high_one() -> None:
    """A person walking in scores 0.32 at first, then 0.6: confirmed confirm_s after the first
    0.6 at the latest (a line crossing must not be lost to the longer low-score confirmation)."""
    cfg = TrackerConfig()
    tr = ByteTracker(cfg)
    frames = [(k / 10, dets((moving(k / 10), 0.32 if k < 5 else 0.6, PERSON))) for k in range(20)]
    out = run(tr, frames)
    first = next(k for k, o in enumerate(out) if len(o))
    assert first <= 5 + round(cfg.confirm_s * 10)
    assert len({int(o.track_id[0]) for o in out[first:]}) == 1


def test_low_birth_score_must_lie_between_low_score_and_new_track_score() -> None:
    with pytest.raises(ValueError, match="low_birth_score"):
        TrackerConfig(low_birth_score=0.05)
    with pytest.raises(ValueError, match="low_birth_score"):
        TrackerConfig(low_birth_score=0.5)
