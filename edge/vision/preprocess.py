"""Image -> input tensor, as a manifest's ``input`` section says (the only cv2 user in detection).

One resize into a reused uint8 canvas, one strided uint8 -> float32 copy (channel order and
layout in the same pass), then an in-place scale/offset only when the model normalises: pre-
processing stays a small fraction of inference even on a 1920x1080 frame.
"""

from __future__ import annotations

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

    def _resize(self, image: np.ndarray, nw: int, nh: int) -> np.ndarray:
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
                return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(image, (nw, nh), interpolation=self._interp)

    def _canvas(self, geom: tuple[int, int, int, int]) -> np.ndarray:
        """The uint8 letterbox canvas, padding filled once per frame geometry."""
        if self._canvas_buf is None or self._last_geom != geom:
            self._canvas_buf = np.full((self.in_h, self.in_w, 3), round(self.spec.pad_value), np.uint8)
            self._last_geom = geom
        return self._canvas_buf

    def __call__(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Transform]:
        h, w = image.shape[:2]
        nw, nh, ox, oy, sx, sy = self.geometry(w, h)
        resized = image if (nw, nh) == (w, h) else self._resize(image, nw, nh)
        if (nw, nh) == (self.in_w, self.in_h):
            canvas = resized
        else:
            canvas = self._canvas((nw, nh, ox, oy))
            canvas[oy : oy + nh, ox : ox + nw] = resized
        src = canvas[:, :, ::-1] if self.spec.colour == "RGB" else canvas
        chw = self.spec.layout == "NCHW"
        view = src.transpose(2, 0, 1)[None] if chw else src[None]
        if self.spec.dtype == "uint8":
            buf = np.ascontiguousarray(view)
        else:
            # one strided uint8 -> float32 copy, then an in-place affine per channel if needed
            buf = view.astype(np.float32, order="C")
            if not self._identity:
                shape = (1, 3, 1, 1) if chw else (1, 1, 1, 3)
                np.multiply(buf, self._a.reshape(shape), out=buf)
                np.add(buf, self._b.reshape(shape), out=buf)
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


def read_image(path: str) -> np.ndarray:
    """BGR uint8 image from a file; raises ValueError naming the file."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read as an image (missing file or unsupported format)")
    return img
