"""One running camera: its components (``build_camera``) and the state its two threads share.

``build_camera`` is the camera's composition root: it builds the detector (an ONNX model or the
motion backend; through the ``InferenceHub`` an ONNX model shares its group's session and its
frames go to the group's scheduler), the camera's ground plane (handed to the tracker, the rules
and the motion backend alike), the tracker, the rules, the tamper checks and the motion gate, and
opens the source. Every failure is an ``EdgeError`` naming what is wrong.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.agent.evidence import build_evidence_sink
from edge.agent.inference import InferenceHub, InferenceJob, InferenceScheduler
from edge.agent.pipeline import CameraPipeline, Pending, StepResult
from edge.capture.opencv import source_kind
from edge.config import CameraConfig, SiteConfig
from edge.events.builder import model_ref
from edge.events.schema import ModelRef
from edge.health.report import CameraHealth
from edge.health.stats import CameraStats
from edge.health.tamper import TamperMonitor
from edge.ports import Detector, FrameSource
from edge.rules import CameraAnalytics
from edge.tracking import ByteTracker
from edge.types import SourceState, SourceStatus
from edge.vision.detector import OnnxDetector, build_detector
from edge.vision.gating import MotionGate
from edge.vision.motion import MotionDetector, MotionEnergy
from edge.zones.calibration import ground_plane

SourceFactory = Callable[[CameraConfig], FrameSource]
#: Frames a camera's detect thread may hand over ahead of its rules thread. One is enough to keep the
#: inference busy (it is queued while the rules thread waits for the frame before it), and every
#: extra one adds an inference time of latency.
FRAMES_AHEAD = 1


@dataclass(frozen=True, slots=True)
class InFlight:
    """A prepared frame on its way from the camera's detect thread to its rules thread; ``job`` is
    its inference on the shared scheduler (None when there is nothing to infer)."""

    pending: Pending
    job: InferenceJob | None


#: What crosses from a camera's detect thread to its rules thread.
Handoff = InFlight | SourceStatus | None  # None: the detect thread has finished


@dataclass
class CameraRuntime:
    """Everything that belongs to one running camera, shared by its detect and rules threads."""

    cam: CameraConfig
    source: FrameSource
    pipeline: CameraPipeline
    analytics: CameraAnalytics
    stats: CameraStats
    tamper: TamperMonitor | None
    gate: MotionGate | None
    model: ModelRef | None
    scheduler: InferenceScheduler | None = None  # where its inference runs; None: on its detect thread
    state: SourceState = SourceState.STARTING
    # Frames between the camera's two threads. ``slots`` bounds them: the detect thread takes a slot
    # before it reads a frame, the rules thread gives it back when it takes the frame; so a frame is
    # read only when the pipeline has room for it (the freshest one from a live camera), and at most
    # FRAMES_AHEAD frames wait while the rules thread works on another.
    handoff: queue.Queue[Handoff] = field(default_factory=queue.Queue)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(FRAMES_AHEAD))
    frames: int = 0
    dropped_seen: int = 0
    errors: int = 0
    error: str = ""  # the last stage error (logged once per change)
    last_step: StepResult | None = None  # for the snapshot command
    clock: tuple[float, float] | None = None  # (t, ts) of the last processed frame: the camera's own time
    stop: threading.Event = field(default_factory=threading.Event)  # this camera only (config reload)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return any(th.is_alive() for th in self.threads)

    @property
    def blinded(self) -> bool:
        """The camera's view is tampered with (covered, moved...): its zero counts are not to be trusted."""
        return self.tamper is not None and self.tamper.active

    def join(self, timeout_s: float = 10.0) -> None:
        for th in self.threads:
            th.join(timeout=timeout_s)

    def health(self) -> CameraHealth:
        """This camera's part of the health record."""
        return CameraHealth(
            stats=self.stats.snapshot(),
            online=self.state is not SourceState.OFFLINE,
            tamper=self.tamper.state() if self.tamper is not None else None,
            skipped_fraction=None if self.gate is None else round(self.gate.skipped_fraction, 4),
            model_output=self.model_output(),
        )

    def model_output(self) -> dict[str, object] | None:
        """The ONNX detector's output guard (state, passes, dropped rows); None for a model-free backend."""
        det = self.pipeline.detector
        return det.output_health() if isinstance(det, OnnxDetector) else None


def is_still(cam: CameraConfig) -> bool:
    """A still image held as a camera (no "frozen" tamper fault for it)."""
    return isinstance(cam.source, str) and "://" not in cam.source and source_kind(cam.source) == "image"


def build_camera(
    cam: CameraConfig, cfg: SiteConfig, open_source: SourceFactory, hub: InferenceHub | None = None
) -> CameraRuntime:
    """All of one camera's components, its source opened. Raises EdgeError naming what is wrong.

    Without ``hub`` the camera has its own session and infers on its own detect thread."""
    ground = ground_plane(cam.calibration, f"cameras[{cam.id}].calibration")
    detector: Detector
    if cam.model == "motion":
        detector = MotionDetector(cam, ground=ground)
    else:
        detector = hub.detector(cam) if hub is not None else build_detector(cam)
    tracker = ByteTracker(cfg.rules.tracker, ground=ground)
    analytics = CameraAnalytics(
        cam, cfg.rules, cfg.timezone, ground=ground, evidence=build_evidence_sink(cfg.evidence)
    )
    tamper_cfg = cam.tamper
    if is_still(cam) and "frozen" not in tamper_cfg.disabled_faults:
        # A held still never changes: "frozen" would be the only thing it ever reports.
        tamper_cfg = tamper_cfg.model_copy(update={"disabled_faults": [*tamper_cfg.disabled_faults, "frozen"]})
    tamper = TamperMonitor(cam.id, tamper_cfg) if tamper_cfg.enabled else None
    gate = MotionGate(cfg.health.gating) if cfg.health.gating.enabled else None
    pipeline = CameraPipeline(
        cam.id,
        detector,
        tracker,
        analytics,
        motion=MotionEnergy(cam),
        gate=gate,
        checks=[tamper] if tamper else [],
        check_interval_s=tamper_cfg.check_interval_s,
    )
    source = open_source(cam)
    return CameraRuntime(
        cam=cam,
        source=source,
        pipeline=pipeline,
        analytics=analytics,
        stats=CameraStats(cam.id, cfg.health.stats_window_s),
        tamper=tamper,
        gate=gate,
        model=model_ref(detector) if detector.name else None,
        scheduler=hub.scheduler(cam) if hub is not None else None,
    )
