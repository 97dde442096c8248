"""Image -> input tensor, as a manifest's ``input`` section says (the only cv2 user in detection).

One resize straight into a reused uint8 canvas (the letterbox padding is filled once per frame
geometry), one split into reused channel planes, one uint8 -> float32 copy per plane into the input
tensor (channel order and layout chosen by which plane goes where), then an in-place scale/offset
only when the model normalises. The frame itself is only read, never copied; given ``out`` (a
buffer from ``InputPool``) nothing is allocated per frame, so a pipeline can pre-process frame
N+1 into one buffer while frame N's buffer is being inferred.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.manifest import InputSpec

_INTERP = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}
_DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32}


@dataclass(frozen=True, slots=True)
class Transform:
    """Maps model-input pixels back to original-image pixels: ``orig = (inp - pad) / scale``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int  # original image width
    height: int

    def to_original(self, xyxy: np.ndarray) -> np.ndarray:
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale_y
        return out


class Preprocessor:
    """Callable turning a BGR uint8 image into the graph's feeds and the box transform."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.in_w, self.in_h = spec.size
        std = np.asarray(spec.std, np.float32)
        mean = np.asarray(spec.mean, np.float32)
        self._a = (spec.scale / std).astype(np.float32)  # per model channel
        self._b = (-mean / std).astype(np.float32)
        self._identity = bool(np.all(self._a == 1.0) and np.all(self._b == 0.0))
        self._interp = _INTERP[spec.interpolation]
        self._canvas_buf: np.ndarray | None = None
        self._last_geom: tuple[int, int, int, int] | None = None
        self._planes = [np.empty((self.in_h, self.in_w), np.uint8) for _ in range(3)]

    def geometry(self, width: int, height: int) -> tuple[int, int, int, int, float, float]:
        """(new_w, new_h, off_x, off_y, scale_x, scale_y) for an image of this size."""
        if self.spec.resize == "stretch":
            return self.in_w, self.in_h, 0, 0, self.in_w / width, self.in_h / height
        r = min(self.in_w / width, self.in_h / height)
        if self.spec.rounding == "round":
            nw, nh = round(width * r), round(height * r)
        else:  # int(w * r) as the YOLOX letterbox does; a hair under an integer counts as it
            nw, nh = int(width * r + 1e-6), int(height * r + 1e-6)
        nw, nh = max(1, min(self.in_w, nw)), max(1, min(self.in_h, nh))
        if self.spec.resize == "letterbox_center":
            ox, oy = (self.in_w - nw) // 2, (self.in_h - nh) // 2
        else:
            ox = oy = 0
        return nw, nh, ox, oy, r, r

    def _resize(self, image: np.ndarray, nw: int, nh: int, dst: np.ndarray) -> None:
        """Resize ``image`` to (nw, nh) into ``dst`` (a view of the canvas; written in place)."""
        if self._interp == cv2.INTER_AREA:
            # INTER_AREA is slow for big non-integer shrinks (8 ms for 1080p -> 416 here); OpenCV's
            # halving path is fast (<1 ms) and box-averages the same pixels, so halve first.
            # The last step (< 2x) of a halved image is bilinear: the fractional area path costs
            # another 1 ms there, and under 2x the two differ by less than the model notices.
            halved = False
            while image.shape[1] >= 2 * nw and image.shape[0] >= 2 * nh:
                image = cv2.resize(
                    image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
                )
                halved = True
            if halved:
                _resize_into(image, nw, nh, cv2.INTER_LINEAR, dst)
                return
        _resize_into(image, nw, nh, self._interp, dst)

    def _canvas(self, geom: tuple[int, int, int, int]) -> np.ndarray:
        """The uint8 letterbox canvas, padding filled once per frame geometry."""
        if self._canvas_buf is None or self._last_geom != geom:
            self._canvas_buf = np.full((self.in_h, self.in_w, 3), round(self.spec.pad_value), np.uint8)
            self._last_geom = geom
        return self._canvas_buf

    def new_input(self) -> np.ndarray:
        """An empty input tensor of the graph's shape and dtype (what ``out`` takes)."""
        chw = self.spec.layout == "NCHW"
        shape = (1, 3, self.in_h, self.in_w) if chw else (1, self.in_h, self.in_w, 3)
        return np.empty(shape, np.uint8 if self.spec.dtype == "uint8" else np.float32)

    def _to_tensor(self, canvas: np.ndarray, out: np.ndarray) -> None:
        """Canvas (HxWx3 uint8 BGR) -> ``out`` in the graph's layout, colour order and scaling."""
        rgb = self.spec.colour == "RGB"
        if self.spec.layout == "NCHW":
            cv2.split(canvas, self._planes)
            for c in range(3):
                np.copyto(out[0, c], self._planes[2 - c if rgb else c], casting="unsafe")
        else:
            np.copyto(out[0], canvas[:, :, ::-1] if rgb else canvas, casting="unsafe")
        if self.spec.dtype != "uint8" and not self._identity:
            shape = (1, 3, 1, 1) if self.spec.layout == "NCHW" else (1, 1, 1, 3)
            np.multiply(out, self._a.reshape(shape), out=out)
            np.add(out, self._b.reshape(shape), out=out)

    def __call__(
        self, image: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], Transform]:
        """The graph's feeds for ``image`` and the box transform back to its pixels.

        ``out`` (from ``new_input()`` or an ``InputPool``) receives the input tensor; without it a
        new one is allocated. The feeds hold ``out`` itself, so it must not be reused before the
        session has run on them.
        """
        h, w = image.shape[:2]
        nw, nh, ox, oy, sx, sy = self.geometry(w, h)
        canvas = self._canvas((nw, nh, ox, oy))
        region = canvas[oy : oy + nh, ox : ox + nw]
        if (nw, nh) == (w, h):
            region[...] = image
        else:
            self._resize(image, nw, nh, region)
        buf = self.new_input() if out is None else out
        self._to_tensor(canvas, buf)
        feeds = {self.spec.name: buf}
        for extra in self.spec.extra:
            if extra.kind == "scale_factor":
                vals = [self.in_h / h, self.in_w / w]
            elif extra.kind == "orig_size_wh":
                vals = [w, h]
            elif extra.kind == "orig_size_hw":
                vals = [h, w]
            else:
                vals = [self.in_h, self.in_w]
            arr = np.asarray(vals, _DTYPES[extra.dtype])
            feeds[extra.name] = arr.reshape(1, 2) if extra.batched else arr
        return feeds, Transform(sx, sy, float(ox), float(oy), w, h)


def _resize_into(image: np.ndarray, nw: int, nh: int, interp: int, dst: np.ndarray) -> None:
    """``cv2.resize`` writing into ``dst`` (a strided view of the canvas). OpenCV writes in place when
    the view is a valid Mat of the right size and type; should a build ever hand back a new array
    instead, it is copied in, so the result is right either way."""
    got = cv2.resize(image, (nw, nh), dst=dst, interpolation=interp)
    if got is not dst and not np.shares_memory(got, dst):
        dst[...] = got


class InputPool:
    """Input tensors for one ``Preprocessor``, reused across frames.

    ``take()`` hands out a free buffer (a new one when all are in use: the pool grows to the number
    of frames in flight); ``give()`` returns it once the session has run on it. Thread-safe: the
    buffer is taken on the pre-processing thread and given back by the inference thread.
    """

    def __init__(self, pre: Preprocessor, keep: int = 4) -> None:
        self._pre = pre
        self._keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self) -> np.ndarray:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.allocated += 1
        return self._pre.new_input()

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)


def read_image(path: str) -> np.ndarray:
    """BGR uint8 image from a file; raises ValueError naming the file."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read as an image (missing file or unsupported format)")
    return img
