"""Shared inference for several cameras: the plan, the fair queue, the workers, and the agent with
three cameras on one model (one session, every frame in order, the detections of the model alone)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.agent.inference import (
    FairQueue,
    InferenceHub,
    InferenceJob,
    InferencePlan,
    InferenceScheduler,
    plan_inference,
)
from edge.agent.pipeline import StepResult
from edge.config import parse_config
from edge.config.detector import DetectorConfig
from edge.types import Frame, SourceState, SourceStatus
from edge.vision.detector import OnnxDetector
from edge.vision.manifest import load_manifest
from tests.fixtures.assets import require_asset

# ---- the plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cameras", "threads", "cores", "plan"),
    [
        (1, None, 2, InferencePlan(2, 1)),  # one camera: all cores in one run
        (1, None, 4, InferencePlan(4, 1)),
        (2, None, 2, InferencePlan(1, 2)),  # several: one single-thread run per core
        (4, None, 2, InferencePlan(1, 2)),
        (3, None, 4, InferencePlan(1, 3)),  # never more runs at once than cameras
        (4, 2, 4, InferencePlan(2, 2)),  # threads set: as many runs as fit in the cores
        (4, 1, 2, InferencePlan(1, 2)),
        (1, 1, 2, InferencePlan(1, 1)),  # one camera never gets two runs at once
        (3, 4, 2, InferencePlan(4, 1)),  # more threads than cores: one run
    ],
)
def test_plan(cameras: int, threads: int | None, cores: int, plan: InferencePlan) -> None:
    assert plan_inference(cameras, threads, cores) == plan


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="cameras >= 1"):
        plan_inference(0, None, 2)


def test_hub_groups_cameras_by_model_and_splits_the_cores_between_models() -> None:
    cfg = parse_config(
        {
            "config_version": 1, "device_id": "d", "site_id": "s",
            "cameras": [
                {"id": "a", "source": "0", "model": "yolox_nano_416"},
                {"id": "b", "source": "1", "model": "yolox_nano_416"},
                {"id": "c", "source": "2", "model": "nanodet_plus_m_416"},
                {"id": "d", "source": "3", "model": "yolox_nano_416", "detector": {"threads": 2}},
                {"id": "m", "source": "4", "model": "motion"},
            ],
        }
    )
    hub = InferenceHub(cfg.cameras, cores=6)
    # three groups share six cores: two each; the motion backend needs no inference
    assert hub.plans == {
        ("yolox_nano_416", "CPUExecutionProvider", None): InferencePlan(1, 2),
        ("nanodet_plus_m_416", "CPUExecutionProvider", None): InferencePlan(2, 1),
        ("yolox_nano_416", "CPUExecutionProvider", 2): InferencePlan(2, 1),
    }
    assert hub.scheduler(cfg.cameras[4]) is None


# ---- the fair queue ----------------------------------------------------------------------------


def _drain(q: FairQueue, n: int, refill: Callable[[str], bool]) -> list[str]:
    """Pop ``n`` jobs; after each pop the popped camera queues another if ``refill(camera)``."""
    order = []
    for _ in range(n):
        job = q.pop()
        if job is None:
            break
        order.append(job.camera_id)
        if refill(job.camera_id):
            q.push(InferenceJob(job.camera_id, lambda: None))
    return order


@pytest.mark.parametrize(
    ("rates", "share"),
    [
        ({"a": 5.0, "b": 5.0, "c": 5.0}, {"a": 100, "b": 100, "c": 100}),
        ({"a": 5.0, "b": 10.0}, {"a": 100, "b": 200}),
        ({"a": 2.0, "b": 4.0, "c": 6.0}, {"a": 50, "b": 100, "c": 150}),
    ],
)
def test_an_overloaded_box_gives_every_camera_the_same_fraction_of_its_rate(
    rates: dict[str, float], share: dict[str, int]
) -> None:
    q = FairQueue()
    for cid, rate in rates.items():
        q.add_camera(cid, rate)
        for _ in range(2):  # each camera keeps two frames queued, as the agent's cameras do
            q.push(InferenceJob(cid, lambda: None))
    served = Counter(_drain(q, sum(share.values()), lambda _c: True))
    assert all(abs(served[c] - share[c]) <= 1 for c in rates), served
    assert q.served() == {c: served[c] for c in rates}


def test_equal_cameras_take_turns() -> None:
    q = FairQueue()
    for cid in "abc":
        q.add_camera(cid, 10.0)
        q.push(InferenceJob(cid, lambda: None))
    assert _drain(q, 9, lambda _c: True) == list("abcabcabc")


def test_a_gated_camera_leaves_its_share_and_comes_back_level_not_with_a_burst() -> None:
    q = FairQueue()
    q.add_camera("busy", 10.0)
    q.add_camera("gated", 10.0)
    q.push(InferenceJob("busy", lambda: None))
    # Motion gating skips every frame of "gated" for a while: "busy" gets the whole model.
    assert _drain(q, 20, lambda c: c == "busy") == ["busy"] * 20
    # Something moves: "gated" queues frames again and takes turns with "busy" -- it does not get
    # the 20 inferences it "missed" in a row.
    for _ in range(3):
        q.push(InferenceJob("gated", lambda: None))
    order = _drain(q, 20, lambda _c: True)
    # Level within the frames it queued at once (start-time fair queuing lags by at most a queue).
    assert abs(order.count("gated") - order.count("busy")) <= 2, order
    assert "gated gated gated" not in " ".join(order), order


def test_queue_keeps_each_cameras_frames_in_order_and_forgets_removed_cameras() -> None:
    q = FairQueue()
    q.add_camera("a", 5.0)
    q.add_camera("b", 5.0)
    jobs = [InferenceJob(c, lambda: None) for c in "aabba"]
    for j in jobs:
        q.push(j)
    first = [q.pop() for _ in range(2)]
    assert first == [jobs[0], jobs[2]]
    left = q.remove_camera("a")
    assert left == [jobs[1], jobs[4]] and len(q) == 1
    with pytest.raises(KeyError, match="not registered"):
        q.push(InferenceJob("a", lambda: None))
    with pytest.raises(ValueError, match="rate must be > 0"):
        q.add_camera("z", 0.0)


# ---- the workers -------------------------------------------------------------------------------


class Hold:
    """A job that keeps its worker until released (a model that takes as long as the test wants)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.started.set()
        assert self.release.wait(30)


