"""Per-zone time-series plots drawn with cv2 (no matplotlib on a Pi).

``ZoneSeries`` collects (t, value) samples per metric and zone; ``render_timeseries``
draws one panel per metric (count, density, occupancy, ...) with a line per zone,
labelled axes with ticks, and a colour legend naming the zones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Colour = tuple[int, int, int]
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Distinct BGR colours for zone lines (tab10-like).
PALETTE: tuple[Colour, ...] = (
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
)
# Metrics drawn first, in this order; others follow alphabetically.
METRIC_ORDER = ("count", "count_smoothed", "density", "occupancy")
METRIC_TITLES = {
    "count": "objects counted in the zone",
    "count_smoothed": "smoothed count (what density is computed from)",
    "density": "crowd density (persons per m2)",
    "occupancy": "bike bay occupancy (bikes / capacity)",
}
INTEGER_METRICS = frozenset({"count"})


class ZoneSeries:
    """Samples per (metric, zone): ``add(t, zone, metric, value)``; NaN/inf values are rejected."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, tuple[list[float], list[float]]]] = {}

    def add(self, t: float, zone_id: str, metric: str, value: float) -> None:
        v = float(value)
        if not math.isfinite(v) or not math.isfinite(t):
            return
        ts, vs = self._data.setdefault(metric, {}).setdefault(zone_id, ([], []))
        ts.append(float(t))
        vs.append(v)

    def replace_last(self, zone_id: str, metric: str, value: float) -> None:
        """Overwrite the most recent sample of (metric, zone); nothing when there is none."""
        _, vs = self._data.get(metric, {}).get(zone_id, ([], []))
        if vs and math.isfinite(value):
            vs[-1] = float(value)

    def metrics(self) -> list[str]:
        first = [m for m in METRIC_ORDER if m in self._data]
        return first + sorted(m for m in self._data if m not in METRIC_ORDER)

    def zones(self) -> list[str]:
        seen: dict[str, None] = {}
        for per_zone in self._data.values():
            for z in per_zone:
                seen.setdefault(z, None)
        return list(seen)

    def series(self, metric: str, zone_id: str) -> tuple[np.ndarray, np.ndarray]:
        ts, vs = self._data.get(metric, {}).get(zone_id, ([], []))
        return np.asarray(ts, np.float64), np.asarray(vs, np.float64)

    def __len__(self) -> int:
        return sum(len(ts) for per in self._data.values() for ts, _ in per.values())


def nice_ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k); with
    ``integer`` the step is a whole number (counts have no half objects)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tick range must be finite, got {lo}..{hi}")
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    if integer:
        step = max(step, 1.0)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    v = start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 10))
        v += step
    return ticks


def tick_label(v: float, step: float) -> str:
    """A tick value with the decimals its step needs: 0.001 stays 0.001 (never 0.00), 5 stays 5."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return f"{v:.{decimals}f}"


def _panel(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    title: str,
    lines: Sequence[tuple[np.ndarray, np.ndarray, Colour]],
    t_range: tuple[float, float],
    x_label: bool,
    integer: bool = False,
) -> None:
    x0, y0, x1, y1 = box
    left, bottom, top = x0 + 58, y1 - (34 if x_label else 18), y0 + 22
    right = x1 - 10
    cv2.putText(img, title, (left, y0 + 15), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    values = [v for _, v, _ in lines if v.size]
    vmax = max((float(v.max()) for v in values), default=1.0)
    vmin = min((float(v.min()) for v in values), default=0.0)
    lo, hi = min(0.0, vmin), max(vmax, 1e-9)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    yt = nice_ticks(lo, hi, 4, integer=integer)
    lo, hi = min(lo, yt[0]), max(hi, yt[-1])
    t0, t1 = t_range
    xt = nice_ticks(t0, t1, 6)

    def px(t: np.ndarray) -> np.ndarray:
        return left + (t - t0) / max(t1 - t0, 1e-9) * (right - left)

    def py(v: np.ndarray) -> np.ndarray:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    for tv in yt:
        y = int(py(np.array(tv)))
        cv2.line(img, (left, y), (right, y), (225, 225, 225), 1)
        label = tick_label(tv, yt[1] - yt[0] if len(yt) > 1 else 1.0)
        cv2.putText(img, label, (x0 + 4, y + 4), _FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    for tv in xt:
        if tv < t0 or tv > t1:
            continue
        x = int(px(np.array(tv)))
        cv2.line(img, (x, bottom), (x, bottom + 4), (0, 0, 0), 1)
        label = tick_label(tv, xt[1] - xt[0] if len(xt) > 1 else 1.0)
        cv2.putText(img, label, (x - 10, bottom + 16), _FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.line(img, (left, top), (left, bottom), (0, 0, 0), 1)
    cv2.line(img, (left, bottom), (right, bottom), (0, 0, 0), 1)
    if x_label:
        cv2.putText(
            img,
            "time into the recording (s)",
            ((left + right) // 2 - 90, y1 - 4),
            _FONT,
            0.42,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    for ts, vs, colour in lines:
        if ts.size == 0:
            continue
        pts = np.stack([px(ts), py(vs)], axis=1).round().astype(np.int32)
        if pts.shape[0] == 1:
            cv2.circle(img, (int(pts[0, 0]), int(pts[0, 1])), 3, colour, -1)
        else:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)


def render_timeseries(
    series: ZoneSeries, *, width: int = 960, panel_height: int = 180, title: str = ""
) -> np.ndarray:
    """One panel per metric, a line per zone, axes with ticks, and a legend of zone colours."""
    if width < 320 or panel_height < 80:
        raise ValueError(
            f"plot too small: width >= 320 and panel_height >= 80 needed, got {width}x{panel_height}"
        )
    metrics = series.metrics()
    zones = series.zones()
    legend_h = 28 + 20 * ((len(zones) + 3) // 4 if zones else 1)
    n = max(len(metrics), 1)
    img = np.full((legend_h + n * panel_height, width, 3), 255, np.uint8)
    cv2.putText(img, title or "per-zone time series", (10, 20), _FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    colours = {z: PALETTE[i % len(PALETTE)] for i, z in enumerate(zones)}
    for i, z in enumerate(zones):
        x = 10 + (i % 4) * (width // 4)
        y = 40 + 20 * (i // 4)
        cv2.rectangle(img, (x, y - 10), (x + 22, y), colours[z], -1)
        cv2.putText(img, z, (x + 28, y), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if not zones:
        cv2.putText(img, "(no samples)", (10, 44), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    all_t = [series.series(m, z)[0] for m in metrics for z in zones]
    nonempty = [a for a in all_t if a.size]
    t0 = min((float(a.min()) for a in nonempty), default=0.0)
    t1 = max((float(a.max()) for a in nonempty), default=1.0)
    if t1 <= t0:
        t1 = t0 + 1.0
    for k, metric in enumerate(metrics):
        y0 = legend_h + k * panel_height
        lines = [(*series.series(metric, z), colours[z]) for z in zones]
        label = METRIC_TITLES.get(metric, metric)
        _panel(
            img,
            (0, y0, width, y0 + panel_height),
            label,
            lines,
            (t0, t1),
            x_label=k == len(metrics) - 1,
            integer=metric in INTEGER_METRICS,
        )
    return img
