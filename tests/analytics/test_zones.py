"""Geometry, calibration, schedules and membership hysteresis."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from edge.config.zones import CalibrationConfig, ScheduleConfig
from edge.errors import ConfigError
from edge.geometry import (
    Homography,
    distance_to_polygon,
    fit_homography,
    points_in_polygon,
    polygon_area,
    segments_cross,
)
from edge.zones.calibration import GroundPlane
from edge.zones.membership import ZoneMembership
from edge.zones.schedule import Schedule

SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
CONCAVE = np.array([[0, 0], [10, 0], [10, 10], [5, 5], [0, 10]], float)


@pytest.mark.parametrize(
    ("poly", "point", "inside"),
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (11, 5), False),
        (SQUARE, (-0.1, 5), False),
        (CONCAVE, (5, 8), False),  # in the notch
        (CONCAVE, (2, 3), True),
        (CONCAVE, (8, 7), True),
    ],
)
def test_points_in_polygon(poly: np.ndarray, point: tuple[float, float], inside: bool) -> None:
    assert points_in_polygon(np.array([point]), poly).tolist() == [inside]


def test_area_and_distance() -> None:
    assert polygon_area(SQUARE) == 100.0
    assert polygon_area(CONCAVE) == pytest.approx(75.0)
    np.testing.assert_allclose(distance_to_polygon(np.array([[12, 5], [5, 5], [13, 14]]), SQUARE), [2, 5, 5])


@pytest.mark.parametrize(
    ("p0", "p1", "sign"),
    [
        ((8, 5), (2, 5), 1),  # a=(5,0) b=(5,10): standing at a facing b (down the screen), +x is on the left
        ((2, 5), (8, 5), -1),
        ((2, 5), (4, 5), 0),  # does not reach the line
        ((8, 12), (2, 12), 0),  # passes beyond the end b
    ],
)
def test_segment_crossing_direction(p0: tuple, p1: tuple, sign: int) -> None:
    got = segments_cross(np.array([p0]), np.array([p1]), np.array([5, 0]), np.array([5, 10]))
    assert got.tolist() == [sign]


def test_homography_round_trip_area_and_degenerate() -> None:
    img = np.array([[100, 400], [540, 400], [620, 470], [20, 470]], float)  # a trapezoid seen in perspective
    ground = np.array([[0, 10], [4, 10], [4, 0], [0, 0]], float)  # a 4 m x 10 m rectangle
    h = Homography.fit(img, ground)
    np.testing.assert_allclose(h.to_ground(img), ground, atol=1e-6)
    np.testing.assert_allclose(h.to_image(ground), img, atol=1e-6)
    assert h.area_m2(img) == pytest.approx(40.0)
    assert h.residuals_m(img, ground).max() < 1e-6
    # The config's ground plane (normalised image points) gives the same homography at any frame size.
    plane = GroundPlane(CalibrationConfig(image_points=(img / [640, 480]).tolist(), ground_points_m=ground.tolist()))
    assert plane.rms_error_m < 1e-6
    np.testing.assert_allclose(plane.at(640, 480).to_ground(img), ground, atol=1e-6)
    np.testing.assert_allclose(plane.at(1280, 960).to_ground(img * 2), ground, atol=1e-6)
    with pytest.raises(ValueError, match="degenerate"):
        fit_homography(np.array([[0, 0], [1, 1], [2, 2], [3, 3]]), ground)
    bad = CalibrationConfig(
        image_points=[(0, 0), (0.5, 0.5), (1, 1), (0.25, 0.25)],
        ground_points_m=[(0, 0), (1, 0), (1, 1), (0, 1)],
    )
    with pytest.raises(ConfigError, match="calibrate"):
        GroundPlane(bad)


TZ = "Asia/Shanghai"


def ts(local: str) -> float:
    return dt.datetime.fromisoformat(local).replace(tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()


SCHOOL = ScheduleConfig.model_validate(
    {
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "09:00"}],
        "except_dates": ["2026-11-25"],
    }
)
NIGHT = ScheduleConfig.model_validate({"windows": [{"days": ["fri"], "start": "22:00", "end": "06:00"}]})


@pytest.mark.parametrize(
    ("cfg", "local", "active"),
    [
        (SCHOOL, "2026-11-23T06:59:59", False),  # Monday
        (SCHOOL, "2026-11-23T07:00:00", True),
        (SCHOOL, "2026-11-23T08:59:59", True),
        (SCHOOL, "2026-11-23T09:00:00", False),
        (SCHOOL, "2026-11-22T08:00:00", False),  # Sunday
        (SCHOOL, "2026-11-25T08:00:00", False),  # exception date (holiday)
        (NIGHT, "2026-11-27T23:00:00", True),  # Friday night
        (NIGHT, "2026-11-28T05:00:00", True),  # ... into Saturday morning
        (NIGHT, "2026-11-28T23:00:00", False),  # Saturday night
        (NIGHT, "2026-11-27T05:00:00", False),  # Friday morning belongs to Thursday's window
        (None, "2026-11-27T05:00:00", True),
    ],
)
def test_schedule(cfg: ScheduleConfig | None, local: str, active: bool) -> None:
    assert Schedule(cfg, TZ).active(ts(local)) is active


def test_schedule_uses_the_site_time_zone() -> None:
    utc_8am_shanghai = ts("2026-11-23T08:00:00")
    assert Schedule(SCHOOL, TZ).active(utc_8am_shanghai)
    assert not Schedule(SCHOOL, "Europe/London").active(utc_8am_shanghai)  # 00:00 in London


def test_membership_enter_exit_and_unseen_hold() -> None:
    m = ZoneMembership(1, enter_s=1.0, exit_s=2.0, hold_unseen_s=5.0)
    ids = np.array([7])
    assert not m.update(ids, [[True]], 0.0).inside[0, 0]
    assert not m.update(ids, [[True]], 0.9).inside[0, 0]
    v = m.update(ids, [[True]], 1.0)
    assert v.inside[0, 0] and v.entries[0] == 1 and v.entered_t[0, 0] == 0.0
    assert m.update(ids, [[False]], 1.5).inside[0, 0]  # outside for < exit_s
    assert m.update(ids, [[True]], 2.0).inside[0, 0]
    # Unseen: held for hold_unseen_s, counted in all_inside.
    none, empty = np.zeros(0, np.int64), np.zeros((0, 1), bool)
    assert m.update(none, empty, 2.5).all_inside[:, 0].tolist() == [True]  # first frame without it
    v = m.update(none, empty, 7.4)
    assert v.all_inside[:, 0].tolist() == [True]
    v = m.update(none, empty, 7.6)
    assert v.all_inside.shape[0] == 0 and v.exits[0] == 1


def test_membership_edge_margin_keeps_a_member_in() -> None:
    m = ZoneMembership(1, enter_s=0.0, exit_s=0.0, hold_unseen_s=0.0)
    ids = np.array([1])
    assert m.update(ids, [[True]], 0.0, [[True]]).inside[0, 0]
    assert m.update(ids, [[False]], 0.5, [[True]]).inside[0, 0]  # just outside, within the margin
    assert not m.update(ids, [[False]], 1.0, [[False]]).inside[0, 0]
    m2 = ZoneMembership(1, enter_s=0.0, exit_s=0.0, hold_unseen_s=0.0)
    assert not m2.update(ids, [[False]], 0.0, [[True]]).inside[0, 0]  # the margin never lets a non-member in
