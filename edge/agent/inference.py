"""Inference shared by the box's cameras: one session per model, a few workers, a fair queue.

Cameras that run the same model file with the same provider and thread setting form a *group*.
A group loads the model once (one ``OnnxSession``, shared by every camera's ``OnnxDetector``) and
runs it on ``workers`` threads that do nothing but ``session.run``: each camera's frame thread
pre-processes and submits a job, its rules thread waits for that job and decodes
(``edge.agent.runner``). So inference never waits for a letterbox or an NMS, and two to four
cameras share the cores instead of each camera's session fighting the others for them.

The layout of a group (``plan_inference``): with ``detector.threads`` set, each run uses that many
threads and as many runs go at once as fit in the box's cores (at most one per camera); unset,
one camera gets all the cores in one run (the lowest latency), and several cameras get one
single-threaded run per core (frames of different cameras in parallel: the highest throughput on
small models, where one run cannot keep many threads busy). Several groups split the cores.

The queue (``FairQueue``) is start-time fair queuing weighted by each camera's ``detect_fps``:
when the cameras ask for more than the box can do, each gets the same fraction of its rate; a
camera that asks for less (its source is slower, or motion gating skips its frames) leaves its
share to the others, and when it comes back it starts level with them instead of with credit
for the time it was idle.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.config import CameraConfig
from edge.ports import Detector
from edge.vision.detector import build_detector
from edge.vision.runtime import OnnxSession

log = logging.getLogger(__name__)

#: Cameras share a session when these match: model reference, provider, configured threads.
GroupKey = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class InferencePlan:
    """How one group runs its model: ``threads`` per ``session.run``, ``workers`` runs at once."""

    threads: int
    workers: int


def plan_inference(cameras: int, threads: int | None, cores: int) -> InferencePlan:
    """The layout for ``cameras`` cameras sharing one model on ``cores`` cores (see the module doc)."""
    if cameras < 1 or cores < 1:
        raise ValueError(f"plan_inference needs cameras >= 1 and cores >= 1, got {cameras} and {cores}")
    if threads is not None:
        return InferencePlan(threads, max(1, min(cameras, cores // threads)))
    if cameras == 1:
        return InferencePlan(cores, 1)
    return InferencePlan(1, min(cameras, cores))


class InferenceJob:
    """One frame's ``session.run`` work, submitted by a camera and waited for by the same camera."""

    __slots__ = ("_done", "camera_id", "cancelled", "error", "finish_tag", "run", "seq", "start_tag")

    def __init__(self, camera_id: str, run: Callable[[], None]) -> None:
        self.camera_id = camera_id
        self.run = run
        self.error: BaseException | None = None
        self.cancelled = False
        self._done = threading.Event()
        self.start_tag = 0.0
        self.finish_tag = 0.0
        self.seq = 0

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def _finish(self) -> None:
        self._done.set()


@dataclass
class _Lane:
    """One camera's place in the queue."""

    rate_hz: float
    jobs: collections.deque[InferenceJob] = field(default_factory=collections.deque)
    last_finish: float = 0.0
    served: int = 0


class FairQueue:
    """The scheduling policy, without threads: per-camera FIFOs served by start-time fair queuing.

    A job of camera c arriving at virtual time V gets ``start = max(V, finish of c's last job)``
    and ``finish = start + 1 / rate_c``; ``pop`` serves the queued job with the smallest start
    (ties: first come), and V becomes that start. Not thread-safe: ``InferenceScheduler`` locks.
    """

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._vtime = 0.0
        self._seq = itertools.count()

    def add_camera(self, camera_id: str, rate_hz: float) -> None:
        if rate_hz <= 0:
            raise ValueError(f"camera {camera_id}: rate must be > 0 frames/s, got {rate_hz}")
        self._lanes[camera_id] = _Lane(rate_hz)

    def remove_camera(self, camera_id: str) -> list[InferenceJob]:
        """Forget a camera; returns the jobs it still had queued."""
        lane = self._lanes.pop(camera_id, None)
        return list(lane.jobs) if lane is not None else []

    def push(self, job: InferenceJob) -> None:
        lane = self._lanes.get(job.camera_id)
        if lane is None:
            raise KeyError(f"camera {job.camera_id!r} is not registered with this inference queue")
        job.start_tag = max(self._vtime, lane.last_finish)
        job.finish_tag = lane.last_finish = job.start_tag + 1.0 / lane.rate_hz
        job.seq = next(self._seq)
        lane.jobs.append(job)

    def pop(self) -> InferenceJob | None:
        best: _Lane | None = None
        for lane in self._lanes.values():
            if lane.jobs and (
                best is None or (lane.jobs[0].start_tag, lane.jobs[0].seq) < (best.jobs[0].start_tag, best.jobs[0].seq)
            ):
                best = lane
        if best is None:
            return None
        job = best.jobs.popleft()
        best.served += 1
        self._vtime = max(self._vtime, job.start_tag)
        return job

    def __len__(self) -> int:
        return sum(len(lane.jobs) for lane in self._lanes.values())

    def served(self) -> dict[str, int]:
        return {cid: lane.served for cid, lane in self._lanes.items()}


