"""Annotation, heat map and time-series plot: pictures checked by their pixels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge.config.zones import LineConfig, ZoneConfig
from edge.tools.draw import (
    ZONE_COLOURS,
    annotate,
    class_counts,
    draw_hud,
    draw_tracks,
    draw_zones,
    fmt_density,
    format_state,
    track_label,
    uncounted_notes,
    zone_summary,
)
from edge.tools.heatmap import colourise, render_heatmap, save_png
from edge.tools.plots import PALETTE, ZoneSeries, nice_ticks, render_timeseries, tick_label
from edge.types import Tracks

W, H = 640, 360


def _tracks(rows: list[tuple[float, float, float, float, int, int, bool, float]]) -> Tracks:
    n = len(rows)
    a = np.array(rows, dtype=np.float64).reshape(n, 8)
    return Tracks(
        xyxy=a[:, :4].astype(np.float32),
        confidence=np.full(n, 0.9, np.float32),
        class_id=a[:, 4].astype(np.int32),
        track_id=a[:, 5].astype(np.int64),
        first_t=np.zeros(n),
        velocity=np.zeros((n, 2), np.float32),
        speed_mps=np.full(n, np.nan, np.float32),
        stationary=a[:, 6].astype(bool),
        stationary_s=a[:, 7].astype(np.float32),
    )


def _grey() -> np.ndarray:
    return np.full((H, W, 3), 100, np.uint8)


ZONE = ZoneConfig(id="kerb", kind="no_parking", polygon=[(0.25, 0.5), (0.75, 0.5), (0.75, 0.9), (0.25, 0.9)])


def test_draw_zones_tints_inside_only_and_keeps_input() -> None:
    img = _grey()
    out = draw_zones(img, [ZONE])
    assert (img == 100).all()  # input untouched
    inside = out[int(0.7 * H), int(0.5 * W)].astype(int)
    outside = out[int(0.2 * H), int(0.5 * W)].astype(int)
    assert (outside == 100).all()
    red = np.array(ZONE_COLOURS["no_parking"])
    # Blended toward the no_parking colour: red channel (BGR index 2) up, blue down.
    assert inside[2] > 100 and inside[0] < 100
    assert np.abs(inside - (0.75 * 100 + 0.25 * red)).max() <= 2
    # The outline is drawn in the zone colour on the left edge.
    assert (out[int(0.7 * H), int(0.25 * (W - 1))] == red).all()


def test_draw_zones_labels_state_and_lines() -> None:
    line = LineConfig(id="door", a=(0.9, 0.1), b=(0.9, 0.9))
    plain = draw_zones(_grey(), [ZONE])
    with_state = draw_zones(_grey(), [ZONE], states={"kerb": {"count": 3, "violating": True}}, lines=[line])
    assert not np.array_equal(plain, with_state)
    col = with_state[int(0.5 * H), int(0.9 * (W - 1))]
    assert tuple(int(c) for c in col) == (255, 255, 0)  # the line is drawn in cyan


@pytest.mark.parametrize(
    ("state", "text"),
    [
        ({"count": 3, "capacity": 15, "overflow": True}, "count=3 capacity=15 overflow"),
        ({"density": 0.456, "los": "C", "zone_id": "p"}, "density=0.46 los=C"),
        ({"state": "violation", "dwell_s": 12.0}, "violation dwell_s=12"),
        (None, ""),
        ("idle", "idle"),
    ],
)
def test_format_state(state: object, text: str) -> None:
    assert format_state(state) == text


@pytest.mark.parametrize(
    ("kind", "state", "text"),
    [
        ("crowd", {"active": True, "count": 3, "count_smoothed": 2.6, "density": 0.25, "los": "B"}, "3 people · 0.25 /m2 · LOS B"),
        ("crowd", {"active": True, "count": 1, "count_smoothed": 0.1, "density": 0.0012, "los": "A"}, "1 person · 0.0012 /m2 · LOS A"),
        ("count", {"active": True, "count": 0, "track_ids": []}, "0 objects"),
        ("bike_bay", {"active": True, "count": 12, "capacity": 15, "occupancy": 0.8}, "12/15 bikes (80%)"),
        ("bike_bay", {"count": 17, "capacity": 15, "overflow": True}, "17/15 bikes (113%) · OVERFLOW"),
        ("no_parking", {"active": False, "count": 2, "violations": ["v1"]}, "2 vehicles · 1 violation · (not in force)"),
    ],
)
def test_zone_summary_in_words(kind: str, state: dict[str, object], text: str) -> None:
    got = zone_summary(kind, state)
    assert got == text
    assert "count_smoothed" not in got and "active" not in got


@pytest.mark.parametrize(
    ("value", "text"), [(0.0, "0"), (0.00123, "0.0012"), (0.0834, "0.083"), (1.44, "1.4"), (0.00001, "<0.0001")]
)
def test_fmt_density_keeps_two_significant_figures(value: float, text: str) -> None:
    assert fmt_density(value) == text


def test_standing_person_label_says_standing() -> None:
    tr = _tracks([(100, 100, 140, 250, 0, 8, True, 8.0)])
    assert track_label(tr, 0) == "#8 person · standing 8 s"


def test_a_person_walking_in_with_feet_out_of_view_is_explained() -> None:
    """The box reaches the bottom edge, so its ground point (bottom-centre) lies below a zone that
    ends at 0.9: the rules do not count it and the label says why instead of a bare count=0."""
    zone = ZoneConfig(id="plaza", kind="crowd", area_m2=10, polygon=[(0.2, 0.4), (0.8, 0.4), (0.8, 0.9), (0.2, 0.9)])
    walking_in = _tracks([(280, 150, 360, H, 0, 1, False, 0.0), (450, 150, 480, 300, 0, 2, False, 0.0)])
    states = {"plaza": {"kind": "crowd", "count": 0, "track_ids": [], "density": 0.0, "los": "A"}}
    notes = uncounted_notes(walking_in, [zone], states, W, H)
    assert notes == {1: "feet out of view, not counted", 2: "not counted yet"}
    states["plaza"]["track_ids"] = [2]
    assert uncounted_notes(walking_in, [zone], states, W, H) == {1: "feet out of view, not counted"}
    far_away = _tracks([(10, 10, 40, 60, 0, 3, False, 0.0)])  # nowhere near the zone: nothing to explain
    assert uncounted_notes(far_away, [zone], states, W, H) == {}


def test_draw_tracks_boxes_labels_and_highlight() -> None:
    tr = _tracks([(100, 100, 200, 250, 3, 12, True, 34.0), (400, 50, 450, 200, 0, 4, False, 0.0)])
    out = draw_tracks(_grey(), tr, highlight=[12])
    # The parked car (class 3) box edge in the car colour, the highlight frame in red outside it.
    assert tuple(int(c) for c in out[180, 100]) == (0, 140, 255)
    assert tuple(int(c) for c in out[180, 97]) == (0, 0, 255)
    assert tuple(int(c) for c in out[150, 400]) == (60, 220, 60)  # person box in green
    assert track_label(tr, 0) == "#12 car · parked 34 s"
    assert track_label(tr, 1) == "#4 person"
    assert class_counts(tr) == {"car": 1, "person": 1}


def test_draw_tracks_empty_is_identity() -> None:
    img = _grey()
    assert np.array_equal(draw_tracks(img, Tracks.empty()), img)


def test_hud_darkens_bottom_left() -> None:
    out = draw_hud(_grey(), ["t=1.0s", "car:1"])
    assert out[H - 2, 2].max() < 100 and (out[2, 2] == 100).all()


def test_annotate_rejects_bad_image() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        annotate(np.zeros((10, 10), np.uint8), zones=[], tracks=Tracks.empty())


def test_heatmap_hot_cell_is_bright_and_has_colour_bar(tmp_path: Path) -> None:
    grid = np.zeros((4, 8))
    grid[3, 7] = 10.0
    grid[0, 0] = 1.0
    out = render_heatmap(grid, _grey())
    assert out.shape[0] == H and out.shape[1] > W  # colour bar appended on the right
    hot = out[int(H * 7 / 8), int(W * 15 / 16)].astype(int)
    # inferno's top is pale yellow (BGR: blue low, green and red high), not JET's red.
    assert hot[2] > 200 and hot[1] > 150 and hot[0] < hot[1] - 50, hot  # JET would be red: green low
    assert (out[H // 2, W // 2] == 75).all()  # nobody stood there: the dimmed frame, no tint
    p = save_png(tmp_path / "h.png", out)
    assert p.stat().st_size > 1000


def test_heatmap_is_smooth_not_blocky() -> None:
    """Between two cells the colour changes gradually: no step at the cell border."""
    grid = np.zeros((9, 16))
    grid[4, 8] = 30.0
    grid[4, 7] = 10.0
    _, opacity, top = colourise(grid, 640, 360)
    assert top == pytest.approx(30.0)
    assert opacity[10, 10] == 0.0 and opacity[180, 340] > 0.5
    out = render_heatmap(grid, size=(640, 360))[:, :640]
    row = out[int(4.5 * 40), :, :].astype(int)  # through the two cells' centres
    steps = np.abs(np.diff(row, axis=0)).max(axis=1)
    # Blocky JET cells jumped by > 100 levels at a cell border; smooth upsampling moves < 25 a pixel.
    assert steps.max() < 25, steps.max()
    assert row[:, 2].max() > 150  # and the hot spot is really there


def test_heatmap_legend_is_in_seconds_of_presence() -> None:
    grid = np.zeros((9, 16))
    grid[4, 8] = 64.0
    out = render_heatmap(grid, size=(640, 360))
    bar = out[:, 640:]
    assert bar.shape[1] > 150 and (bar > 200).mean() > 0.5  # a white legend panel with text
    from edge.tools import heatmap

    labels: list[str] = []
    real = heatmap.cv2.putText

    def spy(img: np.ndarray, text: str, *a: object, **k: object) -> None:
        labels.append(text)
        real(img, text, *a, **k)  # type: ignore[call-overload]

    heatmap.cv2.putText = spy  # type: ignore[assignment]
    try:
        render_heatmap(grid, size=(640, 360), label_s=139.2)
    finally:
        heatmap.cv2.putText = real  # type: ignore[assignment]
    assert "seconds of presence" in labels and "64 s" in labels and "16 s" in labels  # square-root ticks
    assert "16 x 9 cells" in labels and any("139 s" in t for t in labels)
    assert not any("sqrt" == t for t in labels)


def test_colourise_rejects_bad_grid() -> None:
    with pytest.raises(ValueError, match="2-D"):
        colourise(np.zeros(5), 10, 10)
    with pytest.raises(ValueError, match="background image or size"):
        render_heatmap(np.ones((2, 2)))


def test_integer_ticks_have_no_half_objects() -> None:
    assert nice_ticks(0, 1, 4, integer=True) == [0, 1]
    assert nice_ticks(0, 3, 4, integer=True) == [0, 1, 2, 3]
    assert all(float(t).is_integer() for t in nice_ticks(0, 2, 5, integer=True))


@pytest.mark.parametrize(
    ("value", "step", "text"), [(0.001, 0.001, "0.001"), (0.002, 0.001, "0.002"), (0.05, 0.05, "0.05"), (5.0, 1.0, "5")]
)
def test_tick_label_keeps_the_decimals_the_step_needs(value: float, step: float, text: str) -> None:
    assert tick_label(value, step) == text


@pytest.mark.parametrize(
    ("lo", "hi", "expect"),
    [
        (0, 10, [0, 2, 4, 6, 8, 10]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 137, [0, 50, 100]),
        (3, 3, [3, 3.2, 3.4, 3.6, 3.8, 4]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expect: list[float]) -> None:
    got = nice_ticks(lo, hi, 5 if hi != 137 else 3)
    assert got == pytest.approx(expect)


def test_zone_series_rejects_nan_and_orders_metrics() -> None:
    s = ZoneSeries()
    s.add(0.0, "a", "occupancy", 0.5)
    s.add(0.0, "a", "count", 2)
    s.add(1.0, "b", "count", math.nan)
    s.add(1.0, "b", "zeta", 1)
    assert s.metrics() == ["count", "occupancy", "zeta"]
    assert len(s) == 3
    assert s.series("count", "b")[0].size == 0


def test_timeseries_plot_draws_each_zone_in_its_colour() -> None:
    s = ZoneSeries()
    for t in range(0, 60):
        s.add(float(t), "bay", "count", t % 10)
        s.add(float(t), "kerb", "count", 2)
        s.add(float(t), "plaza", "density", 0.5)
    img = render_timeseries(s, width=800, panel_height=160)
    assert img.shape[1] == 800 and img.shape[0] > 2 * 160

    def has(colour: tuple[int, int, int]) -> int:
        return int(np.all(img == np.array(colour, np.uint8), axis=2).sum())

    # Three zones -> three palette colours present (legend swatch + line), and more than a swatch each.
    for c in PALETTE[:3]:
        assert has(c) > 22 * 10 + 50
    assert has(PALETTE[3]) == 0


def test_timeseries_plot_empty_and_too_small() -> None:
    img = render_timeseries(ZoneSeries())
    assert img.ndim == 3
    with pytest.raises(ValueError, match="too small"):
        render_timeseries(ZoneSeries(), width=100)


def test_a_no_parking_zones_lanes_are_drawn() -> None:
    from edge.config.zones import ZoneConfig
    from edge.tools.draw import draw_zones

    z = ZoneConfig.model_validate(
        {"id": "k", "kind": "no_parking", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]],
         "lanes": [[[0.0, 0.4], [1.0, 0.4], [1.0, 0.6], [0.0, 0.6]]]}
    )
    with_lane = draw_zones(np.zeros((100, 200, 3), np.uint8), [z])
    without = draw_zones(np.zeros((100, 200, 3), np.uint8), [z.model_copy(update={"lanes": []})])
    changed = np.argwhere((with_lane != without).any(axis=2))
    assert len(changed) > 100 and {39, 40} & set(changed[:, 0].tolist())  # the lane's top edge at y = 40
