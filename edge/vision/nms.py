"""Greedy NMS (class-aware by offset), vectorised; IoU itself is ``edge.geometry.iou_matrix``."""

from __future__ import annotations

import numpy as np

from edge.geometry import iou_matrix


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
    rest = np.arange(n)
    kept: list[int] = []
    while rest.size:
        i = int(rest[0])
        kept.append(i)
        rest = rest[1:]
        rest = rest[iou_matrix(boxes[i : i + 1], boxes[rest])[0] <= iou]
    return order[np.asarray(kept, np.int64)]
