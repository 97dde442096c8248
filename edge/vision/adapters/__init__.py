"""Output decoders, one file per family. ``get_decoder(family)`` imports ``adapters/<family>.py``.

A new model family is a new file here defining ``DECODER = <Decoder subclass>``; the runtime has
no per-family ``if``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from edge.errors import ModelError
from edge.vision.adapters.base import DecodeContext, Decoder, RawDetections

__all__ = ["DecodeContext", "Decoder", "RawDetections", "families", "get_decoder"]


def families() -> list[str]:
    """Every decoder family available (the adapter files)."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")
    )


def get_decoder(family: str, params: dict[str, Any], input_size: tuple[int, int]) -> Decoder:
    """Instantiate the decoder of ``family``; raises ModelError naming the known families."""
    if family not in families():
        raise ModelError(f"decoder family {family!r} is unknown; available: {', '.join(families())}")
    mod = importlib.import_module(f"{__name__}.{family}")
    cls: type[Decoder] = mod.DECODER
    return cls(params, input_size)
