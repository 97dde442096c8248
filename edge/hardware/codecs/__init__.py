"""Pure byte codecs shared by the agent and ``firmware_sim``: no I/O, no clocks, no vendor libraries.

Every decoder refuses what it cannot trust (bad framing, checksum, a field out of its documented
range, ``nan``/``inf``) and counts each refusal once, under a short *kind* (``checksum``,
``out_of_range``, ``non_finite`` ...) in a ``RejectTally``. Decoders never log and never raise
from ``feed``; the device that owns a decoder logs the first refusal of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.errors import CodecError


class FieldError(CodecError):
    """A frame or sentence refused, with the ``kind`` it is counted under."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def kind_of(exc: CodecError) -> str:
    """The rejection kind of a codec error (``malformed`` for a plain CodecError)."""
    return exc.kind if isinstance(exc, FieldError) else "malformed"


@dataclass(slots=True)
class RejectTally:
    """Refusals of one decoder: a total, a count per kind and the first message of each kind."""

    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    example: dict[str, str] = field(default_factory=dict)
    last: str = ""

    def add(self, kind: str, why: str) -> None:
        self.total += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.example.setdefault(kind, why)
        self.last = why
