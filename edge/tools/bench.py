"""``edge-agent bench``: what this box can do with this model, with one camera or several.

Measured on real footage (the configured camera's file, ``--source``, or the shared assets' person
clip, optionally re-encoded at ``--frame-size``) with the configured model and zones (``--config``)
or a model and three zones (``--model``), on ``--cameras`` cameras that all play the clip:

1. capture + decode   frames/s the capture source (reader thread, cv2 decode) delivers;
2. tracker + rules    median ByteTracker + CameraAnalytics (rules and features) per frame,
                      on the real detections of the clip;
3. whole pipeline     the real ``Agent`` with every camera in video time, every frame inferred, in a
                      child process; ``--rounds`` segments of ``--seconds`` each (after a warm-up);
   bare inference     between the segments, with the agent paused (idle), in the same process:
                      ``session.run`` alone on a real frame of the clip, in the agent's thread layout
                      (``workers`` runs at once of ``threads`` threads each) and, with several cameras,
                      in every layout that fills the cores; so each round's ratio pipeline / bare
                      compares numbers taken side by side, and the rounds give the spread;
   full detect        pre-process + inference + decode + NMS of that frame in series;
4. CPU per frame      every thread's CPU time over the measured segments, by role (inference,
                      capture, detect, rules, pools): where the time goes, and -- when the cores are
                      full -- the ceiling that puts on pipeline / best bare;
5. peak RSS           the child's own peak resident memory after its first segment, before any bare
                      session is loaded (``VmHWM``; ``ru_maxrss`` would include the parent's peak,
                      which Linux carries across fork+exec); then again in children that play the
                      clip in real time through the capture's one-frame slot, as live cameras do (with
                      several cameras, also one alone: the memory each further camera adds);
6. per camera         each camera's frames/s and latency (p50/p95, from its frame's pre-processing to
                      the end of its rules: queueing for the shared inference included), flat out and
                      in the live-camera run (frames at the clip's rate: what a frame waits when the
                      box keeps up).

The sizing line divides the whole-pipeline fps, at 80 % load, by ``detect_fps``. Progress goes to
stderr (``progress=False``, ``--quiet``: none): a line per stage (``bench 1/4: ...``) and a bar over
step 3 (the child's tagged lines drive it; the child's other stderr is kept for the error message).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import parse_config
from edge.config.site import SiteConfig
from edge.errors import CaptureError, ConfigError
from edge.tools.assets import assets_dir, ensure_model_path
from edge.tools.progress import ProgressBar, stage
from edge.types import Frame, SourceStatus

log = logging.getLogger(__name__)

DEFAULT_CLIP = "media/intel_one-by-one-person-detection.mp4"
DEFAULT_MODEL = "yolox_nano_416"
# Lines the child writes on stderr for the parent's progress bar (everything else is log).
PROGRESS_TAG = "@bench-progress"
STAGE_TAG = "@bench-stage"
LOAD_FACTOR = 0.8  # leave 20 % of the CPU for capture spikes, uplink and the OS
WARM_S = 1.0  # the first second of an agent run (model warm-up, threads starting) is not measured
LIVE_S = 5.0  # seconds of the live-camera memory runs
SCALED_FRAMES = 300  # frames of the clip re-encoded for --frame-size (the cameras loop over them)
# Three zones over the shared clip's floor: where people come in, cross and leave.
BENCH_ZONES: list[dict[str, Any]] = [
    {"id": "entry", "kind": "count", "polygon": [[0.0, 0.3], [0.35, 0.3], [0.35, 1.0], [0.0, 1.0]]},
    {
        "id": "floor",
        "kind": "crowd",
        "area_m2": 20.0,
        "polygon": [[0.35, 0.3], [0.7, 0.3], [0.7, 1.0], [0.35, 1.0]],
    },
    {"id": "exit", "kind": "count", "polygon": [[0.7, 0.3], [1.0, 0.3], [1.0, 1.0], [0.7, 1.0]]},
]


@dataclass(frozen=True)
class BenchOptions:
    config: str | None = None
    model: str | None = None
    source: str | None = None
    seconds: float = 2.5  # of the agent per round (and of bare inference per layout per round)
    threads: int | None = None
    detect_fps: float | None = None
    cameras: int = 1
    rounds: int = 8
    frame_size: tuple[int, int] | None = None
    progress: bool = True  # stage lines and a progress bar on stderr


def bench_config(opts: BenchOptions) -> SiteConfig:
    """The config under test: ``--config``'s first camera, or ``--model`` with three zones; source resolved."""
    if opts.config:
        from edge.config import load_config

        base = load_config(opts.config)
        cam = base.cameras[0]
        source = opts.source or (
            cam.source if isinstance(cam.source, str) and Path(cam.source).is_file() else None
        )
        data = base.model_dump(mode="json")
        data["cameras"] = [data["cameras"][0]]
    else:
        source = opts.source
        data = {
            "config_version": 1,
            "device_id": "bench",
            "site_id": "bench",
            "cameras": [
                {"id": "bench", "source": "0", "model": opts.model or DEFAULT_MODEL, "zones": BENCH_ZONES}
            ],
        }
    if source is None:
        clip = assets_dir() / DEFAULT_CLIP
        if not clip.is_file():
            raise CaptureError(
                f"no footage to bench on: {clip} not found; pass --source VIDEO or set EDGE_ASSETS to the shared assets"
            )
        source = str(clip)
    if not Path(source).is_file():
        raise CaptureError(f"{source}: bench needs a video file; no such file")
    if opts.cameras < 1:
        raise ConfigError("bench needs at least one camera", ["--cameras: give 1 or more"])
    if opts.rounds < 1:
        raise ConfigError("bench needs at least one round", ["--rounds: give 1 or more"])
    cam = data["cameras"][0]
    # Every camera plays the clip in video time, looped, every frame inferred: the agent runs flat out
    # for --seconds and is then stopped.
    cam.update({"source": source, "playback": "video_time", "loop": True, "detect_fps": 60})
    if opts.threads is not None:
        cam.setdefault("detector", {})["threads"] = opts.threads
    if opts.cameras > 1:
        data["cameras"] = [{**cam, "id": f"{cam['id']}-{i}"} for i in range(opts.cameras)]
    tmp = Path(tempfile.gettempdir()) / f"edge-bench-{os.getpid()}"
    data["uplink"] = {"outbox_path": str(tmp / "outbox.sqlite")}
    data.pop("hardware", None)
    data["health"] = {**(data.get("health") or {}), "health_interval_s": 1e9}
    data["health"].pop("metrics", None)
    cfg = parse_config(data, source="bench")
    if cfg.cameras[0].model == "motion":
        raise ConfigError(
            "bench needs an ONNX model", ["model: bench measures an ONNX model; use --model NAME"]
        )
    return cfg


