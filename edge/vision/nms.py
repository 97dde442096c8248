"""Vectorised box utilities: IoU, greedy NMS (class-aware by offset), point-in-polygon."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4), xyxy."""
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    area_a = np.maximum(ax2 - ax1, 0) * np.maximum(ay2 - ay1, 0)
    area_b = np.maximum(bx2 - bx1, 0) * np.maximum(by2 - by1, 0)
    union = area_a + area_b - inter
    return inter / np.maximum(union, 1e-9)


def nms(xyxy: np.ndarray, score: np.ndarray, iou: float, labels: np.ndarray | None = None) -> np.ndarray:
    """Indices kept by greedy NMS, best first. With ``labels`` boxes only suppress their own label.

    Up to a few hundred candidates (the usual case after the score threshold) the IoU matrix is
    computed once and the greedy pass only ORs rows of it; beyond that, row by row.
    """
    n = xyxy.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    boxes = xyxy.astype(np.float32)
    if labels is not None:
        span = float(boxes.max() - min(0.0, float(boxes.min()))) + 1.0
        boxes = boxes + (labels.astype(np.float32) * span)[:, None]
    order = np.argsort(-score, kind="stable")
    boxes = boxes[order]
    if n <= 512:
        over = iou_matrix(boxes, boxes) > iou
        alive = np.ones(n, bool)
        keep: list[int] = []
        i = 0
        while True:  # one iteration per kept box
            keep.append(i)
            alive &= ~over[i]
            alive[i] = False
            if not alive.any():
                break
            i = int(alive.argmax())
        return order[np.asarray(keep, np.int64)]
    x1, y1, x2, y2 = boxes.T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    rest = np.arange(n)
    kept: list[int] = []
    while rest.size:
        i = int(rest[0])
        kept.append(i)
        rest = rest[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        rest = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou]
    return order[np.asarray(kept, np.int64)]


def points_in_polygon(points: np.ndarray, polygon: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Boolean (N,) for points (N,2) inside ``polygon`` (even-odd rule), vectorised over points."""
    poly = np.asarray(polygon, np.float64)
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(points.shape[0], bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < xint)
        xj, yj = xi, yi
    return inside
