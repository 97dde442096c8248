"""The seams between stages, as Protocols. Implementations are named technology + role
(``OpenCvSource``, ``OnnxDetector``, ``PahoPublisher``); fakes live in ``fake.py`` modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from edge.events.schema import ModelRef
from edge.types import Detections, EventDraft, Frame, SourceStatus, Tracks


@runtime_checkable
class FrameSource(Protocol):
    """Yields frames; reports loss and recovery as ``SourceStatus`` values instead of raising."""

    camera_id: str

    def read(self, timeout_s: float = 1.0) -> Frame | SourceStatus | None:
        """The latest frame, a state change, or None if nothing arrived within ``timeout_s``."""
        ...

    def close(self) -> None: ...


class Detector(Protocol):
    """Anything that turns a frame into canonical-class detections (ONNX model, motion backend)."""

    name: str  # model name, goes into events
    sha256: str  # full sha256 of the weights ("" for model-free backends)

    def detect(self, frame: Frame) -> Detections: ...


class Tracker(Protocol):
    """Detections of one frame in, confirmed tracks out. ``frame_size`` (width, height) lets a
    calibrated tracker report ground speed."""

    def update(self, detections: Detections, t: float, frame_size: tuple[int, int] | None = None) -> Tracks: ...


class FallbackLink(Protocol):
    """A slow second uplink for critical rows while the primary broker is down (the cellular modem)."""

    def available(self) -> bool:
        """True when the link is registered and could carry a message now."""
        ...

    def send(self, topic: str, payload: bytes) -> bool:
        """Blocking send; True once the far end acknowledged it."""
        ...


class EventSink(Protocol):
    """Where finished drafts (rule changes, feature, health and status records) go to become
    events; ``model`` is the detector behind a camera's drafts (``edge.agent.emitter``)."""

    def submit(self, drafts: Sequence[EventDraft], model: ModelRef | None = None) -> None: ...