def measure_capture(cfg: SiteConfig, budget_s: float) -> dict[str, Any]:
    """Frames per second the capture source delivers when nobody waits for inference."""
    from edge.capture import open_source

    src = open_source(cfg.cameras[0])
    frames: list[np.ndarray] = []
    n = 0
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < budget_s:
            item = src.read(timeout_s=2.0)
            if item is None:
                break
            if isinstance(item, SourceStatus):
                if item.state.value == "ended":
                    break
                continue
            n += 1
            if n % 10 == 1 and len(frames) < 200:
                frames.append(item.image)
    finally:
        wall = time.perf_counter() - t0
        src.close()
    if n == 0:
        raise CaptureError(f"{cfg.cameras[0].source}: no frame decoded; is it a video cv2 can read?")
    h, w = frames[0].shape[:2]
    return {"fps": n / wall, "ms": wall * 1e3 / n, "frames": n, "size": f"{w}x{h}", "samples": frames}


def measure_analytics(cfg: SiteConfig, samples: list[np.ndarray], repeats: int) -> dict[str, Any]:
    """Median ms of tracker + rules + features per frame over real detections of the clip."""
    from edge.rules import CameraAnalytics
    from edge.tracking import ByteTracker
    from edge.vision.detector import build_detector

    cam = cfg.cameras[0]
    det = build_detector(cam)
    dets = [det.detect(Frame(img, i, 0.0, 0.0, cam.id)) for i, img in enumerate(samples)]
    tracker = ByteTracker(cfg.rules.tracker)
    analytics = CameraAnalytics(cam, cfg.rules, cfg.timezone)
    times: list[float] = []
    t = 0.0
    ts0 = time.time()
    for k in range(repeats):
        i = k % len(samples)
        frame = Frame(samples[i], k, t, ts0 + t, cam.id)
        t0 = time.perf_counter()
        tracks = tracker.update(dets[i], t)
        analytics.update(frame, tracks, None)
        analytics.feature_record(t, ts0 + t)
        times.append((time.perf_counter() - t0) * 1e3)
        t += 1.0 / cam.detect_fps if cam.detect_fps < 60 else 0.2
    return {
        "ms": statistics.median(times),
        "p95_ms": float(np.percentile(times, 95)),
        "objects": float(np.mean([len(d) for d in dets])),
    }


def scaled_clip(source: str, size: tuple[int, int], out_dir: Path, frames: int = SCALED_FRAMES) -> str:
    """The first ``frames`` frames of ``source`` re-encoded at ``size`` (MPEG-4 part 2): a camera of
    that resolution made from footage of another."""
    import cv2

    w, h = size
    out = out_dir / f"scaled-{w}x{h}-{Path(source).stem}.mp4"
    cap = cv2.VideoCapture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        cap.release()
        raise CaptureError(f"cannot write {out}: this OpenCV build has no MPEG-4 encoder; pass a {w}x{h} --source")
    n = 0
    try:
        while n < frames:
            ok, img = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR))
            n += 1
    finally:
        writer.release()
        cap.release()
    if n == 0:
        raise CaptureError(f"{source}: no frame decoded; is it a video cv2 can read?")
    return str(out)


