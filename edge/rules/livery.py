"""Operator attribution by livery: the dominant colour of a bike crop (numpy HSV, no cv2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edge.config.rules import OperatorConfig


class LiveryClassifier(Protocol):
    """Names the operator of a bike crop (BGR), or None. A vendor ONNX classifier can implement this."""

    def classify(self, crop_bgr: np.ndarray) -> str | None: ...


def bgr_to_hsv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees 0..360, saturation and value 0..1, for a uint8 BGR array."""
    f = img.astype(np.float32) / 255.0
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    h = np.where(d > 0, h * 60.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx


class ColourLivery:
    """The operator whose hue range covers the largest share of saturated pixels of the crop."""

    def __init__(self, operators: Sequence[OperatorConfig], min_fraction: float, max_side: int = 48) -> None:
        self.operators = list(operators)
        self.min_fraction = min_fraction
        self.max_side = max_side

    def classify(self, crop_bgr: np.ndarray) -> str | None:
        if crop_bgr.size == 0 or not self.operators:
            return None
        h, w = crop_bgr.shape[:2]
        step = max(1, int(np.ceil(max(h, w) / self.max_side)))
        small = crop_bgr[::step, ::step]
        hue, sat, val = bgr_to_hsv(small)
        hue, sat, val = hue.reshape(-1), sat.reshape(-1), val.reshape(-1)
        lo = np.array([o.hue_deg[0] for o in self.operators])[:, None]
        hi = np.array([o.hue_deg[1] for o in self.operators])[:, None]
        in_range = np.where(lo <= hi, (hue >= lo) & (hue <= hi), (hue >= lo) | (hue <= hi))
        ok = (
            in_range
            & (sat[None, :] >= np.array([o.min_saturation for o in self.operators])[:, None])
            & (val[None, :] >= np.array([o.min_value for o in self.operators])[:, None])
        )
        share = ok.mean(axis=1)
        best = int(np.argmax(share))
        return self.operators[best].name if share[best] >= self.min_fraction else None
