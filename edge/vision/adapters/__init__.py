"""Output decoders, one file per family, listed in ``DECODERS`` below.

A new model family is a new file here with a ``Decoder`` subclass and one line in ``DECODERS``;
the runtime has no per-family ``if``. The table is explicit so a reader sees every family in one place.
"""

from __future__ import annotations

from typing import Any

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections
from edge.vision.adapters.detr import DetrDecoder
from edge.vision.adapters.nanodet import NanodetDecoder
from edge.vision.adapters.nms_rows import NmsRowsDecoder
from edge.vision.adapters.ssd import SsdDecoder
from edge.vision.adapters.yolov8 import Yolov8Decoder
from edge.vision.adapters.yolox import YoloxDecoder

__all__ = ["DECODERS", "DecodeContext", "Decoder", "RawDetections", "families", "get_decoder"]

#: Manifest ``decoder.family`` -> the class that turns that family's raw outputs into detections.
DECODERS: dict[str, type[Decoder]] = {
    "detr": DetrDecoder,
    "nanodet": NanodetDecoder,
    "nms_rows": NmsRowsDecoder,
    "ssd": SsdDecoder,
    "yolov8": Yolov8Decoder,
    "yolox": YoloxDecoder,
}


def families() -> list[str]:
    """Every decoder family available."""
    return sorted(DECODERS)


def get_decoder(family: str, params: dict[str, Any], input_size: tuple[int, int]) -> Decoder:
    """Instantiate the decoder of ``family``; raises ModelError naming the known families."""
    cls = DECODERS.get(family)
    if cls is None:
        raise ModelError(f"decoder family {family!r} is unknown; available: {', '.join(families())}")
    return cls(params, input_size)