#: Thread roles for the CPU breakdown, by thread name prefix; FFmpeg's decoder threads ("av:...") count
#: with capture, other unnamed native threads are onnxruntime's and OpenCV's pools.
ROLES = (
    ("infer-", "inference workers"),
    ("capture-", "capture + decode"),
    ("av:", "capture + decode"),
    ("detect-", "detect threads (gate, pre-processing)"),
    ("rules-", "rules threads (decoding, NMS, tracker, rules, events)"),
)


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by this process's threads, summed by role (Linux; {} elsewhere)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        name = names.get(int(tid))
        role = "other (main, uplink)" if name is not None else "onnxruntime / OpenCV pools"
        for prefix, what in ROLES:
            if (name or comm).startswith(prefix):
                role = what
        out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def others_cpu_s() -> float:
    """CPU seconds the whole machine has used (``/proc/stat``) minus this process's own: what other
    processes took. 0 where /proc is missing."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick - _process_cpu_s()


class AgentRun:
    """The real Agent over the config's cameras, in a thread, that can be paused between measured
    segments (so bare inference can be timed on an idle agent, interleaved with the agent's own).

    Pausing blocks every camera's rules thread in ``on_step``; the detect threads then stop for want
    of a slot, the inference workers finish what is queued and the whole agent idles. A segment is
    measured from the ``skip``-th frame after it resumes (the frames inferred during the pause are
    not counted) to the moment the pause is asked for.
    """

    def __init__(self, cfg: SiteConfig) -> None:
        from edge.agent.runner import Agent

        Path(cfg.uplink.outbox_path).unlink(missing_ok=True)
        self.cfg = cfg
        self.cameras = [c.id for c in cfg.cameras]
        self._cv = threading.Condition()
        self._paused = False
        self._blocked = 0
        self._measuring = False
        self._since_resume = 0
        self._skip = 3 * len(self.cameras)
        self.rows: list[tuple[str, dict[str, float]]] = []  # (camera, step timings) of measured frames
        self.measured_s = 0.0
        self.busy_s = 0.0
        self.cpu_s: dict[str, float] = {}  # thread CPU over the measured segments, by role
        self._from: float | None = None
        self._busy_from = 0.0
        self._cpu_from: dict[str, float] = {}
        self.others_s = 0.0  # CPU seconds other processes used during the measured segments
        self._others_from = 0.0
        self.started = False  # a first frame went through
        self.agent = Agent(cfg, on_step=self._on_step)
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, name="bench-agent", daemon=True)

    def _run(self) -> None:
        self.code = self.agent.run()
        with self._cv:
            self._cv.notify_all()

    def _busy(self) -> float:
        hub = self.agent.inference
        return sum(s.busy_until_now() for s in hub.schedulers()) if hub is not None else 0.0

    def workers(self) -> int:
        hub = self.agent.inference
        return sum(s.workers for s in hub.schedulers()) if hub is not None else 0

    def _on_step(self, result: Any) -> None:
        with self._cv:
            now = time.perf_counter()
            self.started = True
            self._since_resume += 1
            if self._measuring and self._from is None and self._since_resume > self._skip:
                self._from, self._busy_from, self._cpu_from = now, self._busy(), thread_cpu_s()
                self._others_from = others_cpu_s()
            elif self._measuring and self._from is not None:
                self.rows.append((result.frame.camera_id, result.timing_ms))
            if self._paused:  # park here until resumed; only the controller is told
                self._blocked += 1
                self._cv.notify_all()
                while self._paused:
                    self._cv.wait()
                self._blocked -= 1

    def _alive(self) -> None:
        if not self._thread.is_alive() or self.code is not None:
            raise CaptureError(f"the agent stopped on its own (exit code {self.code}); see its messages above")

    def start(self, warm_s: float = WARM_S) -> None:
        """Start the agent and let it run ``warm_s`` (model warm-up, threads starting), unmeasured."""
        self._thread.start()
        deadline = time.perf_counter() + 120.0
        with self._cv:
            while not self.started:
                self._alive()
                if time.perf_counter() > deadline:
                    raise CaptureError("the agent processed no frame within 120 s")
                self._cv.wait(0.2)
        time.sleep(warm_s)

    def segment(self, seconds: float) -> None:
        """Resume (if paused), measure ``seconds`` of steady state, pause and wait until idle."""
        with self._cv:
            self._paused = False
            self._since_resume = 0
            self._from = None
            self._measuring = True
            self._cv.notify_all()
        deadline = time.perf_counter() + 60.0
        while True:  # until the steady part has begun, then for ``seconds``
            with self._cv:
                start = self._from
            if start is not None or time.perf_counter() > deadline:
                break
            self._alive()
            time.sleep(0.01)
        if start is None:
            raise CaptureError("the agent processed no frame for 60 s")
        time.sleep(max(0.0, start + seconds - time.perf_counter()))
        with self._cv:
            now = time.perf_counter()
            self.measured_s += now - start
            self.busy_s += self._busy() - self._busy_from
            for role, v in thread_cpu_s().items():
                self.cpu_s[role] = self.cpu_s.get(role, 0.0) + v - self._cpu_from.get(role, 0.0)
            self.others_s += others_cpu_s() - self._others_from
            self._measuring = False
            self._paused = True
            while self._blocked < len(self.cameras):
                self._alive()
                self._cv.wait(0.2)
        self._wait_idle()

    def _wait_idle(self) -> None:
        hub = self.agent.inference
        for _ in range(500):
            if hub is None or all(s.idle() for s in hub.schedulers()):
                return
            time.sleep(0.01)

    def stop(self) -> None:
        self.agent.stop()
        with self._cv:
            self._paused = False
            self._cv.notify_all()
        self._thread.join(timeout=60.0)

    def summary(self, rows: list[tuple[str, dict[str, float]]], seconds: float, busy_s: float) -> dict[str, Any]:
        """Throughput, per-camera rates and latencies, step medians and worker occupancy of ``rows``
        (measured frames) over ``seconds`` of measured time."""
        per_camera: dict[str, dict[str, float]] = {}
        for cid in self.cameras:
            lat = [t["latency"] for c, t in rows if c == cid and "latency" in t]
            per_camera[cid] = {
                "fps": sum(1 for c, _ in rows if c == cid) / seconds,
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat else float("nan"),
                "latency_p95_ms": float(np.percentile(lat, 95)) if lat else float("nan"),
            }
        keys = sorted({k for _, t in rows for k in t})
        workers = self.workers()
        return {
            "fps": len(rows) / seconds,
            "frames": len(rows),
            "per_camera": per_camera,
            "step_ms": {k: statistics.median(t[k] for _, t in rows if k in t) for k in keys},
            "infer_busy": busy_s / (workers * seconds) if workers else None,
        }


def clip_frame(source: str, index: int = 100) -> np.ndarray:
    """Frame ``index`` of the clip (or its last one): a real frame with something in view."""
    import cv2

    cap = cv2.VideoCapture(source)
    frame: np.ndarray | None = None
    try:
        for _ in range(index + 1):
            ok, img = cap.read()
            if not ok:
                break
            frame = img
    finally:
        cap.release()
    if frame is None:
        raise CaptureError(f"{source}: no frame decoded; is it a video cv2 can read?")
    return frame


def bare_fps(session: Any, feeds: dict[str, np.ndarray], workers: int, seconds: float) -> tuple[float, float]:
    """(runs per second, CPU ms per run) of ``session.run`` alone with ``workers`` threads calling it at once."""
    counts = [0] * workers
    ends = [0.0] * workers
    gate = threading.Barrier(workers + 1)
    start: list[float] = []

    def loop(i: int) -> None:
        gate.wait()
        deadline = start[0] + seconds
        while True:
            session.run(feeds)
            counts[i] += 1
            ends[i] = time.perf_counter()
            if ends[i] >= deadline:
                return

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(workers)]
    for th in threads:
        th.start()
    cpu0 = _process_cpu_s()
    start.append(time.perf_counter())
    gate.wait()
    for th in threads:
        th.join()
    runs = sum(counts)
    return runs / (max(ends) - start[0]), (_process_cpu_s() - cpu0) * 1000.0 / runs


def _process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bare_layouts(cores: int, agent_layout: tuple[int, int], cameras: int) -> list[tuple[int, int]]:
    """(workers, threads) layouts to time bare: the agent's, and with several cameras every layout
    that fills the cores (one run of all threads, one single-thread run per core, and between)."""
    layouts = [agent_layout]
    if cameras > 1:
        for w in range(1, cores + 1):
            if cores % w == 0 and (w, cores // w) not in layouts:
                layouts.append((w, cores // w))
    return layouts


def layout_name(layout: tuple[int, int]) -> str:
    return f"{layout[0]}x{layout[1]}"


def pipeline_child(request: dict[str, Any]) -> dict[str, Any]:
    """One warm process: the real Agent, its measured segments alternating with bare ``session.run``
    in each layout (the agent paused meanwhile), so every ratio compares numbers taken side by side;
    peak RSS after the first segment (before any bare session exists); then the serial full-detect
    timing on a frame of the clip."""
    from edge.agent.inference import InferenceHub
    from edge.vision.bench import bench_model
    from edge.vision.detector import OnnxDetector
    from edge.vision.manifest import load_manifest
    from edge.vision.runtime import OnnxSession

    cfg = parse_config(request["config"], source="bench")
    seconds, rounds = float(request["seconds"]), int(request["rounds"])
    memory_only = bool(request.get("memory_only"))
    cam = cfg.cameras[0]
    n = len(cfg.cameras)
    cores = os.cpu_count() or 1
    plan = InferenceHub(cfg.cameras).plans[InferenceHub.key(cam)]
    agent_layout = (plan.workers, plan.threads)
    layouts = bare_layouts(cores, agent_layout, n)
    progress_out = bool(request.get("progress", True)) and not memory_only
    if progress_out:
        _child_stage(f"the agent with {n} camera(s): inference {plan.workers} worker(s) x {plan.threads} thread(s)")
    # The bar counts the planned seconds: each round, the agent's segment and one bare segment per layout.
    step_s = seconds * rounds * (1 + len(layouts))
    done_s = 0.0

    def advance(by_s: float) -> None:
        nonlocal done_s
        done_s += by_s
        if progress_out:
            print(f"{PROGRESS_TAG} {done_s:.2f} {step_s:.2f} {len(run.rows)}", file=sys.stderr, flush=True)

    run = AgentRun(cfg)
    runs: list[dict[str, Any]] = []
    bare: list[dict[str, float]] = []
    bare_cpu: list[dict[str, float]] = []
    sessions: dict[int, Any] = {}
    feeds: dict[str, np.ndarray] = {}
    rss_kb = 0.0
    frame: np.ndarray | None = None
    try:
        run.start()
        for r in range(rounds):
            before, busy0, measured0 = len(run.rows), run.busy_s, run.measured_s
            run.segment(seconds)
            runs.append(run.summary(run.rows[before:], run.measured_s - measured0, run.busy_s - busy0))
            if r == 0:
                rss_kb = peak_rss_kb()
                if memory_only:
                    return {"peak_rss_mb": rss_kb / 1024.0, "cameras": n, "fps": runs[0]["fps"], "per_camera": runs[0]["per_camera"]}
                frame = clip_frame(str(cam.source))  # read here: the agent keeps no frame for the bench
                det = OnnxDetector(load_manifest(cam.model), warmup=False)
                feeds = {k: v.copy() for k, v in det.pre(frame)[0].items()}
                path = det.session.path
                del det
                for _, threads in layouts:
                    if threads not in sessions:
                        sessions[threads] = OnnxSession(path, threads=threads, provider=cam.detector.provider)
                        for _ in range(3):
                            sessions[threads].run(feeds)
            advance(seconds)
            timed: dict[str, tuple[float, float]] = {}
            for x in layouts:
                timed[layout_name(x)] = bare_fps(sessions[x[1]], feeds, x[0], seconds)
                advance(seconds)
            bare.append({k: v[0] for k, v in timed.items()})
            bare_cpu.append({k: v[1] for k, v in timed.items()})
        total = run.summary(run.rows, run.measured_s, run.busy_s)
        total["cpu_ms_per_frame"] = {k: v * 1000.0 / max(1, total["frames"]) for k, v in run.cpu_s.items()}
        # /proc/stat counts in clock ticks while this process's CPU is exact: on an idle machine the
        # difference can dip a tick below zero, which is "nothing else ran", not a negative load.
        total["other_processes_cores"] = max(0.0, run.others_s / run.measured_s) if run.measured_s else 0.0
    finally:
        run.stop()
    assert frame is not None
    if progress_out:
        _child_stage("full detect in series (pre-processing + session.run + decoding) on a frame of the clip")
    full = bench_model(cam.model, plan.threads, frame, int(request.get("repeats", 50)))
    return {
        "runs": runs,
        "total": total,
        "bare": bare,
        "bare_cpu_ms": {k: statistics.median(b[k] for b in bare_cpu) for k in bare_cpu[0]},
        "agent_layout": layout_name(agent_layout),
        "threads": plan.threads,
        "workers": plan.workers,
        "peak_rss_mb": rss_kb / 1024.0,
        "model": str(full["model"]),
        "full_ms": float(full["full_ms"]),
        "full_bare_ms": float(full["bare_ms"]),
        "pre_ms": float(full["pre_ms"]),
        "post_ms": float(full["post_ms"]),
    }


def _quiet(_text: str) -> None:
    """No stage lines (``--quiet``)."""


def _child_stage(text: str) -> None:
    """A stage line from the child: the parent prints it (and ends the progress bar before it)."""
    print(f"{STAGE_TAG} {text}", file=sys.stderr, flush=True)


def measure_pipeline(cfg: SiteConfig, request: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """``pipeline_child`` in a child process (its peak RSS is then the agent's own); its progress
    lines drive a bar here, the rest of its stderr is kept for the error message."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.tools.bench", "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps({"config": cfg.model_dump(mode="json"), **request, "progress": progress}))
    proc.stdin.close()
    tail: list[str] = []
    bar: ProgressBar | None = None
    for line in proc.stderr:
        if line.startswith(PROGRESS_TAG):
            fields = line.split()
            done_s, total_s, frames = float(fields[1]), float(fields[2]), int(fields[3])
            if bar is None:
                bar = ProgressBar(total_s or None, label="  whole pipeline + bare inference", unit="s", rate=False)
            bar.update(done_s, frames=frames)
        elif line.startswith(STAGE_TAG):
            if bar is not None:
                bar.close()
                bar = None
            stage("  " + line[len(STAGE_TAG) :].strip())
        else:
            tail = [*tail[-7:], line.rstrip()]
    if bar is not None:
        bar.close()
    out = proc.stdout.read()
    code = proc.wait(timeout=3600)
    if code != 0:
        raise CaptureError(f"whole-pipeline run failed (exit {code}):\n" + "\n".join(tail))
    return dict(json.loads(out.strip().splitlines()[-1]))


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    ensure_model_path()
    say = stage if opts.progress else _quiet
    cfg = bench_config(opts)
    tmp = Path(cfg.uplink.outbox_path).parent
    if opts.frame_size is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        w, h = opts.frame_size
        say(f"bench: re-encoding {SCALED_FRAMES} frames of {cfg.cameras[0].source} at {w}x{h}")
        clip = scaled_clip(str(cfg.cameras[0].source), opts.frame_size, tmp)
        cfg = bench_config(BenchOptions(**{**opts.__dict__, "source": clip}))
    cam = cfg.cameras[0]
    n = len(cfg.cameras)
    repeats = max(10, min(200, int(opts.seconds * opts.rounds * 5)))
    budget = min(10.0, opts.seconds * opts.rounds / 2)
    say(f"bench 1/4: capture + decode of {cam.source} (up to {budget:g} s)")
    cap = measure_capture(cfg, budget)
    samples = cap.pop("samples")
    say(f"  {cap['fps']:.1f} fps decoded")
    say(f"bench 2/4: tracker + rules + features on {len(samples)} frames of the clip")
    ana = measure_analytics(cfg, samples, max(repeats, len(samples)))
    say(f"  {ana['ms']:.3f} ms per frame")
    say(
        f"bench 3/4: the whole agent, {opts.rounds} round(s) of {opts.seconds:g} s, each followed by bare "
        "inference with the agent paused (the longest step)"
    )
    request = {"seconds": opts.seconds, "rounds": opts.rounds, "repeats": repeats}
    pipe = measure_pipeline(cfg, request, opts.progress)
    live_s = min(LIVE_S, max(2.0, 2 * opts.seconds))
    say(f"bench 4/4: memory and latency as live cameras (the clip in real time, {live_s:g} s per run)")
    live_run = live_memory(cfg, n, live_s, progress=opts.progress)
    live = {n: float(live_run["peak_rss_mb"])}
    if n > 1:
        live[1] = float(live_memory(cfg, 1, live_s, progress=opts.progress)["peak_rss_mb"])
    agent_layout = pipe["agent_layout"]
    fps = [run["fps"] for run in pipe["runs"]]
    bare_same = [b[agent_layout] for b in pipe["bare"]]
    best_layout = max(pipe["bare"][0], key=lambda k: statistics.median(b[k] for b in pipe["bare"]))
    bare_best = [b[best_layout] for b in pipe["bare"]]
    over_bare = [f / b for f, b in zip(fps, bare_same, strict=True)]
    over_best = [f / max(b.values()) for f, b in zip(fps, pipe["bare"], strict=True)]
    run = pipe["total"]  # every measured frame of every round
    pipe_fps = statistics.median(fps)
    bare_fps_same = statistics.median(bare_same)
    detect_fps = opts.detect_fps
    if detect_fps is None:
        detect_fps = 5.0 if not opts.config else _configured_detect_fps(opts.config)
    cams = cameras_sustainable(pipe_fps, detect_fps)
    result: dict[str, Any] = {
        "machine": {
            "host": platform.node(),
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "model": pipe["model"],
        "threads": pipe["threads"],
        "cameras": n,
        "inference_layout": {"workers": pipe["workers"], "threads": pipe["threads"]},
        "rounds": len(fps),
        "seconds": opts.seconds,
        "source": cam.source,
        "frame_size": cap["size"],
        "zones": len(cam.zones),
        "capture_decode": {"fps": round(cap["fps"], 1), "ms": round(cap["ms"], 2)},
        "bare_inference": {"fps": round(bare_fps_same, 1), "ms": round(1000.0 / bare_fps_same, 2), "layout": agent_layout},
        "bare_layouts": {k: round(statistics.median(b[k] for b in pipe["bare"]), 1) for k in pipe["bare"][0]},
        "bare_best": {"layout": best_layout, "fps": round(statistics.median(bare_best), 1)},
        "full_detect": {
            "ms": round(pipe["full_ms"], 2),
            "fps": round(1000.0 / pipe["full_ms"], 1),
            "bare_ms": round(pipe["full_bare_ms"], 2),
            "pre_ms": round(pipe["pre_ms"], 2),
            "decode_ms": round(pipe["post_ms"], 2),
        },
        "tracker_rules_features": {
            "ms": round(ana["ms"], 3),
            "p95_ms": round(ana["p95_ms"], 3),
            "objects": round(ana["objects"], 1),
        },
        "whole_pipeline": {
            "fps": round(pipe_fps, 1),
            "ms": round(1000.0 / pipe_fps, 2),
            "frames": run["frames"],
            "step_ms": {k: round(v, 2) for k, v in run["step_ms"].items()},
            "infer_busy": None if run["infer_busy"] is None else round(run["infer_busy"], 3),
            "cpu_ms_per_frame": {k: round(v, 2) for k, v in sorted(run["cpu_ms_per_frame"].items())},
        },
        "other_processes_cores": round(run["other_processes_cores"], 2),
        "cpu": cpu_ceiling(run["cpu_ms_per_frame"], pipe["bare_cpu_ms"][best_layout], os.cpu_count() or 1, pipe_fps),
        "per_camera": {
            cid: {k: round(v, 2) for k, v in pc.items()} for cid, pc in run["per_camera"].items()
        },
        "per_round": [
            {
                "pipeline_fps": round(f, 1),
                "bare_fps": {k: round(v, 1) for k, v in b.items()},
                "over_bare": round(ob, 3),
                "over_best": round(obb, 3),
            }
            for f, b, ob, obb in zip(fps, pipe["bare"], over_bare, over_best, strict=True)
        ],
        "pipeline_over_bare": _spread(over_bare),
        "pipeline_over_best": _spread(over_best),
        "peak_rss_mb": round(pipe["peak_rss_mb"], 1),
        "detect_fps": detect_fps,
        "cameras_sustainable": cams,
        "summary": (
            f"this box can sustain {cams} camera(s) at {detect_fps:g} detect_fps with {pipe['model']} "
            f"({pipe_fps:.1f} fps whole pipeline, {LOAD_FACTOR:.0%} load)"
        ),
    }
    result["peak_rss_live_mb"] = {str(k): round(v, 1) for k, v in sorted(live.items())}
    result["live"] = {  # the same cameras at the clip's own frame rate: latency when nothing queues
        "fps": round(float(live_run["fps"]), 1),
        "per_camera": {
            cid: {k: round(v, 2) for k, v in pc.items()} for cid, pc in live_run["per_camera"].items()
        },
    }
    if n > 1:
        result["rss_per_extra_camera_live_mb"] = round((live[n] - live[1]) / (n - 1), 1)
    return result


def live_memory(cfg: SiteConfig, cameras: int, seconds: float = LIVE_S, progress: bool = True) -> dict[str, Any]:
    """Peak RSS (MB), fps and per-camera latency of the agent with ``cameras`` cameras playing the
    clip in real time: frames arrive at the clip's own rate through the capture's one-frame slot, as
    from live cameras."""
    if progress:
        stage(f"  the agent with {cameras} camera(s) as live cameras for {seconds:g} s")
    data = cfg.model_dump(mode="json")
    data["cameras"] = [{**c, "playback": "realtime"} for c in data["cameras"][:cameras]]
    request = {"seconds": seconds, "rounds": 1, "memory_only": True}
    return measure_pipeline(parse_config(data, source="bench"), request, progress)


def cpu_ceiling(per_frame: dict[str, float], bare_cpu_ms: float, cores: int, fps: float) -> dict[str, float]:
    """Where the CPU goes. When the pipeline keeps every core busy, its fps can be at most
    ``cores / CPU per frame``: the ratio to the best bare fps (``cores / bare CPU per run`` when bare
    inference fills the cores) is then bounded by ``bare CPU per run / pipeline CPU per frame``."""
    total = sum(per_frame.values())
    return {
        "ms_per_frame": round(total, 2),
        "inference_ms_per_frame": round(per_frame.get("inference workers", 0.0), 2),
        "bare_ms_per_run": round(bare_cpu_ms, 2),
        "cores_busy": round(total * fps / 1000.0, 2),
        "ceiling_over_best_bare": round(bare_cpu_ms / total, 3) if total else 0.0,
        "cores": cores,
    }


def peak_rss_kb() -> float:
    """Peak resident memory of this process image in KiB.

    ``VmHWM`` from /proc (reset by exec, so a child does not inherit its parent's peak -- Linux
    carries ``ru_maxrss`` across fork+exec); ``getrusage`` where /proc is missing.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cameras_sustainable(pipeline_fps: float, detect_fps: float, load: float = LOAD_FACTOR) -> int:
    """How many cameras at ``detect_fps`` fit in ``load`` of the measured whole-pipeline throughput."""
    if detect_fps <= 0:
        raise ValueError(f"detect_fps must be > 0, got {detect_fps}")
    return max(int(pipeline_fps * load / detect_fps + 1e-9), 0)


def _configured_detect_fps(path: str) -> float:
    from edge.config import load_config

    return float(load_config(path).cameras[0].detect_fps)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lay = r["inference_layout"]
    rows = [
        ("capture + decode (one camera)", f"{r['capture_decode']['ms']:.2f}", f"{r['capture_decode']['fps']:.1f}"),
        (
            f"bare inference, {r['bare_inference']['layout']}",
            f"{r['bare_inference']['ms']:.2f}",
            f"{r['bare_inference']['fps']:.1f}",
        ),
        ("full detect in series, 1 frame", f"{r['full_detect']['ms']:.2f}", f"{r['full_detect']['fps']:.1f}"),
        ("tracker + rules + features", f"{r['tracker_rules_features']['ms']:.3f}", ""),
        ("whole pipeline (agent)", f"{r['whole_pipeline']['ms']:.2f}", f"{r['whole_pipeline']['fps']:.1f}"),
    ]
    ob, obb = r["pipeline_over_bare"], r["pipeline_over_best"]
    lines = [
        f"edge-agent bench  {m['date_utc']}  {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']})  python {m['python']}",
        f"other processes used {r['other_processes_cores']:.2f} core(s) while the agent was measured"
        + ("  -- a loaded machine: every figure is lower than on a quiet one" if r["other_processes_cores"] >= 0.2 else ""),
        f"model {r['model']}  {r['cameras']} camera(s)  inference {lay['workers']} worker(s) x {lay['threads']} thread(s)"
        f"  {r['frame_size']}  {r['zones']} zones  source {r['source']}",
        "",
        f"{'stage (medians over ' + str(r['rounds']) + ' rounds)':<36}{'ms/frame':>10}{'fps':>9}",
        "-" * 55,
    ]
    lines += [f"{a:<36}{b:>10}{c:>9}" for a, b, c in rows]
    lines += [
        "-" * 55,
        f"whole pipeline / bare inference ({r['bare_inference']['layout']}): {ob['median']:.3f}"
        f"  (rounds {ob['min']:.3f}-{ob['max']:.3f})",
    ]
    if r["cameras"] > 1:
        layouts = "  ".join(f"{k} {v:.1f}" for k, v in r["bare_layouts"].items())
        lines.append(f"bare inference by layout (workers x threads), fps: {layouts}")
        lines.append(
            f"whole pipeline / best bare ({r['bare_best']['layout']}, {r['bare_best']['fps']:.1f} fps): "
            f"{obb['median']:.3f}  (rounds {obb['min']:.3f}-{obb['max']:.3f})"
        )
    live_pc = (r.get("live") or {}).get("per_camera", {})
    for cid, pc in r["per_camera"].items():
        lv = live_pc.get(cid)
        lines.append(
            f"  camera {cid}: {pc['fps']:.1f} fps, latency p50 {pc['latency_p50_ms']:.1f} ms, p95 {pc['latency_p95_ms']:.1f} ms"
            + (
                f"; as a live camera ({lv['fps']:.1f} fps): p50 {lv['latency_p50_ms']:.1f} ms, p95 {lv['latency_p95_ms']:.1f} ms"
                if lv
                else ""
            )
        )
    busy = r["whole_pipeline"].get("infer_busy")
    if busy is not None:
        lines.append(f"inference workers busy: {busy:.1%} of the time")
    cpu = r.get("cpu") or {}
    if cpu.get("ms_per_frame"):
        parts = "  ".join(f"{k} {v:.2f}" for k, v in r["whole_pipeline"]["cpu_ms_per_frame"].items())
        lines.append(f"CPU per frame {cpu['ms_per_frame']:.2f} ms: {parts}")
    if cpu.get("ms_per_frame") and cpu["cores_busy"] >= 0.9 * cpu["cores"]:  # CPU-bound: the ceiling applies
        lines.append(
            f"cores busy {cpu['cores_busy']:.2f} of {cpu['cores']}; bare inference takes {cpu['bare_ms_per_run']:.2f} ms CPU "
            f"per run, so with every core busy pipeline / best bare cannot pass {cpu['ceiling_over_best_bare']:.3f}"
        )
    steps = r["whole_pipeline"].get("step_ms") or {}
    if steps:
        lines.append("agent step medians (ms): " + "  ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    live = r.get("peak_rss_live_mb") or {}
    lines.append(
        f"peak RSS (agent, {r['cameras']} camera(s)): {r['peak_rss_mb']:.1f} MB flat out (video time); as live cameras: "
        + ", ".join(f"{v:.1f} MB with {k}" for k, v in live.items())
    )
    if "rss_per_extra_camera_live_mb" in r:
        lines.append(f"each further live camera adds {r['rss_per_extra_camera_live_mb']:.1f} MB")
    lines.append(r["summary"])
    return "\n".join(lines)


def _child_main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ensure_model_path()
    out = pipeline_child(json.loads(sys.stdin.read()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__" and "--child" in sys.argv:
    raise SystemExit(_child_main())
