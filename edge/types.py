"""The typed values that travel between pipeline stages (numpy only, no vendor libraries).

capture -> Frame -> detect -> Detections -> track -> Tracks -> rules -> EventDraft
                                                     -> features -> FeatureValue
Transitions and feature records become ``edge.events`` Events, then outbox rows.

Time: ``t`` is monotonic seconds (durations), ``ts`` is UTC epoch seconds (reporting).
Analytics never call ``time.time()``; time enters only through these fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Phase = Literal["start", "update", "end", "instant"]
Severity = Literal["info", "minor", "major", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "minor", "major", "critical")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image. ``image`` is HxWx3 uint8 BGR (OpenCV order)."""

    image: np.ndarray
    seq: int
    t: float
    ts: float
    camera_id: str

    def __post_init__(self) -> None:
        img = self.image
        _check(
            img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8,
            f"Frame.image must be HxWx3 uint8, got shape {img.shape} dtype {img.dtype}",
        )

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class SourceState(enum.Enum):
    """What a frame source tells the pipeline besides frames."""

    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"  # lost; reconnecting with backoff
    ENDED = "ended"  # a file reached its end (not an error)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    camera_id: str
    state: SourceState
    t: float
    ts: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Detections:
    """N detections as parallel arrays, boxes in original-image pixels.

    ``class_id`` is canonical (``edge.classes``; -1 = other); ``label_id`` is the
    model's own label index (for ``edge-agent detect`` output and debugging).
    """

    xyxy: np.ndarray  # float32 (N, 4)
    confidence: np.ndarray  # float32 (N,)
    class_id: np.ndarray  # int32 (N,)
    label_id: np.ndarray  # int32 (N,)

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        _check(self.xyxy.ndim == 2 and self.xyxy.shape[1] == 4, f"xyxy must be (N,4), got {self.xyxy.shape}")
        for name in ("confidence", "class_id", "label_id"):
            arr = getattr(self, name)
            _check(arr.shape == (n,), f"{name} must be ({n},), got {arr.shape}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            label_id=np.zeros(0, np.int32),
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: Any,
        confidence: Any,
        class_id: Any,
        label_id: Any | None = None,
    ) -> Detections:
        cid = np.asarray(class_id, np.int32).reshape(-1)
        return cls(
            xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
            confidence=np.asarray(confidence, np.float32).reshape(-1),
            class_id=cid,
            label_id=cid.copy() if label_id is None else np.asarray(label_id, np.int32).reshape(-1),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Select rows by boolean mask, index array or slice."""
        return Detections(
            xyxy=self.xyxy[index].reshape(-1, 4),
            confidence=self.confidence[index].reshape(-1),
            class_id=self.class_id[index].reshape(-1),
            label_id=self.label_id[index].reshape(-1),
        )

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        if not parts:
            return Detections.empty()
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            label_id=np.concatenate([p.label_id for p in parts]),
        )

    @property
    def anchor(self) -> np.ndarray:
        """Bottom-centre of each box, (N,2) px: an object's position on the ground."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5, self.xyxy[:, 3]], axis=1)

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


@dataclass(frozen=True, slots=True)
class Tracks:
    """Confirmed tracks visible in the current frame, as parallel arrays."""

    xyxy: np.ndarray  # float32 (N,4) px
    confidence: np.ndarray  # float32 (N,)
    class_id: np.ndarray  # int32 (N,) canonical
    track_id: np.ndarray  # int64 (N,)
    first_t: np.ndarray  # float64 (N,) monotonic s when first confirmed
    velocity: np.ndarray  # float32 (N,2) px/s of the anchor
    speed_mps: np.ndarray  # float32 (N,) m/s on the ground plane; NaN where uncalibrated
    stationary: np.ndarray  # bool (N,)
    stationary_s: np.ndarray  # float32 (N,) seconds continuously stationary

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0]
        _check(self.xyxy.shape == (n, 4), f"xyxy must be (N,4), got {self.xyxy.shape}")
        _check(self.velocity.shape == (n, 2), f"velocity must be ({n},2), got {self.velocity.shape}")
        for name in ("confidence", "class_id", "track_id", "first_t", "speed_mps", "stationary", "stationary_s"):
            arr = getattr(self, name)
            _check(arr.shape == (n,), f"{name} must be ({n},), got {arr.shape}")

    @classmethod
    def empty(cls) -> Tracks:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            track_id=np.zeros(0, np.int64),
            first_t=np.zeros(0, np.float64),
            velocity=np.zeros((0, 2), np.float32),
            speed_mps=np.zeros(0, np.float32),
            stationary=np.zeros(0, bool),
            stationary_s=np.zeros(0, np.float32),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Tracks:
        return Tracks(
            xyxy=self.xyxy[index].reshape(-1, 4),
            confidence=self.confidence[index].reshape(-1),
            class_id=self.class_id[index].reshape(-1),
            track_id=self.track_id[index].reshape(-1),
            first_t=self.first_t[index].reshape(-1),
            velocity=self.velocity[index].reshape(-1, 2),
            speed_mps=self.speed_mps[index].reshape(-1),
            stationary=self.stationary[index].reshape(-1),
            stationary_s=self.stationary_s[index].reshape(-1),
        )

    @property
    def anchor(self) -> np.ndarray:
        """Bottom-centre of each box, (N,2) px."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5, self.xyxy[:, 3]], axis=1)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """Something a rule, detector or device wants reported: one future Event.

    ``key`` is the stable identity of an episode: every start/update/end of one
    violation, overflow, task or tamper shares it, and the event builder gives
    them one ``incident_id``. ``payload`` must validate against the kind's schema
    in ``edge/events/schemas/kinds/<kind>.json``.
    """

    kind: str
    phase: Phase
    key: str
    t: float
    ts: float
    camera_id: str | None = None
    zone_id: str | None = None
    severity: Severity = "info"
    severity_reason: str = ""
    started_ts: float | None = None
    track_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureValue:
    """One measured number for a zone (or the whole camera when ``zone_id`` is None)."""

    key: str  # e.g. "count.bicycle", "density", "occupancy", "dwell_max", "in", "out"
    zone_id: str | None
    value: float
    unit: str  # "1", "persons/m2", "s", "ratio", ...
    window_s: float
    t: float