def test_scheduler_serves_queued_frames_by_fair_order() -> None:
    sched = InferenceScheduler("t", 1)
    try:
        sched.add_camera("hold", 1.0)
        sched.add_camera("a", 4.0)  # rates with exact binary periods: ties are real ties
        sched.add_camera("b", 8.0)
        hold = Hold()
        sched.submit("hold", hold)
        assert hold.started.wait(10)
        ran: list[str] = []
        jobs = [sched.submit(c, lambda c=c: ran.append(c)) for c in ["a"] * 4 + ["b"] * 8]  # type: ignore[misc]
        assert not sched.idle()
        hold.release.set()
        assert all(j.wait(10) for j in jobs)
        assert ran == ["a", "b", "b", "a", "b", "b", "a", "b", "b", "a", "b", "b"]  # b at twice a's rate
        assert sched.served() == {"hold": 1, "a": 4, "b": 8} and sched.jobs_run == 13
    finally:
        sched.stop()
    assert sched.idle()


def test_workers_run_frames_at_the_same_time() -> None:
    together = threading.Barrier(2, timeout=10)  # passes only when two jobs run at once
    sched = InferenceScheduler("t", 2)
    try:
        sched.add_camera("a", 5.0)
        sched.add_camera("b", 5.0)
        jobs = [sched.submit("a", together.wait), sched.submit("b", together.wait)]
        assert all(j.wait(15) for j in jobs)
        assert all(j.error is None for j in jobs)
    finally:
        sched.stop()


def test_busy_time_includes_the_running_job_up_to_the_reading() -> None:
    """Readings of busy time taken while a job runs split it at the reading: the bench's utilisation
    of a window can then never exceed 1 (a job that began before the window used to count whole)."""
    now = [0.0]
    sched = InferenceScheduler("t", 1, clock=lambda: now[0])
    try:
        sched.add_camera("a", 5.0)
        hold = Hold()
        job = sched.submit("a", hold)
        assert hold.started.wait(10)
        now[0] = 2.0
        first = sched.busy_until_now()
        now[0] = 5.0
        second = sched.busy_until_now()
        hold.release.set()
        assert job.wait(10)
        assert (first, second) == (2.0, 5.0)  # 2 s, then 3 s more, inside the same unfinished job
        assert sched.busy_s == 5.0 and sched.busy_until_now() == 5.0  # finished: counted once
    finally:
        sched.stop()


def test_a_failing_job_hands_its_error_to_the_camera_and_stop_cancels_what_is_left() -> None:
    sched = InferenceScheduler("t", 1)
    sched.add_camera("a", 5.0)

    def boom() -> None:
        raise RuntimeError("inference failed for model.onnx")

    job = sched.submit("a", boom)
    assert job.wait(10) and isinstance(job.error, RuntimeError)
    hold = Hold()
    sched.submit("a", hold)
    assert hold.started.wait(10)
    queued = sched.submit("a", lambda: None)
    sched.remove_camera("a")  # the camera goes (config reload): its queued frame is cancelled
    assert queued.wait(1) and queued.cancelled
    hold.release.set()
    sched.stop()
    late = sched.submit("a", lambda: None)
    assert late.done and late.cancelled  # nobody would run it: it never blocks its camera


