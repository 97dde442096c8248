"""End-to-end DETR-style models (RT-DETR, D-FINE, DEIM): no NMS, just a threshold.

Either three outputs ``labels`` int [1,Q], ``boxes`` [1,Q,4], ``scores`` [1,Q] (post-processed
export), or two outputs ``logits`` [1,Q,C] and ``boxes`` [1,Q,4] (raw export; scores are the
sigmoid of the logits unless ``sigmoid: false``), or, with ``combined: true``, one output [1,Q,4+C]
(box then class scores, as Ultralytics exports RT-DETR; opt-in because a YOLOX grid
[1,N,5+C] has the same rank). Outputs are matched by dtype and shape. ``box_format`` xyxy|cxcywh,
``box_space`` original (pixels of the image, e.g. when the graph takes the original size),
input (model-input pixels) or normalized (0..1 of the model input).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, shape_text, sigmoid
from edge.vision.runtime import TensorInfo


class DetrDecoder(Decoder):
    family = "detr"
    expects = "labels [1,Q] + boxes [1,Q,4] + scores [1,Q], or logits [1,Q,C] + boxes [1,Q,4], or [1,Q,4+C]"
    defaults: ClassVar[dict[str, Any]] = {
        "box_format": "xyxy",
        "box_space": "original",
        "sigmoid": True,
        "combined": False,
    }

    def validate_params(self) -> None:
        if self.params["box_format"] not in ("xyxy", "cxcywh"):
            raise ModelError(f"decoder.params.box_format: {self.params['box_format']!r}; use xyxy or cxcywh")
        if self.params["box_space"] not in ("original", "input", "normalized"):
            raise ModelError(
                f"decoder.params.box_space: {self.params['box_space']!r}; use original, input or normalized"
            )
        self.idx: dict[str, int] = {}

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        idx: dict[str, int] = {}
        for i, o in enumerate(outputs):
            if len(o.shape) == 3 and o.shape[2] == 4 and "boxes" not in idx:
                idx["boxes"] = i
            elif len(o.shape) == 2 and o.dtype.startswith("int") and "labels" not in idx:
                idx["labels"] = i
            elif len(o.shape) == 2 and o.dtype.startswith("float") and "scores" not in idx:
                idx["scores"] = i
            elif len(o.shape) == 3 and o.dtype.startswith("float") and "logits" not in idx:
                idx["logits"] = i
        if (
            self.params["combined"]
            and len(outputs) == 1
            and len(outputs[0].shape) == 3
            and (outputs[0].shape[2] or 0) > 4
        ):
            self.idx = {"combined": 0}  # [1,Q,4+C]: box then class scores (Ultralytics RT-DETR)
            self.num_classes = int(outputs[0].shape[2] or 0) - 4
            return []
        desc = ", ".join(f"output {i} {shape_text(o.shape)} {o.dtype}" for i, o in enumerate(outputs))
        post = {"labels", "boxes", "scores"} <= set(idx) and len(outputs) == 3
        raw = {"logits", "boxes"} <= set(idx) and len(outputs) == 2
        if not (post or raw):
            return [f"the graph has {desc}; the detr decoder expects {self.expects}"]
        self.idx = idx
        self.num_classes = outputs[idx["logits"]].shape[2] if raw else None
        return []

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        logits: np.ndarray | None = None
        if "combined" in self.idx:
            self._runtime_shape(0, outputs[0], (1, None, None))
            boxes, logits = outputs[0][0, :, :4], outputs[0][0, :, 4:]
        else:
            boxes = outputs[self.idx["boxes"]]
            self._runtime_shape(self.idx["boxes"], boxes, (1, None, 4))
            boxes = boxes[0]
            if "logits" in self.idx:
                logits = outputs[self.idx["logits"]][0]
        if logits is not None:
            probs = sigmoid(logits) if self.params["sigmoid"] else logits
            label = probs.argmax(1)
            score = probs[np.arange(probs.shape[0]), label]
        else:
            label = outputs[self.idx["labels"]].reshape(-1)
            score = outputs[self.idx["scores"]].reshape(-1)
            if label.shape[0] != boxes.shape[0] or score.shape[0] != boxes.shape[0]:
                raise ModelError(
                    f"detr outputs disagree: {boxes.shape[0]} boxes, {label.shape[0]} labels, {score.shape[0]} scores"
                )
        keep = np.nonzero(score >= ctx.score_floor)[0]
        b = boxes[keep].astype(np.float32)
        if self.params["box_format"] == "cxcywh":
            b = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
        space = self.params["box_space"]
        if space == "normalized":
            b = b * np.array([ctx.input_w, ctx.input_h, ctx.input_w, ctx.input_h], np.float32)
            space = "input"
        return RawDetections(b, score[keep].astype(np.float32), label[keep].astype(np.int32), space)
