"""Presence heat map: where objects stood, as seconds of presence per cell, drawn over a frame.

The grid is the feature stage's own (``edge.features.OccupancyGrid.total``, read through
``CameraAnalytics.occupancy_total``): the picture divided into cells (16 x 9 by default), each
cell adding the seconds any object of the grid's classes stood with its ground point in it, summed
over the replay. ``render_heatmap`` colours it with a perceptual colour map (inferno: dark = little,
bright yellow = longest; readable in grey and by colour-blind readers, unlike JET), upsampled
smoothly between cell centres rather than as blocks, and blends it over the frame (faint where
little time was spent) with a colour bar labelled in seconds. cv2 only: this is the plain-PNG path
that works without matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLORMAP = cv2.COLORMAP_INFERNO


def smooth_upsample(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """The coarse grid at ``width`` x ``height``, smooth: linear between cell centres (no overshoot,
    so no negative seconds and no dark rings), then a Gaussian of a third of a cell to round off the
    cells' square outline. The brightest point keeps the busiest cell's value."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"occupancy grid must be a non-empty 2-D array, got shape {g.shape}")
    g = np.nan_to_num(np.clip(g, 0.0, None))
    big = cv2.resize(g.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    sx, sy = width / g.shape[1] / 3.0, height / g.shape[0] / 3.0
    big = cv2.GaussianBlur(big, (0, 0), sigmaX=max(sx, 0.5), sigmaY=max(sy, 0.5), borderType=cv2.BORDER_REPLICATE)
    out = np.clip(big.astype(np.float64), 0.0, None)
    # The blur lowers a lone peak; scale back so the brightest point is the busiest cell's seconds.
    top = float(out.max())
    return out * (float(g.max()) / top) if top > 0 else out


def colourise(
    grid: np.ndarray, width: int, height: int, *, vmax: float | None = None, sqrt: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    """Grid -> (HxWx3 BGR colours, HxW opacity 0..1, the value at the top of the scale).

    ``sqrt`` maps the square root of the fraction of the maximum to the colour, so a short visit
    still shows next to a spot where someone stood for minutes. Opacity grows with the value: cells
    nobody stood in stay transparent."""
    big = smooth_upsample(grid, width, height)
    top = float(vmax) if vmax is not None and vmax > 0 else float(big.max())
    norm = np.clip(big / top, 0.0, 1.0) if top > 0 else np.zeros_like(big)
    if sqrt:
        norm = np.sqrt(norm)
    u8 = np.clip(norm * 255.0, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(u8, COLORMAP)
    opacity = np.clip(norm * 1.6, 0.0, 0.85)
    opacity[big <= top * 1e-3] = 0.0
    return colour, opacity, top


def _colour_bar(height: int, top: float, sqrt: bool, cells: tuple[int, int]) -> np.ndarray:
    """A vertical ramp with tick labels in seconds and the legend in words."""
    bar_w, pad = 18, 190
    y0, y1 = 56, height - 60
    n = max(y1 - y0, 2)
    levels = np.linspace(255, 0, n).astype(np.uint8).reshape(-1, 1)
    ramp = cv2.applyColorMap(np.repeat(levels, bar_w, axis=1), COLORMAP)
    panel = np.full((height, bar_w + pad, 3), 255, np.uint8)
    panel[y0 : y0 + n, 8 : 8 + bar_w] = ramp
    font = cv2.FONT_HERSHEY_SIMPLEX
    black = (20, 20, 20)
    cv2.putText(panel, "seconds of presence", (4, 18), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(panel, "per cell, summed over", (4, 34), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(panel, "the whole recording", (4, 50), font, 0.45, black, 1, cv2.LINE_AA)
    for frac in (1.0, 0.75, 0.5, 0.25, 0.0):
        value = top * (frac * frac if sqrt else frac)
        y = y0 + round((1.0 - frac) * (n - 1))
        cv2.line(panel, (8 + bar_w, y), (14 + bar_w, y), black, 1)
        cv2.putText(panel, f"{value:.3g} s", (18 + bar_w, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    notes = [f"{cells[0]} x {cells[1]} cells", "brighter = longer"]
    if sqrt:
        notes.append("square-root scale")
    for k, text in enumerate(notes):
        cv2.putText(panel, text, (4, height - 42 + 16 * k), font, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    return panel


def render_heatmap(
    grid: np.ndarray,
    background: np.ndarray | None = None,
    *,
    size: tuple[int, int] | None = None,
    alpha: float = 1.0,
    title: str = "where objects stood",
    sqrt: bool = True,
    label_s: float | None = None,
) -> np.ndarray:
    """The grid coloured and blended over ``background`` (or on black at ``size`` = (w, h)), with
    a colour bar on the right labelled in seconds of presence per cell. ``alpha`` scales the
    overlay's opacity; ``label_s`` (the recording's length) goes into the title."""
    if background is not None:
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
            raise ValueError(f"background must be HxWx3 uint8, got {background.shape} {background.dtype}")
        h, w = background.shape[:2]
        base = background.astype(np.float32) * 0.75
    elif size is not None:
        w, h = size
        base = np.zeros((h, w, 3), np.float32)
    else:
        raise ValueError("render_heatmap needs a background image or size=(width, height)")
    colour, opacity, top = colourise(grid, w, h, sqrt=sqrt)
    a = (np.clip(opacity * alpha, 0.0, 1.0))[:, :, None]
    out = (base * (1.0 - a) + colour.astype(np.float32) * a).round().astype(np.uint8)
    text = title + (f" ({label_s:.0f} s)" if label_s else "")
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    cv2.rectangle(out, (0, 0), (tw + 14, th + 14), (30, 30, 30), -1)
    cv2.putText(out, text, (7, th + 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    g = np.asarray(grid)
    return np.concatenate([out, _colour_bar(h, top, sqrt, (g.shape[1], g.shape[0]))], axis=1)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a PNG, raising OSError naming the path if cv2 cannot."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), image):
        raise OSError(f"could not write {p}; check the directory exists and is writable")
    return p
