"""NanoDet-Plus / GFL: per-stride class-score heads [1,n,C] and DFL box heads [1,n,4*(reg_max+1)].

Heads are matched by shape (their names are often numeric). Box head: softmax over the bins of
each side, expectation x stride = l, t, r, b distances from the cell's prior centre. A single
concatenated output [1, N, C + 4*(reg_max+1)] is accepted too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections, grid_sizes, shape_text, sigmoid
from edge.vision.runtime import TensorInfo

_PRIORS = {"zoo": (0.0, 0.5), "corner": (0.0, 0.0), "center": (0.5, 0.0)}


class NanodetDecoder(Decoder):
    family = "nanodet"
    expects = "per stride [1,n,C] scores and [1,n,4*(reg_max+1)] boxes"
    defaults: ClassVar[dict[str, Any]] = {
        "strides": [8, 16, 32],
        "reg_max": 7,
        "prior": "zoo",
        "sigmoid": False,
        "multi_label": False,
    }

    def validate_params(self) -> None:
        strides = self._strides()
        rm = self.params["reg_max"]
        if not isinstance(rm, int) or rm < 1:
            raise ModelError(f"decoder.params.reg_max: {rm!r}; give a positive int (NanoDet-Plus uses 7)")
        if self.params["prior"] not in _PRIORS:
            raise ModelError(
                f"decoder.params.prior: {self.params['prior']!r}; use one of {', '.join(_PRIORS)}"
            )
        self.bins = rm + 1
        self.reg_dim = 4 * self.bins
        self.sizes = [gw * gh for gw, gh in grid_sizes(self.input_w, self.input_h, strides)]
        cell_off, px_off = _PRIORS[self.params["prior"]]
        self.centers: list[np.ndarray] = []
        for (gw, gh), s in zip(grid_sizes(self.input_w, self.input_h, strides), strides, strict=True):
            ys, xs = np.mgrid[0:gh, 0:gw]
            c = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
            self.centers.append((c + cell_off) * s + px_off * (s - 1))
        self.strides = strides
        self.project = np.arange(self.bins, dtype=np.float32)
        self.pairs: list[tuple[int, int]] = []  # (score output index, box output index) per stride
        self.concat = False

    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        shapes = [o.shape for o in outputs]
        if len(outputs) == 1:
            shp = shapes[0]
            total = sum(self.sizes)
            if len(shp) == 3 and shp[1] == total and (shp[2] or 0) > self.reg_dim:
                self.concat, self.num_classes = True, int(shp[2] or 0) - self.reg_dim
                return []
            return [
                f"output 0 has shape {shape_text(shp)}; the nanodet decoder expects {2 * len(self.sizes)} heads "
                f"({self.expects}) or one [1,{total},C+{self.reg_dim}]"
            ]
        problems: list[str] = []
        used: set[int] = set()
        pairs: list[tuple[int, int]] = []
        ncls: set[int] = set()
        for n, s in zip(self.sizes, self.strides, strict=True):
            box = next(
                (i for i, sh in enumerate(shapes) if i not in used and sh == (1, n, self.reg_dim)), None
            )
            if box is not None:
                used.add(box)
            cls = next(
                (
                    i
                    for i, sh in enumerate(shapes)
                    if i not in used and len(sh) == 3 and sh[:2] == (1, n) and sh[2]
                ),
                None,
            )
            if cls is not None:
                used.add(cls)
                ncls.add(int(shapes[cls][2]))  # type: ignore[arg-type]
            if box is None or cls is None:
                have = ", ".join(f"output {i} {shape_text(sh)}" for i, sh in enumerate(shapes))
                missing = f"box head [1,{n},{self.reg_dim}]" if box is None else f"score head [1,{n},C]"
                problems.append(
                    f"stride {s}: no {missing} (reg_max {self.params['reg_max']}, input "
                    f"{self.input_w}x{self.input_h}); the graph has {have}"
                )
            else:
                pairs.append((cls, box))
        extra = [i for i in range(len(shapes)) if i not in used]
        if not problems and extra:
            problems.append(f"outputs {extra} match no stride head of the nanodet decoder ({self.expects})")
        if len(ncls) > 1:
            problems.append(f"score heads disagree on the class count: {sorted(ncls)}")
        self.pairs = pairs
        self.num_classes = ncls.pop() if len(ncls) == 1 else None
        return problems

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        if self.concat:
            out = outputs[0][0]
            c = out.shape[1] - self.reg_dim
            heads, start = [], 0
            for n in self.sizes:
                heads.append((out[start : start + n, :c], out[start : start + n, c:]))
                start += n
        else:
            heads = []
            for (ci, bi), n in zip(self.pairs, self.sizes, strict=True):
                self._runtime_shape(ci, outputs[ci], (1, n, None))
                self._runtime_shape(bi, outputs[bi], (1, n, self.reg_dim))
                heads.append((outputs[ci][0], outputs[bi][0]))
        boxes, scores, labels = [], [], []
        for (cls, reg), centers, s in zip(heads, self.centers, self.strides, strict=True):
            if self.params["sigmoid"]:
                cls = sigmoid(cls)
            if self.params["multi_label"]:
                a, c = np.nonzero(cls >= ctx.score_floor)
                if a.size == 0:
                    continue
                ua, inv = np.unique(a, return_inverse=True)
            else:  # best class of each cell only
                # a flat comparison finds the few cells with any score over the floor (3x faster
                # than a row-wise max on real outputs); argmax only over those cells
                a = np.unique(np.flatnonzero(cls.ravel() >= ctx.score_floor) // cls.shape[1])
                if a.size == 0:
                    continue
                c, ua, inv = cls[a].argmax(1), a, np.arange(a.size)
            logits = reg[ua].reshape(-1, 4, self.bins)
            e = np.exp(logits - logits.max(axis=2, keepdims=True))
            dist = (e @ self.project) / e.sum(axis=2) * s  # (k,4) l,t,r,b
            ctr = centers[ua]
            xyxy = np.concatenate([ctr - dist[:, :2], ctr + dist[:, 2:]], 1)
            boxes.append(xyxy[inv])
            scores.append(cls[a, c])
            labels.append(c)
        if not boxes:
            return RawDetections.empty("input")
        return RawDetections(
            np.concatenate(boxes).astype(np.float32),
            np.concatenate(scores).astype(np.float32),
            np.concatenate(labels).astype(np.int32),
            "input",
        )
