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
    format_state,
    track_label,
)
from edge.tools.heatmap import colourise, render_heatmap, save_png
from edge.tools.plots import PALETTE, ZoneSeries, nice_ticks, render_timeseries
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


def test_draw_tracks_boxes_labels_and_highlight() -> None:
    tr = _tracks([(100, 100, 200, 250, 3, 12, True, 34.0), (400, 50, 450, 200, 0, 4, False, 0.0)])
    out = draw_tracks(_grey(), tr, highlight=[12])
    # The parked car (class 3) box edge in the car colour, the highlight frame in red outside it.
    assert tuple(int(c) for c in out[180, 100]) == (0, 140, 255)
    assert tuple(int(c) for c in out[180, 97]) == (0, 0, 255)
    assert tuple(int(c) for c in out[150, 400]) == (60, 220, 60)  # person box in green
    assert track_label(tr, 0) == "#12 car P 34s"
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


def test_heatmap_hot_cell_is_red_and_has_colour_bar(tmp_path: Path) -> None:
    grid = np.zeros((4, 8))
    grid[3, 7] = 10.0
    grid[0, 0] = 1.0
    out = render_heatmap(grid, _grey(), alpha=1.0)
    assert out.shape[0] == H and out.shape[1] > W  # colour bar appended on the right
    hot = out[int(H * 7 / 8), int(W * 15 / 16)].astype(int)
    assert hot[2] > 100 and hot[0] < 60  # red-ish (BGR)
    assert (out[H // 2, W // 2] == 60).all()  # empty cells show the dimmed frame
    p = save_png(tmp_path / "h.png", out)
    assert p.stat().st_size > 1000


def test_colourise_rejects_bad_grid() -> None:
    with pytest.raises(ValueError, match="2-D"):
        colourise(np.zeros(5), 10, 10)
    with pytest.raises(ValueError, match="background image or size"):
        render_heatmap(np.ones((2, 2)))


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
