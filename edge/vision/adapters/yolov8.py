"""YOLOv8/YOLO11-style head: one output [1, 4+C, N], rows cx, cy, w, h (input px) then class scores.

No objectness; the best class of each cell is kept (as Ultralytics does), then NMS.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, grid_sizes, shape_text, sigmoid
from edge.vision.runtime import TensorInfo


class Yolov8Decoder(Decoder):
    family = "yolov8"
    expects = "[1,4+C,N]"
    defaults: ClassVar[dict[str, Any]] = {"strides": [8, 16, 32], "sigmoid": False}

    def validate_params(self) -> None:
        self.n = sum(gw * gh for gw, gh in grid_sizes(self.input_w, self.input_h, self._strides()))

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        if len(outputs) != 1:
            return [f"the yolov8 decoder expects 1 output [1,4+C,{self.n}], the graph has {len(outputs)}"]
        shp = outputs[0].shape
        if len(shp) != 3 or shp[0] not in (1, None) or shp[2] not in (self.n, None) or (shp[1] or 5) < 5:
            return [
                f"output 0 has shape {shape_text(shp)}; the yolov8 decoder expects [1,4+C,N] "
                f"(N={self.n} cells for input {self.input_w}x{self.input_h}, strides {self.params['strides']})"
            ]
        self.num_classes = None if shp[1] is None else shp[1] - 4
        return []

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        out = outputs[0]
        self._runtime_shape(0, out, (1, None, self.n))
        pred = out[0]
        cls = pred[4:]
        if self.params["sigmoid"]:
            cls = sigmoid(cls)
        label = cls.argmax(0)
        score = cls[label, np.arange(cls.shape[1])]
        keep = np.nonzero(score >= ctx.score_floor)[0]
        if keep.size == 0:
            return RawDetections.empty("input")
        b = pred[:4, keep].T
        half = b[:, 2:] * 0.5
        xyxy = np.concatenate([b[:, :2] - half, b[:, :2] + half], 1).astype(np.float32)
        return RawDetections(xyxy, score[keep].astype(np.float32), label[keep].astype(np.int32), "input")
