"""Evidence redaction in numpy: crop a vehicle and pixelate every person overlapping the crop, every
person the detector saw in the frame, confirmed as a track or not."""

from __future__ import annotations

import numpy as np

from edge.geometry import iou_matrix


def pixelate(region: np.ndarray, block_px: int) -> np.ndarray:
    """Block-average an HxWx3 region in place-compatible form (returns a new array)."""
    h, w = region.shape[:2]
    if h == 0 or w == 0:
        return region.copy()
    b = max(1, int(block_px))
    out = region.copy()
    hh, ww = (h // b) * b, (w // b) * b
    if hh and ww:
        blocks = out[:hh, :ww].reshape(hh // b, b, ww // b, b, -1).mean(axis=(1, 3))
        out[:hh, :ww] = np.repeat(np.repeat(blocks, b, axis=0), b, axis=1).astype(out.dtype)
    if hh < h:
        out[hh:, :] = out[hh:, :].reshape(-1, out.shape[2]).mean(axis=0).astype(out.dtype)
    if ww < w:
        out[:, ww:] = out[:, ww:].reshape(-1, out.shape[2]).mean(axis=0).astype(out.dtype)
    return out


def redacted_crop(
    image: np.ndarray, box: np.ndarray, person_boxes: np.ndarray, *, margin: float = 0.1, block_px: int = 12
) -> np.ndarray:
    """Crop ``box`` (xyxy px, widened by ``margin``) from ``image`` with every person box pixelated.

    People are pixelated in the full frame coordinates first, so a person only partly inside the
    crop is still unrecognisable.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
    cx2, cy2 = int(min(w, np.ceil(x2 + mx))), int(min(h, np.ceil(y2 + my)))
    crop = image[cy1:cy2, cx1:cx2].copy()
    for px1, py1, px2, py2 in np.asarray(person_boxes, np.float64).reshape(-1, 4):
        ax1, ay1 = int(max(cx1, np.floor(px1))), int(max(cy1, np.floor(py1)))
        ax2, ay2 = int(min(cx2, np.ceil(px2))), int(min(cy2, np.ceil(py2)))
        if ax2 <= ax1 or ay2 <= ay1:
            continue
        sub = crop[ay1 - cy1 : ay2 - cy1, ax1 - cx1 : ax2 - cx1]
        crop[ay1 - cy1 : ay2 - cy1, ax1 - cx1 : ax2 - cx1] = pixelate(sub, block_px)
    return crop


def person_boxes(tracked: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Every person in a frame, confirmed as a track or not: the tracks' boxes plus each detection
    that overlaps none of them (IoU < 0.5), so a person still being confirmed is pixelated too."""
    tracked = np.asarray(tracked, np.float32).reshape(-1, 4)
    detected = np.asarray(detected, np.float32).reshape(-1, 4)
    if detected.shape[0] and tracked.shape[0]:
        detected = detected[iou_matrix(detected, tracked).max(axis=1) < 0.5]
    return np.concatenate([tracked, detected])
