"""One camera's frame step: detect -> track -> rules, with motion gating and tamper checks.

Pure: no threads, no I/O, no vendor libraries. Every component is injected, so the same
step runs in the agent, in ``replay``, in the demo and in tests. Time comes only from the
frame (``frame.t`` / ``frame.ts``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.ports import Detector, Tracker
from edge.types import Detections, Frame, Tracks, Transition


class Analytics(Protocol):
    """The per-camera rules (``edge.rules.CameraAnalytics``)."""

    def update(
        self, frame: Frame, tracks: Tracks, motion_energy: Mapping[str, float] | None = None
    ) -> list[Transition]: ...

    def feature_record(self, t: float, ts: float) -> Transition | None: ...


class MotionMeter(Protocol):
    def update(self, frame: Frame) -> dict[str, float]: ...


class Gate(Protocol):
    def should_infer(self, t: float, energy: float, has_stationary: bool) -> bool: ...


class FrameCheck(Protocol):
    """Camera tamper / blind detection on raw frames."""

    def update(self, frame: Frame) -> list[Transition]: ...


@dataclass(slots=True)
class StepResult:
    """What one frame produced; ``on_step`` callbacks (replay drawing) receive it."""

    frame: Frame
    detections: Detections
    tracks: Tracks
    transitions: list[Transition]
    inferred: bool
    motion_energy: dict[str, float]
    analytics: Any
    timing_ms: dict[str, float] = field(default_factory=dict)


class CameraPipeline:
    """Runs one frame through the stages of one camera."""

    def __init__(
        self,
        camera_id: str,
        detector: Detector,
        tracker: Tracker,
        analytics: Analytics,
        *,
        motion: MotionMeter | None = None,
        gate: Gate | None = None,
        checks: list[FrameCheck] | None = None,
        clock: Any = time.perf_counter,
    ) -> None:
        self.camera_id = camera_id
        self.detector = detector
        self.tracker = tracker
        self.analytics = analytics
        self.motion = motion
        self.gate = gate
        self.checks = list(checks or [])
        self._perf = clock
        self._last_detections = Detections.empty()
        self._last_tracks = Tracks.empty()
        self.inferences = 0
        self.skipped = 0

    @property
    def last_tracks(self) -> Tracks:
        return self._last_tracks

    def step(self, frame: Frame) -> StepResult:
        perf = self._perf
        timing: dict[str, float] = {}
        transitions: list[Transition] = []

        t0 = perf()
        for check in self.checks:
            transitions.extend(check.update(frame))
        energy = self.motion.update(frame) if self.motion is not None else {}
        t1 = perf()
        timing["checks"] = (t1 - t0) * 1000.0

        # Stationary objects hidden right now (a parked car behind a bus) count too.
        probe = getattr(self.tracker, "has_stationary", None)
        has_stationary = bool(probe()) if callable(probe) else bool(self._last_tracks.stationary.any())
        infer = self.gate is None or self.gate.should_infer(frame.t, energy.get("*", 1.0), has_stationary)
        if infer:
            detections = self.detector.detect(frame)
            self.inferences += 1
        else:
            # Nothing moved in the view since the last inference: the last detections still hold.
            detections = self._last_detections
            self.skipped += 1
        t2 = perf()
        timing["detect"] = (t2 - t1) * 1000.0

        tracks = self.tracker.update(detections, frame.t)
        transitions.extend(self.analytics.update(frame, tracks, energy or None))
        record = self.analytics.feature_record(frame.t, frame.ts)
        if record is not None:
            transitions.append(record)
        timing["analytics"] = (perf() - t2) * 1000.0

        self._last_detections = detections
        self._last_tracks = tracks
        return StepResult(
            frame=frame,
            detections=detections,
            tracks=tracks,
            transitions=transitions,
            inferred=infer,
            motion_energy=energy,
            analytics=self.analytics,
            timing_ms=timing,
        )

    @property
    def skipped_fraction(self) -> float:
        total = self.inferences + self.skipped
        return self.skipped / total if total else 0.0
