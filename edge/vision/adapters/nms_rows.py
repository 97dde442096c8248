"""NMS inside the graph (PaddleDetection, TensorRT-style exports): rows [class, score, x1, y1, x2, y2].

Output 0 is [K,6] or [1,K,6]; an optional second output holds the valid row count K. Rows with a
negative class are padding. ``box_space``: original, input or normalized.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, shape_text
from edge.vision.runtime import TensorInfo


class NmsRowsDecoder(Decoder):
    family = "nms_rows"
    expects = "[K,6] rows [class, score, x1, y1, x2, y2] (+ optional count [1])"
    defaults: ClassVar[dict[str, Any]] = {"box_space": "original"}

    def validate_params(self) -> None:
        if self.params["box_space"] not in ("original", "input", "normalized"):
            raise ModelError(
                f"decoder.params.box_space: {self.params['box_space']!r}; use original, input or normalized"
            )

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        if not outputs or len(outputs) > 2:
            return [f"the nms_rows decoder expects {self.expects}; the graph has {len(outputs)} outputs"]
        shp = outputs[0].shape
        if not (len(shp) in (2, 3) and shp[-1] == 6 and (len(shp) == 2 or shp[0] in (1, None))):
            return [f"output 0 has shape {shape_text(shp)}; the nms_rows decoder expects {self.expects}"]
        if len(outputs) == 2 and (outputs[1].dtype.startswith("float") or len(outputs[1].shape) > 1):
            return [
                f"output 1 has shape {shape_text(outputs[1].shape)} {outputs[1].dtype}; expected an int count [1]"
            ]
        self.num_classes = None  # not visible in the shapes; checked on real outputs
        return []

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        rows = outputs[0].reshape(-1, outputs[0].shape[-1])
        if rows.shape[1] != 6:
            raise ModelError(
                f"output 0 has shape {shape_text(outputs[0].shape)}; the nms_rows decoder expects [K,6]"
            )
        if len(outputs) > 1 and outputs[1].size:
            rows = rows[: max(0, int(outputs[1].reshape(-1)[0]))]
        keep = (rows[:, 0] >= 0) & (rows[:, 1] >= ctx.score_floor)
        rows = rows[keep]
        b = rows[:, 2:6].astype(np.float32)
        space = self.params["box_space"]
        if space == "normalized":
            b = b * np.array([ctx.input_w, ctx.input_h, ctx.input_w, ctx.input_h], np.float32)
            space = "input"
        return RawDetections(b, rows[:, 1].astype(np.float32), rows[:, 0].astype(np.int32), space)
