"""One camera's frame step: detect -> track -> rules, with motion gating and tamper checks.

Pure: no threads, no I/O, no vendor libraries. Every component is injected, so the same
step runs in the agent, in ``replay``, in the demo and in tests. Time comes only from the
frame (``frame.t`` / ``frame.ts``).

``step`` = ``interpret(perceive(frame))``, and ``perceive`` = ``prepare`` -> ``infer`` ->
``complete``. The agent runs those pieces on different threads (``edge.agent.runner``): ``prepare``
(motion gate, the detector's pre-processing) on the camera's frame thread, ``infer`` (the session
alone) on a shared inference worker, ``complete`` (decoding, NMS) and ``interpret`` on the camera's
rules thread. Called in series they are the same computation, so the agent, replay and the tests
get the same detections.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge.ports import Detector, Tracker
from edge.types import Detections, EventDraft, Frame, Tracks


class Analytics(Protocol):
    """The per-camera rules (``edge.rules.CameraAnalytics``)."""

    def update(
        self,
        frame: Frame,
        tracks: Tracks,
        motion_energy: Mapping[str, float] | None = None,
        *,
        detections: Detections | None = None,
    ) -> list[EventDraft]: ...

    def feature_record(self, t: float, ts: float) -> EventDraft | None: ...

    def flush(self, t: float, ts: float) -> list[EventDraft]: ...

    def command(
        self, name: str, args: Mapping[str, Any], t: float, ts: float
    ) -> tuple[dict[str, Any], list[EventDraft]]: ...

    # Read-only views for drawing, replay and the demo's operator.
    def zone_states(self) -> dict[str, dict[str, Any]]: ...

    @property
    def occupancy_total(self) -> np.ndarray: ...

    def open_tasks(self) -> list[dict[str, Any]]: ...


class StationaryAwareTracker(Tracker, Protocol):
    """A tracker that says whether it holds stationary objects (seen or remembered): the motion
    gate re-checks them by inference even when nothing moves."""

    def has_stationary(self) -> bool: ...


class MotionMeter(Protocol):
    def update(self, frame: Frame) -> dict[str, float]: ...


class Gate(Protocol):
    def should_infer(self, t: float, energy: float, has_stationary: bool) -> bool: ...


@runtime_checkable
class StagedDetector(Protocol):
    """A detector whose work splits in three (``edge.vision.detector.OnnxDetector``): ``prepare`` on
    the frame's thread, ``infer`` (the model alone, thread-safe) on an inference worker, ``finish``
    (decoding) afterwards, in frame order."""

    def prepare(self, image: np.ndarray) -> Any: ...

    def infer(self, work: Any) -> None: ...

    def finish(self, work: Any) -> Detections: ...


class FrameCheck(Protocol):
    """Camera tamper / blind detection on raw frames."""

    def update(self, frame: Frame) -> list[EventDraft]: ...


@dataclass(slots=True)
class Perception:
    """What the first half of a step saw: detections (or the last ones, when gated) and checks."""

    frame: Frame
    detections: Detections
    inferred: bool
    motion_energy: dict[str, float]
    drafts: list[EventDraft]
    timing_ms: dict[str, float]
    started: float | None = None  # perf clock when the frame's step began (prepare)


@dataclass(slots=True)
class Pending:
    """A frame between ``prepare`` and ``complete``: the gate has decided; ``work`` (a staged
    detector's pre-processed input) still needs ``infer`` when it is not None."""

    frame: Frame
    inferred: bool
    motion_energy: dict[str, float]
    started: float  # perf clock when prepare began (for the latency)
    work: Any | None = None
    detections: Detections | None = None  # a plain detector's result, computed by prepare
    timing_ms: dict[str, float] = field(default_factory=dict)

    @property
    def needs_inference(self) -> bool:
        return self.work is not None


@dataclass(slots=True)
class StepResult:
    """What one frame produced; ``on_step`` callbacks (replay drawing) receive it."""

    frame: Frame
    detections: Detections
    tracks: Tracks
    drafts: list[EventDraft]
    inferred: bool
    motion_energy: dict[str, float]
    analytics: Analytics
    timing_ms: dict[str, float] = field(default_factory=dict)


class CameraPipeline:
    """Runs one frame through the stages of one camera."""

    def __init__(
        self,
        camera_id: str,
        detector: Detector,
        tracker: StationaryAwareTracker,
        analytics: Analytics,
        *,
        motion: MotionMeter | None = None,
        gate: Gate | None = None,
        checks: list[FrameCheck] | None = None,
        check_interval_s: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.camera_id = camera_id
        self._staged: StagedDetector | None = None
        self.detector = detector
        self.tracker = tracker
        self.analytics = analytics
        self.motion = motion
        self.gate = gate
        self.checks = list(checks or [])
        self.check_interval_s = check_interval_s
        self._next_check_t = -float("inf")
        self._energy: dict[str, float] = {}
        self._has_stationary = False
        self._perf = clock
        self._last_detections = Detections.empty()
        self._last_tracks = Tracks.empty()
        self.inferences = 0
        self.skipped = 0

    @property
    def detector(self) -> Detector:
        return self._detector

    @detector.setter
    def detector(self, detector: Detector) -> None:
        """A detector swapped in later (eval's memoising wrapper) is used from the next frame on."""
        self._detector = detector
        # A staged detector (an ONNX model) can be spread over threads; others detect in prepare().
        self._staged = detector if isinstance(detector, StagedDetector) else None

    @property
    def last_tracks(self) -> Tracks:
        return self._last_tracks

    def step(self, frame: Frame) -> StepResult:
        """Both halves in one call (replay, tests, single-threaded use)."""
        return self.interpret(self.perceive(frame))

    def perceive(self, frame: Frame) -> Perception:
        """First half: motion energy when gating needs it, and (unless gated off) the detector.

        The three pieces below in series; the runner spreads them over threads instead."""
        pending = self.prepare(frame)
        self.infer(pending)
        return self.complete(pending)

    def prepare(self, frame: Frame) -> Pending:
        """The gate's decision (from this frame's motion) and, when inferring, the detector's
        pre-processing -- or, for a detector that is not staged, the whole detection."""
        perf = self._perf
        t1 = perf()
        if self.gate is not None and self.motion is not None:
            # Gating decides from this frame's motion, so the energy is needed before inference.
            self._energy = self.motion.update(frame)
        energy = self._energy
        infer = self.gate is None or self.gate.should_infer(frame.t, energy.get("*", 1.0), self._has_stationary)
        pending = Pending(frame, infer, energy, t1)
        if infer:
            self.inferences += 1
            if self._staged is not None:
                pending.work = self._staged.prepare(frame.image)
            else:
                pending.detections = self.detector.detect(frame)
        else:
            self.skipped += 1
        pending.timing_ms["pre"] = (perf() - t1) * 1000.0
        return pending

    def infer(self, pending: Pending) -> None:
        """The model alone, on the prepared input (nothing for a gated frame or a plain detector).
        Thread-safe: touches nothing of the pipeline but ``pending``."""
        if pending.work is None or self._staged is None:
            return
        t = self._perf()
        self._staged.infer(pending.work)
        pending.timing_ms["queue"] = (t - pending.started) * 1000.0 - pending.timing_ms.get("pre", 0.0)
        pending.timing_ms["infer"] = (self._perf() - t) * 1000.0

    def complete(self, pending: Pending) -> Perception:
        """Decoding and NMS of an inferred frame; a gated frame keeps the last detections.
        Call in frame order."""
        perf = self._perf
        t = perf()
        timing = pending.timing_ms
        if pending.work is not None and self._staged is not None:
            detections = self._staged.finish(pending.work)
            self._last_detections = detections
        elif pending.detections is not None:
            detections = pending.detections
            self._last_detections = detections
        else:
            # Nothing moved in the view since the last inference: the last detections still hold.
            detections = self._last_detections
        timing["post"] = (perf() - t) * 1000.0
        timing["detect"] = timing["pre"] + timing.get("infer", 0.0) + timing["post"]
        return Perception(
            pending.frame, detections, pending.inferred, pending.motion_energy, [], timing, pending.started
        )

    def interpret(self, p: Perception) -> StepResult:
        """Second half: tamper checks, tracker, zone rules and the feature record, in frame order."""
        perf = self._perf
        t0 = perf()
        frame = p.frame
        drafts = list(p.drafts)
        # Tamper checks (and, without gating, the motion-energy feature) run here, overlapping the
        # next frame's inference, on a cadence of frame time: their faults hold for seconds.
        if frame.t >= self._next_check_t:
            self._next_check_t = frame.t + self.check_interval_s
            for check in self.checks:
                drafts.extend(check.update(frame))
            if self.gate is None and self.motion is not None:
                self._energy = self.motion.update(frame)
                p.motion_energy = self._energy
        t2 = perf()
        tracks = self.tracker.update(p.detections, frame.t, (frame.width, frame.height))
        drafts.extend(self.analytics.update(frame, tracks, p.motion_energy or None, detections=p.detections))
        record = self.analytics.feature_record(frame.t, frame.ts)
        if record is not None:
            drafts.append(record)
        timing = dict(p.timing_ms)
        timing["checks"] = (t2 - t0) * 1000.0
        end = perf()
        timing["analytics"] = (end - t2) * 1000.0
        if p.started is not None:  # from prepare to here, waits included: what the frame waited
            timing["latency"] = (end - p.started) * 1000.0
        self._last_tracks = tracks
        # Read by the next perceive() (maybe on another thread): a plain bool, set after the update.
        # Stationary objects hidden right now (a parked car behind a bus) count too.
        self._has_stationary = self.tracker.has_stationary()
        return StepResult(
            frame=frame,
            detections=p.detections,
            tracks=tracks,
            drafts=drafts,
            inferred=p.inferred,
            motion_energy=p.motion_energy,
            analytics=self.analytics,
            timing_ms=timing,
        )

    @property
    def skipped_fraction(self) -> float:
        total = self.inferences + self.skipped
        return self.skipped / total if total else 0.0
