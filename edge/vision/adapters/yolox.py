"""YOLOX-style raw grid: one output [1, N, 5+C], rows [dx, dy, log_w, log_h, obj, cls...].

``xy = (dxy + cell) * stride``, ``wh = exp(log_wh) * stride``, score = obj * cls (``multi_label``:
every class above threshold, as YOLOX's class-aware NMS; else the best class per cell). ``sigmoid: true`` when obj/cls are logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, make_grid, shape_text, sigmoid
from edge.vision.runtime import TensorInfo


class YoloxDecoder(Decoder):
    family = "yolox"
    expects = "[1,N,5+C] with N = grid cells over all strides"
    defaults: ClassVar[dict[str, Any]] = {"strides": [8, 16, 32], "sigmoid": False, "multi_label": True}

    def validate_params(self) -> None:
        self._cells, self._stride = make_grid(self.input_w, self.input_h, self._strides())
        self.n = int(self._cells.shape[0])

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        if len(outputs) != 1:
            return [f"the yolox decoder expects 1 output [1,{self.n},5+C], the graph has {len(outputs)}"]
        shp = outputs[0].shape
        want = f"[1,{self.n},5+C] (N={self.n} cells for input {self.input_w}x{self.input_h}, strides {self.params['strides']})"
        if len(shp) != 3 or shp[0] not in (1, None) or shp[1] not in (self.n, None) or (shp[2] or 6) < 6:
            return [f"output 0 has shape {shape_text(shp)}; the yolox decoder expects {want}"]
        self.num_classes = None if shp[2] is None else shp[2] - 5
        return []

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        out = outputs[0]
        self._runtime_shape(0, out, (1, self.n, None))
        pred = out[0]
        obj = pred[:, 4]
        if self.params["sigmoid"]:
            obj = sigmoid(obj)
        cand = np.nonzero(obj >= ctx.score_floor)[0]
        p = pred[cand]
        cls = sigmoid(p[:, 5:]) if self.params["sigmoid"] else p[:, 5:]
        scores = cls * obj[cand, None]
        if self.params["multi_label"]:
            a, c = np.nonzero(scores >= ctx.score_floor)
        else:
            best = scores.argmax(1)
            a = np.nonzero(scores[np.arange(scores.shape[0]), best] >= ctx.score_floor)[0]
            c = best[a]
        if a.size == 0:
            return RawDetections.empty("input")
        rows = p[a]
        s = self._stride[cand[a], None]
        xy = (rows[:, :2] + self._cells[cand[a]]) * s
        half = np.exp(rows[:, 2:4]) * s * 0.5
        xyxy = np.concatenate([xy - half, xy + half], 1).astype(np.float32)
        return RawDetections(xyxy, scores[a, c].astype(np.float32), c.astype(np.int32), "input")