class InferenceScheduler:
    """A ``FairQueue`` drained by ``workers`` threads that only run jobs (``session.run``)."""

    def __init__(self, name: str, workers: int, *, clock: Callable[[], float] = time.perf_counter) -> None:
        if workers < 1:
            raise ValueError(f"an inference scheduler needs at least one worker, got {workers}")
        self.name = name
        self._queue = FairQueue()
        self._cv = threading.Condition()
        self._stopping = False
        self._clock = clock
        self.busy_s = 0.0  # time the workers spent inside jobs, summed
        self.jobs_run = 0
        self._running = 0
        self._started: dict[int, float] = {}  # worker thread id -> when its current job began
        self._threads = [
            threading.Thread(target=self._work, name=f"infer-{name}-{i}", daemon=True) for i in range(workers)
        ]
        for th in self._threads:
            th.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    def add_camera(self, camera_id: str, rate_hz: float) -> None:
        with self._cv:
            self._queue.add_camera(camera_id, rate_hz)

    def remove_camera(self, camera_id: str) -> None:
        with self._cv:
            left = self._queue.remove_camera(camera_id)
        for job in left:
            job.cancelled = True
            job._finish()

    def submit(self, camera_id: str, run: Callable[[], None]) -> InferenceJob:
        """Queue ``run`` for ``camera_id``; the returned job is done once a worker has run it (or the
        scheduler stopped first: then ``cancelled``)."""
        return self.enqueue(InferenceJob(camera_id, run))

    def enqueue(self, job: InferenceJob) -> InferenceJob:
        """Queue a job made by the caller (``submit`` makes one)."""
        with self._cv:
            if self._stopping:
                job.cancelled = True
                job._finish()
                return job
            self._queue.push(job)
            self._cv.notify()
        return job

    def served(self) -> dict[str, int]:
        """Jobs started per camera so far."""
        with self._cv:
            return self._queue.served()

    def busy_until_now(self) -> float:
        """Worker time spent in jobs so far, the running jobs' time up to now included: the
        difference of two readings is the busy time between them (``busy_s`` counts a job only
        when it ends, so a job that straddles a reading would land wholly on one side)."""
        with self._cv:
            now = self._clock()
            return self.busy_s + sum(now - t0 for t0 in self._started.values())

    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        with self._cv:
            return self._running == 0 and len(self._queue) == 0

    def _work(self) -> None:
        while True:
            with self._cv:
                job = self._queue.pop()
                while job is None:
                    if self._stopping:
                        return
                    self._cv.wait()
                    job = self._queue.pop()
                self._running += 1
                t0 = self._clock()
                self._started[threading.get_ident()] = t0
            try:
                job.run()
            except Exception as exc:  # handed to the camera that waits for it
                job.error = exc
            finally:
                dt = self._clock() - t0
                with self._cv:
                    self.busy_s += dt
                    self.jobs_run += 1
                    self._running -= 1
                    self._started.pop(threading.get_ident(), None)
                job._finish()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Run what is queued, then end the workers."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for th in self._threads:
            th.join(timeout=timeout_s)


class InferenceHub:
    """The box's inference for one set of cameras: plans the groups, loads each group's model once,
    builds every camera's detector on the shared session and runs the groups' schedulers.

    One hub per camera set: a config reload builds a new hub with the new cameras and stops the old
    one after the old cameras have finished.
    """

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        *,
        cores: int | None = None,
        build: Callable[[CameraConfig, OnnxSession | None], Detector] = build_detector,
    ) -> None:
        self.cores = cores or os.cpu_count() or 1
        self._build = build
        groups: dict[GroupKey, list[CameraConfig]] = {}
        for cam in cameras:
            if cam.model != "motion":
                groups.setdefault(self.key(cam), []).append(cam)
        share = max(1, self.cores // max(1, len(groups)))  # several models split the cores
        self.plans = {key: plan_inference(len(cams), key[2], share) for key, cams in groups.items()}
        self._sessions: dict[GroupKey, OnnxSession] = {}
        self._schedulers: dict[GroupKey, InferenceScheduler] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(cam: CameraConfig) -> GroupKey:
        return (cam.model, cam.detector.provider, cam.detector.threads)

    def detector(self, cam: CameraConfig) -> Detector:
        """``cam``'s detector; an ONNX model runs on its group's shared session with the group's threads."""
        if cam.model == "motion":
            return self._build(cam, None)
        key = self.key(cam)
        plan = self.plans.get(key) or plan_inference(1, cam.detector.threads, self.cores)
        if cam.detector.threads != plan.threads:
            cam = cam.model_copy(update={"detector": cam.detector.model_copy(update={"threads": plan.threads})})
        det = self._build(cam, self._sessions.get(key))
        session = getattr(det, "session", None)
        if isinstance(session, OnnxSession):
            self._sessions.setdefault(key, session)
        return det

    def scheduler(self, cam: CameraConfig) -> InferenceScheduler | None:
        """The scheduler ``cam``'s jobs go to (started on first use), None for the motion backend."""
        if cam.model == "motion":
            return None
        key = self.key(cam)
        with self._lock:
            sched = self._schedulers.get(key)
            if sched is None:
                plan = self.plans.get(key) or plan_inference(1, cam.detector.threads, self.cores)
                sched = InferenceScheduler(_short(cam.model), plan.workers)
                self._schedulers[key] = sched
                log.info(
                    "inference group model=%s threads=%d workers=%d", cam.model, plan.threads, plan.workers
                )
        sched.add_camera(cam.id, cam.detect_fps)
        return sched

    def schedulers(self) -> list[InferenceScheduler]:
        with self._lock:
            return list(self._schedulers.values())

    def stop(self) -> None:
        for sched in self.schedulers():
            sched.stop()


def _short(model: str) -> str:
    """A model reference short enough for a thread name."""
    return os.path.splitext(os.path.basename(model))[0][:24]
