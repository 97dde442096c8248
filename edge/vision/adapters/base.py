"""The decoder interface every family adapter implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from edge.errors import ModelError
from edge.vision.runtime import TensorInfo

BoxSpace = Literal["input", "original", "normalized"]


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a decoder needs besides the raw outputs."""

    input_w: int
    input_h: int
    image_w: int
    image_h: int
    score_floor: float  # lowest per-label threshold: candidates below it can be skipped early


@dataclass(frozen=True, slots=True)
class RawDetections:
    """Decoded boxes before mapping back, NMS and filters. ``space`` says which pixels ``xyxy`` is in."""

    xyxy: np.ndarray  # float32 (N,4)
    score: np.ndarray  # float32 (N,)
    label: np.ndarray  # int32 (N,) model label index
    space: BoxSpace

    @classmethod
    def empty(cls, space: BoxSpace) -> RawDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), space)


def shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def fits(shape: Sequence[int | None], want: Sequence[int | None]) -> bool:
    """True when ``shape`` can be ``want`` (None on either side matches any size)."""
    return len(shape) == len(want) and all(
        a is None or b is None or a == b for a, b in zip(shape, want, strict=True)
    )


def grid_sizes(input_w: int, input_h: int, strides: Sequence[int]) -> list[tuple[int, int]]:
    """(cols, rows) of each stride's feature map."""
    return [(math.ceil(input_w / s), math.ceil(input_h / s)) for s in strides]


def make_grid(input_w: int, input_h: int, strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) indices (N,2) float32 and the stride of each cell (N,), row-major per stride."""
    cells, strd = [], []
    for (gw, gh), s in zip(grid_sizes(input_w, input_h, strides), strides, strict=True):
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strd.append(np.full(gw * gh, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strd).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Decoder(ABC):
    """Turns a graph's outputs into ``RawDetections``.

    ``bind(outputs)`` matches the graph's real outputs against what the family expects and returns
    one readable line per mismatch (``output 0 has shape [1,3549,85]; the yolov8 decoder expects
    [1,4+C,N]``); ``decode`` runs on every frame and must be vectorised.
    """

    family: ClassVar[str]
    expects: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: dict[str, Any], input_size: tuple[int, int]) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise ModelError(
                f"decoder.params: unknown {unknown} for family {self.family}; allowed: {allowed}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.input_w, self.input_h = input_size
        self.num_classes: int | None = None  # set by bind()
        self.validate_params()

    def validate_params(self) -> None:  # noqa: B027 - optional hook
        """Raise ModelError on a bad parameter value."""

    def _strides(self) -> list[int]:
        s = self.params.get("strides")
        if not isinstance(s, list) or not s or not all(isinstance(v, int) and v > 0 for v in s):
            raise ModelError(f"decoder.params.strides: {s!r}; give a list of positive ints, e.g. [8, 16, 32]")
        return list(s)

    @abstractmethod
    def bind(self, outputs: list[TensorInfo]) -> list[str]:
        """Match the graph outputs (in the order given). Sets ``num_classes``. Returns problems."""

    @abstractmethod
    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> RawDetections:
        """Vectorised decode of one batch-1 inference."""

    def _runtime_shape(self, i: int, arr: np.ndarray, want: Sequence[int | None]) -> None:
        if not fits(arr.shape, want):
            raise ModelError(
                f"output {i} has shape {shape_text(arr.shape)}; the {self.family} decoder expects {shape_text(want)}"
            )
