"""Draw detections on an image and write it as PNG (for ``edge-agent detect --annotate``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.classes import class_name
from edge.types import Detections

_COLOURS = {  # BGR per canonical class id; other = grey
    0: (60, 180, 255),
    1: (80, 220, 80),
    2: (200, 200, 40),
    3: (255, 120, 40),
    4: (200, 60, 200),
    5: (60, 60, 230),
}


def draw(image: np.ndarray, det: Detections, labels: list[str]) -> np.ndarray:
    out = image.copy()
    for box, score, cid, lid in zip(det.xyxy, det.confidence, det.class_id, det.label_id, strict=True):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        colour = _COLOURS.get(int(cid), (160, 160, 160))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        text = f"{labels[int(lid)]} ({class_name(int(cid))}) {float(score):.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + 4, y1)
        cv2.rectangle(out, (x1, ty - th - 4), (x1 + tw + 4, ty), colour, -1)
        cv2.putText(out, text, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: cannot write the annotated image")
