"""SSD / MobileNet-style heads: normalised boxes [1,N,4] and separate class scores [1,N,C].

``box_order`` yxyx (TensorFlow) or xyxy; ``background: true`` when score column 0 is the
background class (dropped; labels then start at column 1); ``sigmoid`` / ``softmax`` when the
scores are logits. The best class per box is kept, then NMS.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, shape_text, sigmoid
from edge.vision.runtime import TensorInfo


class SsdDecoder(Decoder):
    family = "ssd"
    expects = "boxes [1,N,4] (normalised) and scores [1,N,C]"
    defaults: ClassVar[dict[str, Any]] = {"box_order": "xyxy", "background": False, "activation": "none"}

    def validate_params(self) -> None:
        if self.params["box_order"] not in ("xyxy", "yxyx"):
            raise ModelError(f"decoder.params.box_order: {self.params['box_order']!r}; use xyxy or yxyx")
        if self.params["activation"] not in ("none", "sigmoid", "softmax"):
            raise ModelError(
                f"decoder.params.activation: {self.params['activation']!r}; use none, sigmoid or softmax"
            )
        self.bi, self.si = 0, 1

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        shapes = [o.shape for o in outputs]
        desc = ", ".join(f"output {i} {shape_text(s)}" for i, s in enumerate(shapes))
        if len(shapes) != 2 or any(len(s) != 3 for s in shapes):
            return [f"the graph has {desc}; the ssd decoder expects {self.expects}"]
        box = [i for i, s in enumerate(shapes) if s[2] == 4]
        if not box:
            return [f"the graph has {desc}; the ssd decoder expects {self.expects} (no output ends in 4)"]
        self.bi = box[0]
        self.si = 1 - self.bi
        if shapes[0][1] is not None and shapes[1][1] is not None and shapes[0][1] != shapes[1][1]:
            return [f"the graph has {desc}; boxes and scores must have the same N"]
        c = shapes[self.si][2]
        self.num_classes = None if c is None else c - (1 if self.params["background"] else 0)
        return []

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        boxes = outputs[self.bi]
        self._runtime_shape(self.bi, boxes, (1, None, 4))
        scores = outputs[self.si][0]
        act = self.params["activation"]
        if act == "sigmoid":
            scores = sigmoid(scores)
        elif act == "softmax":
            e = np.exp(scores - scores.max(1, keepdims=True))
            scores = e / e.sum(1, keepdims=True)
        if self.params["background"]:
            scores = scores[:, 1:]
        label = scores.argmax(1)
        score = scores[np.arange(scores.shape[0]), label]
        keep = np.nonzero(score >= ctx.score_floor)[0]
        b = boxes[0][keep].astype(np.float32)
        if self.params["box_order"] == "yxyx":
            b = b[:, [1, 0, 3, 2]]
        b = b * np.array([ctx.input_w, ctx.input_h, ctx.input_w, ctx.input_h], np.float32)
        return RawDetections(b, score[keep].astype(np.float32), label[keep].astype(np.int32), "input")
