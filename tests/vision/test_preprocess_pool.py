"""Pre-processing into pooled input buffers equals the plain recipe (resize, paste on the padded
canvas, reorder channels, transpose, scale) bit for bit, in every layout, type, colour order,
resize mode and interpolation a manifest can ask for; buffers are reused, not reallocated."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from edge.vision.manifest import InputSpec
from edge.vision.preprocess import InputPool, Preprocessor

INTERP = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}


def recipe(spec: InputSpec, image: np.ndarray) -> np.ndarray:
    """The input tensor computed the plain way, one array after another."""
    in_w, in_h = spec.size
    h, w = image.shape[:2]
    if spec.resize == "stretch":
        nw, nh, ox, oy = in_w, in_h, 0, 0
    else:
        r = min(in_w / w, in_h / h)
        nw, nh = (round(w * r), round(h * r)) if spec.rounding == "round" else (int(w * r + 1e-6), int(h * r + 1e-6))
        nw, nh = max(1, min(in_w, nw)), max(1, min(in_h, nh))
        ox, oy = ((in_w - nw) // 2, (in_h - nh) // 2) if spec.resize == "letterbox_center" else (0, 0)
    interp = INTERP[spec.interpolation]
    small = image
    if (nw, nh) != (w, h):
        if interp == cv2.INTER_AREA and w >= 2 * nw and h >= 2 * nh:
            while small.shape[1] >= 2 * nw and small.shape[0] >= 2 * nh:
                small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
            interp = cv2.INTER_LINEAR
        small = cv2.resize(small, (nw, nh), interpolation=interp)
    canvas = np.full((in_h, in_w, 3), round(spec.pad_value), np.uint8)
    canvas[oy : oy + nh, ox : ox + nw] = small
    if spec.colour == "RGB":
        canvas = canvas[:, :, ::-1]
    x = canvas.transpose(2, 0, 1)[None] if spec.layout == "NCHW" else canvas[None]
    if spec.dtype == "uint8":
        return np.ascontiguousarray(x)
    x = x.astype(np.float32)
    a = (spec.scale / np.asarray(spec.std, np.float32)).astype(np.float32)
    b = (-np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)).astype(np.float32)
    shape = (1, 3, 1, 1) if spec.layout == "NCHW" else (1, 1, 1, 3)
    if not (np.all(a == 1.0) and np.all(b == 0.0)):
        x = x * a.reshape(shape)
        x = x + b.reshape(shape)
    return x


NORMALISE = {
    "none": {},
    "imagenet": {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}
CASES = [
    case
    for case in itertools.product(
        ["NCHW", "NHWC"],
        ["float32", "uint8"],
        ["BGR", "RGB"],
        ["letterbox_topleft", "letterbox_center", "stretch"],
        ["linear", "area", "nearest", "cubic"],
        ["none", "imagenet"],
    )
    if case[1] == "float32" or case[5] == "none"  # a uint8 input is not normalised
]


@pytest.mark.parametrize(("layout", "dtype", "colour", "resize", "interp", "norm"), CASES)
def test_pooled_preprocessing_equals_the_recipe(
    layout: str, dtype: str, colour: str, resize: str, interp: str, norm: str
) -> None:
    spec = InputSpec.model_validate(
        {"name": "x", "size": (96, 64), "layout": layout, "dtype": dtype, "colour": colour, "resize": resize,
         "interpolation": interp, "pad_value": 114, **NORMALISE[norm]}
    )
    pre = Preprocessor(spec)
    pool = InputPool(pre)
    rng = np.random.default_rng(7)
    for h, w in ((432, 768), (1080, 1920), (64, 96), (30, 200), (7, 9)):  # shrink, same size, stretch, grow
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
        buf = pool.take()
        feeds, _ = pre(image, out=buf)
        assert feeds["x"] is buf  # written in place, no new tensor
        want = recipe(spec, image)
        assert buf.dtype == want.dtype and buf.shape == want.shape
        np.testing.assert_array_equal(buf, want)
        np.testing.assert_array_equal(pre(image)[0]["x"], want)  # without a buffer: the same
        pool.give(buf)
    assert pool.allocated == 1  # one buffer, reused for every frame


def test_pool_grows_to_the_frames_in_flight_and_keeps_a_few() -> None:
    spec = InputSpec.model_validate({"name": "x", "size": (32, 32)})
    pool = InputPool(Preprocessor(spec), keep=2)
    bufs = [pool.take() for _ in range(3)]
    assert pool.allocated == 3 and len({id(b) for b in bufs}) == 3
    for b in bufs:
        pool.give(b)
    again = [pool.take() for _ in range(3)]
    assert pool.allocated == 4  # two came back from the pool, the third had been let go
    assert sum(any(a is b for b in bufs) for a in again) == 2
