"""``edge-agent bench``: what this box can do with this model.

Measured on real footage (the configured camera's file, ``--source``, or the shared
assets' person clip) with the configured model and zones (``--config``) or a model and
three zones (``--model``):

1. capture + decode   frames/s the capture source (reader thread, cv2 decode) delivers;
2. bare inference     median ``session.run`` on a real frame (engineer A's ``bench_model``), in the
                      pipeline's child process right after its run (same warm process, same load);
3. full detect        median pre-process + inference + decode + NMS on the same frame;
4. tracker + rules    median ByteTracker + CameraAnalytics (rules and features) per frame,
                      on the real detections of the clip;
5. whole pipeline     the real ``Agent`` over the clip in video time, every frame inferred,
                      in a child process so its peak RSS is the agent's own;
6. peak RSS           that child's own peak resident memory (``VmHWM``; ``ru_maxrss`` would include
                      the parent's peak, which Linux carries across fork+exec).

The sizing line divides the whole-pipeline fps, at 80 % load, by ``detect_fps``.
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
    seconds: float = 20.0
    threads: int | None = None
    detect_fps: float | None = None
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
    cam = data["cameras"][0]
    cam.update({"source": source, "playback": "video_time", "loop": False, "detect_fps": 60})
    if opts.threads is not None:
        cam.setdefault("detector", {})["threads"] = opts.threads
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


def pipeline_child(request: dict[str, Any]) -> dict[str, Any]:
    """Run the real Agent over the clip (fps between the first and last processed frame, own peak
    RSS), then -- in the same warm process, right after -- bare inference and full detect on a
    frame of the clip, so the ratio compares numbers taken under the same conditions."""
    from edge.agent.runner import Agent
    from edge.vision.bench import bench_model

    cfg = parse_config(request["config"], source="bench")
    Path(cfg.uplink.outbox_path).unlink(missing_ok=True)
    cam = cfg.cameras[0]
    stamps: list[float] = []
    infer_ms: list[float] = []
    step_ms: dict[str, list[float]] = {}
    frames: list[np.ndarray] = []
    agent: Any = None
    total_s = _video_seconds(str(cam.source))
    progress_out = request.get("progress", True)
    last = [-1]
    t0: list[float] = []

    def on_step(result: Any) -> None:
        stamps.append(time.perf_counter())
        if progress_out:
            if not t0:
                t0.append(result.frame.t)
            video_s = result.frame.t - t0[0]
            pct = int(100 * video_s / total_s) if total_s else int(video_s)
            if pct > last[0]:  # one line per percent (or per video second when the length is unknown)
                last[0] = pct
                print(
                    f"{PROGRESS_TAG} {video_s:.2f} {total_s or 0:.2f} {len(stamps)}", file=sys.stderr, flush=True
                )
        for k, v in result.timing_ms.items():
            step_ms.setdefault(k, []).append(float(v))
        if len(stamps) == 100 or not frames:
            frames[:] = [result.frame.image]
        det = (
            agent.cameras[cam.id].pipeline.detector if agent is not None and cam.id in agent.cameras else None
        )
        timing = getattr(det, "last_timing_ms", None)
        if timing and result.inferred:
            infer_ms.append(float(timing.get("infer", 0.0)))

    agent = Agent(cfg, on_step=on_step)
    code = agent.run()
    rss_kb = peak_rss_kb()
    if progress_out and code == 0 and total_s:  # the file ended: the whole clip went through
        print(f"{PROGRESS_TAG} {total_s:.2f} {total_s:.2f} {len(stamps)}", file=sys.stderr, flush=True)
    if len(stamps) < 3:
        raise CaptureError(f"the agent processed only {len(stamps)} frames (exit code {code})")
    # Skip the first frames: model warm-up and thread start are not steady state.
    skip = min(10, len(stamps) // 5)
    fps = (len(stamps) - 1 - skip) / (stamps[-1] - stamps[skip])
    threads = cam.detector.threads or os.cpu_count() or 1
    if progress_out:
        print(f"{STAGE_TAG} bare inference and full detect on a frame of the clip", file=sys.stderr, flush=True)
    inf = bench_model(cam.model, threads, frames[0], int(request.get("repeats", 50)))
    return {
        "fps": fps,
        "frames": len(stamps),
        "infer_in_pipeline_ms": statistics.median(infer_ms[skip:]) if len(infer_ms) > skip else None,
        "peak_rss_mb": rss_kb / 1024.0,
        "exit_code": code,
        "step_ms": {k: statistics.median(v[skip:]) for k, v in step_ms.items() if len(v) > skip},
        "bare_ms": float(inf["bare_ms"]),
        "full_ms": float(inf["full_ms"]),
        "threads": threads,
        "model": str(inf["model"]),
    }


def _video_seconds(source: str) -> float | None:
    import cv2

    cap = cv2.VideoCapture(source)
    try:
        n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
        return float(n / fps) if n > 0 and fps > 0 else None
    finally:
        cap.release()


def measure_pipeline(cfg: SiteConfig, repeats: int, progress: bool = True) -> dict[str, Any]:
    """The whole agent in a child process; its progress lines drive a bar here, the rest of its
    stderr is kept for the error message."""
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.tools.bench", "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps({"config": cfg.model_dump(mode="json"), "repeats": repeats, "progress": progress}))
    proc.stdin.close()
    tail: list[str] = []
    bar: ProgressBar | None = None
    for line in proc.stderr:
        if line.startswith(PROGRESS_TAG):
            fields = line.split()
            video_s, total_s, frames = float(fields[1]), float(fields[2]), int(fields[3])
            if bar is None:
                bar = ProgressBar(total_s or None, label="  whole pipeline")
            bar.update(video_s, frames=frames)
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
    code = proc.wait(timeout=1800)
    if code != 0:
        raise CaptureError(f"whole-pipeline run failed (exit {code}):\n" + "\n".join(tail))
    return dict(json.loads(out.strip().splitlines()[-1]))


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    ensure_model_path()
    cfg = bench_config(opts)
    cam = cfg.cameras[0]
    repeats = max(10, min(200, int(opts.seconds * 10)))
    say = stage if opts.progress else (lambda _text: None)
    say(f"bench 1/3: capture + decode of {cam.source} (up to {opts.seconds:g} s)")
    cap = measure_capture(cfg, opts.seconds)
    samples = cap.pop("samples")
    say(f"  {cap['fps']:.1f} fps decoded")
    say(f"bench 2/3: tracker + rules + features on {len(samples)} frames of the clip")
    ana = measure_analytics(cfg, samples, max(repeats, len(samples)))
    say(f"  {ana['ms']:.3f} ms per frame")
    say("bench 3/3: the whole agent over the clip, every frame inferred (the longest step)")
    pipe = measure_pipeline(cfg, repeats, opts.progress)
    bare_fps = 1000.0 / pipe["bare_ms"]
    detect_fps = opts.detect_fps
    if detect_fps is None:
        detect_fps = 5.0 if not opts.config else _configured_detect_fps(opts.config)
    cams = cameras_sustainable(pipe["fps"], detect_fps)
    return {
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
        "source": cam.source,
        "frame_size": cap["size"],
        "zones": len(cam.zones),
        "capture_decode": {"fps": round(cap["fps"], 1), "ms": round(cap["ms"], 2)},
        "bare_inference": {"fps": round(bare_fps, 1), "ms": round(pipe["bare_ms"], 2)},
        "full_detect": {"fps": round(1000.0 / pipe["full_ms"], 1), "ms": round(pipe["full_ms"], 2)},
        "tracker_rules_features": {
            "ms": round(ana["ms"], 3),
            "p95_ms": round(ana["p95_ms"], 3),
            "objects": round(ana["objects"], 1),
        },
        "whole_pipeline": {
            "fps": round(pipe["fps"], 1),
            "ms": round(1000.0 / pipe["fps"], 2),
            "frames": pipe["frames"],
            "step_ms": {k: round(v, 2) for k, v in pipe.get("step_ms", {}).items()},
            "infer_in_pipeline_ms": None
            if pipe["infer_in_pipeline_ms"] is None
            else round(pipe["infer_in_pipeline_ms"], 2),
        },
        "pipeline_over_bare": round(pipe["fps"] / bare_fps, 3),
        "peak_rss_mb": round(pipe["peak_rss_mb"], 1),
        "detect_fps": detect_fps,
        "cameras_sustainable": cams,
        "summary": (
            f"this box can sustain {cams} camera(s) at {detect_fps:g} detect_fps with {pipe['model']} "
            f"({pipe['fps']:.1f} fps whole pipeline, {LOAD_FACTOR:.0%} load)"
        ),
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
    rows = [
        ("capture + decode", f"{r['capture_decode']['ms']:.2f}", f"{r['capture_decode']['fps']:.1f}"),
        (
            "bare inference (session.run)",
            f"{r['bare_inference']['ms']:.2f}",
            f"{r['bare_inference']['fps']:.1f}",
        ),
        ("full detect (pre+infer+decode)", f"{r['full_detect']['ms']:.2f}", f"{r['full_detect']['fps']:.1f}"),
        ("tracker + rules + features", f"{r['tracker_rules_features']['ms']:.3f}", ""),
        ("whole pipeline (agent)", f"{r['whole_pipeline']['ms']:.2f}", f"{r['whole_pipeline']['fps']:.1f}"),
    ]
    lines = [
        f"edge-agent bench  {m['date_utc']}  {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']})  python {m['python']}",
        f"model {r['model']}  threads {r['threads']}  {r['frame_size']}  {r['zones']} zones  source {r['source']}",
        "",
        f"{'stage':<32}{'ms/frame':>10}{'fps':>9}",
        "-" * 51,
    ]
    lines += [f"{a:<32}{b:>10}{c:>9}" for a, b, c in rows]
    lines += [
        "-" * 51,
        f"whole pipeline / bare inference: {r['pipeline_over_bare']:.3f}  (overhead {100 * (1 - r['pipeline_over_bare']):.1f} %)",
        f"peak RSS (agent): {r['peak_rss_mb']:.1f} MB",
    ]
    inside = r["whole_pipeline"].get("infer_in_pipeline_ms")
    if inside:
        share = inside / r["whole_pipeline"]["ms"]
        lines.append(f"session.run inside the agent: {inside:.2f} ms = {share:.0%} of each frame's time")
    steps = r["whole_pipeline"].get("step_ms") or {}
    if steps:
        rest = r["whole_pipeline"]["ms"] - sum(steps.values())
        parts = "  ".join(f"{k} {v:.2f}" for k, v in steps.items())
        lines.append(f"agent step medians (ms): {parts}  other (capture wait, events, outbox) {rest:.2f}")
    lines += [
        r["summary"],
    ]
    return "\n".join(lines)


def _child_main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ensure_model_path()
    out = pipeline_child(json.loads(sys.stdin.read()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__" and "--child" in sys.argv:
    raise SystemExit(_child_main())