# ---- the agent: three cameras on one model ------------------------------------------------------


class ListSource:
    """Frames from a list, then ENDED: a camera that plays a short recording."""

    def __init__(self, camera_id: str, images: list[np.ndarray]) -> None:
        self.items: list[Frame | SourceStatus] = [
            Frame(img, i + 1, 100.0 + i * 0.1, 1.8e9 + i * 0.1, camera_id) for i, img in enumerate(images)
        ]
        self.items.append(SourceStatus(camera_id, SourceState.ENDED, 1e9, 1.8e9 + 99, "end"))

    def read(self, timeout_s: float = 1.0) -> Frame | SourceStatus | None:
        return self.items.pop(0) if self.items else None

    def close(self) -> None:
        self.items = []


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(require_asset("media/intel_one-by-one-person-detection.mp4")))
    frames = []
    for i in range(400):
        ok, img = cap.read()
        assert ok
        if i >= 300 and i % 4 == 0:  # people in view
            frames.append(img)
    cap.release()
    return frames


@pytest.mark.assets
def test_three_cameras_share_one_session_and_get_the_detections_of_the_model_alone(
    tmp_path: Path, clip_frames: list[np.ndarray]
) -> None:
    from edge.agent.runner import Agent

    per_cam = {"a": clip_frames[0:12], "b": clip_frames[8:20], "c": clip_frames[16:25]}
    cfg = parse_config(
        {
            "config_version": 1, "device_id": "d", "site_id": "s",
            "cameras": [{"id": cid, "source": "0", "model": "yolox_nano_416", "detect_fps": 10} for cid in per_cam],
            "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
            "health": {"health_interval_s": 1e9},
        }
    )
    seen: dict[str, list[StepResult]] = {cid: [] for cid in per_cam}
    lock = threading.Lock()

    def on_step(result: StepResult) -> None:
        with lock:
            seen[result.frame.camera_id].append(result)

    agent = Agent(cfg, on_step=on_step, source_factory=lambda cam: ListSource(cam.id, per_cam[cam.id]))
    sessions: set[int] = set()
    groups: list[Any] = []

    def remember(result: StepResult) -> None:
        on_step(result)
        sessions.add(id(agent.cameras[result.frame.camera_id].pipeline.detector.session))  # type: ignore[attr-defined]
        if agent.inference is not None and not groups:
            groups.extend(agent.inference.schedulers())

    agent.on_step = remember
    assert agent.run() == 0
    assert len(sessions) == 1  # one model loaded for the three cameras
    assert len(groups) == 1 and groups[0].jobs_run == 12 + 12 + 9
    reference = OnnxDetector(load_manifest("yolox_nano_416"), DetectorConfig(threads=1))
    total = 0
    for cid, images in per_cam.items():
        results = seen[cid]
        assert [r.frame.seq for r in results] == list(range(1, len(images) + 1))  # every frame, in order
        for r, img in zip(results, images, strict=True):
            want = reference.detect_image(img)
            np.testing.assert_array_equal(r.detections.xyxy, want.xyxy)
            np.testing.assert_array_equal(r.detections.confidence, want.confidence)
            np.testing.assert_array_equal(r.detections.class_id, want.class_id)
            assert r.inferred and r.timing_ms["infer"] > 0 and r.timing_ms["latency"] >= r.timing_ms["infer"]
            total += len(want)
    assert total > 20  # people were detected: the comparison compared something


@pytest.mark.assets
def test_an_inference_failure_skips_that_frame_only(
    tmp_path: Path, clip_frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from edge.agent.runner import Agent
    from edge.errors import ModelError
    from edge.vision.runtime import OnnxSession

    cfg = parse_config(
        {
            "config_version": 1, "device_id": "d", "site_id": "s",
            "cameras": [{"id": "a", "source": "0", "model": "light_person_192"}],
            "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
            "health": {"health_interval_s": 1e9},
        }
    )
    real_run = OnnxSession.run
    calls = Counter[str]()

    def flaky(self: OnnxSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if threading.current_thread().name.startswith("infer-"):  # the shared workers, not the warm-up
            calls["infer"] += 1
            if calls["infer"] == 3:
                raise ModelError("inference failed for light_person_detector_kazuhito00.onnx: bad node")
        return real_run(self, feeds)

    monkeypatch.setattr(OnnxSession, "run", flaky)
    seqs: list[int] = []
    agent = Agent(cfg, on_step=lambda r: seqs.append(r.frame.seq), source_factory=lambda cam: ListSource(cam.id, clip_frames[:6]))
    assert agent.run() == 0
    assert seqs == [1, 2, 4, 5, 6]  # the third frame's inference failed; the camera went on
    assert agent.cameras["a"].errors == 1
    assert "pipeline error camera=a: inference failed" in caplog.text
