"""Counting fixes of issue 12, each with the case that failed before it.

1. zones drawn to the frame's border include what the border cuts (anchors on y = 1.0 / x = 1.0);
3. a crowd zone counts what is visible now: not people unseen for hold_unseen_s, not a person twice
   when their track is lost and found again under a new id, and not zero while tracks confirm;
   hold_unseen_s below exit_s is honoured;
5. a count zone with a capacity reports occupancy = count / capacity.
(2, tile fusion, is tests/vision/test_tile_fusion.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.classes import CAR, PERSON
from edge.config import parse_config
from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig
from edge.config.zones import ZoneConfig
from edge.errors import ConfigError
from edge.geometry import points_in_polygon, reach_frame_edges, to_pixels
from edge.rules import CameraAnalytics
from edge.tracking import ByteTracker
from edge.types import Detections, Frame, Tracks
from edge.zones.geometry import compile_zones
from edge.zones.membership import ZoneMembership

W, H = 200, 100
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def tracks(rows: list[tuple[int, int, list[float]]]) -> Tracks:
    """rows of (track_id, class_id, xyxy px)."""
    n = len(rows)
    return Tracks(
        xyxy=np.array([r[2] for r in rows], np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.array([r[1] for r in rows], np.int32),
        track_id=np.array([r[0] for r in rows], np.int64),
        first_t=np.zeros(n),
        velocity=np.zeros((n, 2), np.float32),
        speed_mps=np.full(n, np.nan, np.float32),
        stationary=np.zeros(n, bool),
        stationary_s=np.zeros(n, np.float32),
    )


def parse_zone(z: dict) -> ZoneConfig:
    return ZoneConfig.model_validate(z)


def analytics(zones: list[dict], rules: dict | None = None) -> CameraAnalytics:
    cam = CameraConfig.model_validate({"id": "cam0", "source": "x.mp4", "zones": zones})
    return CameraAnalytics(cam, RulesConfig.model_validate(rules or {}), "UTC")


# ------------------------------------------------------------------ 1. the frame's border


def test_an_anchor_on_the_frame_border_is_inside_a_zone_drawn_to_it() -> None:
    square = to_pixels(WHOLE, W, H)
    border = np.array([[100.0, H], [W, 50.0], [W, H], [0.0, 50.0], [100.0, 0.0]])
    # The even-odd test alone loses the bottom and right borders, where cut objects end.
    assert points_in_polygon(border, square).tolist() == [False, False, False, True, True]
    assert points_in_polygon(border, reach_frame_edges(square, W, H)).all()
    (zone,) = compile_zones(
        [parse_zone({"id": "z", "kind": "crowd", "polygon": WHOLE})], W, H
    )
    assert zone.contains(border, np.full(len(border), PERSON)).all()
    assert zone.area_px == pytest.approx(W * H)  # the area is still the frame's


def test_an_inner_zone_edge_is_not_moved() -> None:
    (zone,) = compile_zones(
        [parse_zone({"id": "z", "kind": "crowd", "polygon": [[0.2, 0.5], [1.0, 0.5], [1.0, 1.0], [0.2, 1.0]]})],
        W,
        H,
    )
    pts = np.array([[39.0, 80.0], [41.0, 80.0], [100.0, 49.0], [W, H]])
    assert zone.contains(pts, np.full(4, PERSON)).tolist() == [False, True, False, True]


def test_the_nearest_person_cut_by_the_frame_bottom_is_counted() -> None:
    """Boxes are clipped to the frame: the person nearest the camera ends on y = H exactly."""
    an = analytics([{"id": "whole", "kind": "crowd", "polygon": WHOLE}, {"id": "car-park", "kind": "count",
                    "polygon": [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]}])
    near = tracks([(1, PERSON, [20, 40, 60, H]), (2, CAR, [150, 60, W, H])])
    for i in range(3):
        an.update_at(i * 0.5, 1e9 + i * 0.5, near, (W, H))
    st = an.zone_states()
    assert st["whole"]["counts"] == {"person": 1}  # crowd zones count people
    assert st["car-park"]["counts"] == {"car": 1}  # the car cut by both the bottom and the right edge


@pytest.mark.parametrize(
    ("polygon", "ok"),
    [
        ([[0.0, 0.5], [1.05, 0.5], [1.05, 1.05], [0.0, 1.05]], True),  # drawn over the edge: accepted
        ([[-0.1, 0.5], [1.0, 0.5], [1.0, 1.1], [-0.1, 1.1]], True),
        ([[0.0, 0.5], [1.2, 0.5], [1.2, 1.0], [0.0, 1.0]], False),  # farther than 0.1 beyond: a typo
    ],
)
def test_zone_vertices_may_reach_over_the_frame_edge(polygon: list, ok: bool) -> None:
    data = {
        "config_version": 1, "device_id": "d", "site_id": "s",
        "cameras": [{"id": "c", "source": "x.mp4", "zones": [{"id": "z", "kind": "crowd", "polygon": polygon}]}],
    }
    if ok:
        cfg = parse_config(data)
        an = CameraAnalytics(cfg.cameras[0], cfg.rules, "UTC")
        an.update_at(0.0, 1e9, tracks([(1, PERSON, [10, 50, 30, H])]), (W, H))
        assert an.zone_states()["z"]["count"] == 1
    else:
        with pytest.raises(ConfigError) as exc:
            parse_config(data)
        assert any("outside 0..1 by more than 0.1" in p for p in exc.value.problems), exc.value.problems


def test_a_zone_reaching_over_the_edge_has_the_area_in_view() -> None:
    cam = CameraConfig.model_validate({
        "id": "c", "source": "x.mp4",
        "zones": [{"id": "z", "kind": "crowd", "polygon": [[0.0, 0.5], [1.1, 0.5], [1.1, 1.1], [0.0, 1.1]]}],
        "calibration": {"image_points": WHOLE, "ground_points_m": [[0, 0], [20, 0], [20, 10], [0, 10]]},
    })
    an = CameraAnalytics(cam, RulesConfig(), "UTC")
    assert an.crowd.zones[0].area_m2 == pytest.approx(100.0)  # half of the 20 m x 10 m view, not 1.1^2 more


# ------------------------------------------------------------------ 3. crowds: visible now


def crowd(rules: dict | None = None) -> CameraAnalytics:
    return analytics([{"id": "plaza", "kind": "crowd", "polygon": WHOLE}], rules)


def test_a_crowd_zone_does_not_count_people_no_longer_seen() -> None:
    an = crowd()
    two = tracks([(1, PERSON, [10, 10, 30, 60]), (2, PERSON, [100, 10, 120, 60])])
    for i in range(6):
        an.update_at(i * 0.5, 1e9 + i * 0.5, two, (W, H))
    assert an.zone_states()["plaza"]["count"] == 2
    one = two[np.array([True, False])]
    an.update_at(3.0, 1e9 + 3.0, one, (W, H))  # person 2 is gone (hold_unseen_s is 5 s)
    st = an.zone_states()["plaza"]
    assert st["count"] == 1 and st["counts"] == {"person": 1}
    assert 2 in st["track_ids"]  # still a member of the zone (dwell, in/out) ...
    rec = an.feature_record(1e6, 1e9 + 1e6)  # ... but not counted in what the box reports
    assert rec is not None and rec.payload["zones"]["plaza"]["count"] == {"person": 1}


def test_a_lost_and_refound_person_is_counted_once() -> None:
    an = crowd()
    for i in range(4):
        an.update_at(i * 0.5, 1e9 + i * 0.5, tracks([(1, PERSON, [10, 10, 30, 60])]), (W, H))
    # The tracker lost id 1 and the same person comes back as id 7 a moment later.
    for i in range(4, 8):
        an.update_at(i * 0.5, 1e9 + i * 0.5, tracks([(7, PERSON, [12, 10, 32, 60])]), (W, H))
    st = an.zone_states()["plaza"]
    assert st["count"] == 1 and st["count_smoothed"] == pytest.approx(1.0)
    assert sorted(st["track_ids"]) == [1, 7]  # membership holds both ids; the count does not


def test_a_restart_counts_the_people_in_view_before_their_tracks_confirm() -> None:
    """A fresh tracker confirms tracks after confirm_s and membership needs enter_s: before the fix the
    crowd count was 0 for ~1.3 s after every start."""
    rules = RulesConfig()
    an = CameraAnalytics(
        CameraConfig.model_validate({"id": "c", "source": "x.mp4", "zones": [{"id": "plaza", "kind": "crowd", "polygon": WHOLE}]}),
        rules,
        "UTC",
    )
    tracker = ByteTracker(rules.tracker)
    dets = Detections.from_arrays(
        [[10, 10, 30, 60], [60, 10, 80, 60], [110, 10, 130, H]], [0.8, 0.7, 0.9], [PERSON] * 3
    )
    image = np.zeros((H, W, 3), np.uint8)
    counts = []
    for i in range(8):
        t = i * 0.2
        frame = Frame(image=image, seq=i, t=t, ts=1e9 + t, camera_id="c")
        trk = tracker.update(dets, t, (W, H))
        an.update(frame, trk, detections=dets)
        counts.append(an.zone_states()["plaza"]["count"])
    assert counts == [3] * 8  # from the first frame, confirmed or not, and never twice


def test_hold_unseen_below_exit_is_honoured() -> None:
    m = ZoneMembership(1, enter_s=0.0, exit_s=2.0, hold_unseen_s=0.5)
    assert m.hold_unseen_s == 0.5  # was silently raised to exit_s
    m.update(np.array([1]), np.array([[True]]), 0.0)
    none, no_raw = np.zeros(0, np.int64), np.zeros((0, 1), bool)
    m.update(none, no_raw, 0.2)  # first frame without it
    assert m.update(none, no_raw, 0.6).all_inside[:, 0].sum() == 1  # unseen 0.4 s: still held
    assert m.update(none, no_raw, 0.8).all_inside[:, 0].sum() == 0  # 0.6 s > 0.5 s: gone, not after exit_s
    # A visible object outside still needs exit_s.
    m2 = ZoneMembership(1, enter_s=0.0, exit_s=2.0, hold_unseen_s=0.5)
    m2.update(np.array([1]), np.array([[True]]), 0.0)
    assert m2.update(np.array([1]), np.array([[False]]), 1.0).inside[0, 0]
    assert not m2.update(np.array([1]), np.array([[False]]), 3.0).inside[0, 0]


# ------------------------------------------------------------------ 5. count zones with a capacity


def test_a_count_zone_with_capacity_reports_occupancy_against_it() -> None:
    an = analytics(
        [{"id": "car-park", "kind": "count", "classes": ["vehicle"], "capacity": 4, "polygon": WHOLE}],
        {"membership": {"enter_s": 0}, "feature_interval_s": 10},
    )
    cars = tracks([(1, CAR, [10, 10, 40, 40]), (2, CAR, [60, 10, 90, 40]), (3, CAR, [110, 10, 140, 40])])
    for i in range(11):
        an.update_at(float(i), 1e9 + i, cars, (W, H))
    st = an.zone_states()["car-park"]
    assert (st["count"], st["capacity"], st["occupancy"]) == (3, 4, 0.75)
    rec = an.feature_record(10.0, 1e9 + 10)
    assert rec is not None
    z = rec.payload["zones"]["car-park"]
    assert z["occupancy"] == pytest.approx(0.75) and z["capacity"] == 4  # not "occupied 100 % of the time"


def test_capacity_is_refused_where_it_means_nothing() -> None:
    data = {
        "config_version": 1, "device_id": "d", "site_id": "s",
        "cameras": [{"id": "c", "source": "x.mp4", "zones": [{"id": "z", "kind": "crowd", "capacity": 3, "polygon": WHOLE}]}],
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert any("only bike_bay and count zones have a capacity" in p for p in exc.value.problems)
