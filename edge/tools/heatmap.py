"""Occupancy heat map: a coarse grid of "how long was something here" drawn over a frame.

The grid is the feature stage's own (``edge.features.OccupancyGrid``: object-seconds per cell,
the numbers the box reports); ``render_heatmap`` colours any non-negative 2-D grid (JET: blue =
rarely, red = most) and blends it over the frame with a labelled colour bar.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def colourise(
    grid: np.ndarray, width: int, height: int, *, vmax: float | None = None, sqrt: bool = False
) -> tuple[np.ndarray, float]:
    """Grid -> (HxWx3 BGR JET image, the value mapped to red). Zero cells stay black.
    ``sqrt`` maps the square root of the fraction of the maximum to the colour."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"occupancy grid must be a non-empty 2-D array, got shape {g.shape}")
    g = np.nan_to_num(np.clip(g, 0.0, None))
    top = float(vmax) if vmax is not None and vmax > 0 else float(g.max())
    norm = np.clip(g / top, 0.0, 1.0) if top > 0 else np.zeros_like(g)
    if sqrt:  # brief presence stays visible next to a spot where someone stood for minutes
        norm = np.sqrt(norm)
    u8 = np.clip(norm * 255.0, 0, 255).astype(np.uint8)
    big = cv2.resize(u8, (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(big, cv2.COLORMAP_JET)
    colour[big == 0] = 0
    return colour, top


def _colour_bar(height: int, top: float, unit: str, sqrt: bool) -> np.ndarray:
    bar_w, pad = 18, 64
    levels = np.linspace(255, 0, max(height - 40, 2)).astype(np.uint8).reshape(-1, 1)
    ramp = cv2.applyColorMap(np.repeat(levels, bar_w, axis=1), cv2.COLORMAP_JET)
    panel = np.full((height, bar_w + pad, 3), 30, np.uint8)
    panel[20 : 20 + ramp.shape[0], 4 : 4 + bar_w] = ramp
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(panel, f"{top:.3g}", (bar_w + 8, 28), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(panel, "0", (bar_w + 8, height - 20), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    if sqrt:
        mid = 20 + int((height - 40) * 0.5)
        cv2.putText(panel, f"{top / 4:.3g}", (bar_w + 8, mid + 4), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(panel, "sqrt", (2, height - 4), font, 0.35, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(panel, unit, (2, 14), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def render_heatmap(
    grid: np.ndarray,
    background: np.ndarray | None = None,
    *,
    size: tuple[int, int] | None = None,
    alpha: float = 0.55,
    unit: str = "s",
    title: str = "occupancy",
    sqrt: bool = True,
) -> np.ndarray:
    """The grid coloured and blended over ``background`` (or on black at ``size`` = (w, h)),
    with a colour bar on the right labelled 0..max ``unit`` (square-root scale unless ``sqrt=False``)."""
    if background is not None:
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
            raise ValueError(f"background must be HxWx3 uint8, got {background.shape} {background.dtype}")
        h, w = background.shape[:2]
        base = (background.astype(np.float32) * 0.6).astype(np.uint8)
    elif size is not None:
        w, h = size
        base = np.zeros((h, w, 3), np.uint8)
    else:
        raise ValueError("render_heatmap needs a background image or size=(width, height)")
    colour, top = colourise(grid, w, h, sqrt=sqrt)
    hot = colour.any(axis=2)
    out = base.copy()
    blend = cv2.addWeighted(base, 1.0 - alpha, colour, alpha, 0.0)
    out[hot] = blend[hot]
    cv2.putText(out, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([out, _colour_bar(h, top, unit, sqrt)], axis=1)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a PNG, raising OSError naming the path if cv2 cannot."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), image):
        raise OSError(f"could not write {p}; check the directory exists and is writable")
    return p
