"""Agreement between two detectors on the same frames (an int8 model and its float original).

Each detection of the reference is paired one-to-one with a detection of the other of the same
model label, highest IoU first; a pair with IoU >= ``IOU_MATCH`` is a match. The mean IoU is over
the reference's detections, 0 for an unpaired one, so it falls both with loose boxes and with
missed objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.classes import class_name
from edge.geometry import greedy_match, iou_matrix
from edge.types import Detections

IOU_MATCH = 0.7


@dataclass(frozen=True)
class Agreement:
    """How far the int8 model's detections agree with the float model's on the same frames."""

    frames: int
    float_detections: int
    int8_detections: int
    matched: int  # float detections paired with an int8 one of the same label at IoU >= 0.7
    iou_sum: float  # IoU of each float detection's pair (0 when unpaired), summed
    per_class: dict[str, tuple[int, int]]  # canonical class -> (float count, int8 count)

    @property
    def fraction(self) -> float | None:
        """Matched fraction of the float detections; None when the float model found nothing."""
        return self.matched / self.float_detections if self.float_detections else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.float_detections if self.float_detections else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "iou_match": IOU_MATCH,
            "float_detections": self.float_detections,
            "int8_detections": self.int8_detections,
            "matched": self.matched,
            "matched_fraction": self.fraction,
            "mean_iou": self.mean_iou,
            "per_class": {k: {"float": f, "int8": q} for k, (f, q) in self.per_class.items()},
        }


def pair_detections(a: Detections, b: Detections) -> list[tuple[int, int, float]]:
    """One-to-one pairs (i in a, j in b, IoU) of the same label, highest IoU first, IoU > 0."""
    if len(a.xyxy) == 0 or len(b.xyxy) == 0:
        return []
    iou = iou_matrix(a.xyxy, b.xyxy, dtype=np.float64)
    iou[a.label_id[:, None] != b.label_id[None, :]] = 0.0
    rows, cols = greedy_match(iou, np.nextafter(0.0, 1.0))  # highest IoU first, one-to-one, IoU > 0
    return [(int(i), int(j), float(iou[i, j])) for i, j in zip(rows, cols, strict=True)]


def measure_agreement(float_dets: Sequence[Detections], int8_dets: Sequence[Detections]) -> Agreement:
    matched = 0
    iou_sum = 0.0
    counts: dict[str, list[int]] = {}
    for f, q in zip(float_dets, int8_dets, strict=True):
        for side, dets in enumerate((f, q)):
            for cid in dets.class_id:
                counts.setdefault(class_name(int(cid)), [0, 0])[side] += 1
        for _, _, v in pair_detections(f, q):
            iou_sum += v
            matched += v >= IOU_MATCH
    return Agreement(
        frames=len(float_dets),
        float_detections=sum(len(d.xyxy) for d in float_dets),
        int8_detections=sum(len(d.xyxy) for d in int8_dets),
        matched=matched,
        iou_sum=iou_sum,
        per_class={k: (v[0], v[1]) for k, v in sorted(counts.items())},
    )
