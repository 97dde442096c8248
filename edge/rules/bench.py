"""Benchmark of tracker + rules + features per frame (no model, no capture).

``python -m edge.rules.bench [--objects 50 300] [--frames 300]`` prints one line per object count;
``run_bench(n_objects, frames) -> BenchResult`` is what ``edge-agent bench`` calls.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig
from edge.rules.analytics import CameraAnalytics
from edge.tracking.tracker import ByteTracker
from edge.types import Detections

W, H = 1920, 1080


@dataclass(frozen=True, slots=True)
class BenchResult:
    objects: int
    frames: int
    tracker_ms: float  # median per frame
    rules_ms: float  # rules + features, median per frame
    total_ms: float  # median of the sum per frame
    p95_total_ms: float


def bench_camera() -> CameraConfig:
    """A camera with one zone of every kind, a counting line and a calibration."""
    return CameraConfig.model_validate(
        {
            "id": "bench",
            "source": "bench.mp4",
            "zones": [
                {
                    "id": "np",
                    "kind": "no_parking",
                    "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]],
                },
                {
                    "id": "bay",
                    "kind": "bike_bay",
                    "capacity": 10,
                    "polygon": [[0.5, 0.5], [0.75, 0.5], [0.75, 1.0], [0.5, 1.0]],
                },
                {
                    "id": "watch",
                    "kind": "bike_watch",
                    "polygon": [[0.45, 0.45], [0.8, 0.45], [0.8, 1.0], [0.45, 1.0]],
                },
                {
                    "id": "plaza",
                    "kind": "crowd",
                    "area_m2": 400,
                    "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]],
                },
                {"id": "all", "kind": "count", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]},
            ],
            "lines": [{"id": "door", "a": [0.5, 0.0], "b": [0.5, 0.5]}],
            "calibration": {
                "image_points": [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]],
                "ground_points_m": [[0.0, 30.0], [20.0, 30.0], [14.0, 0.0], [6.0, 0.0]],
            },
        }
    )


def _scene(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cls = rng.choice([0, 0, 0, 1, 3, 2], size=n).astype(np.int32)  # people, bikes, cars, motorcycles
    size = np.where(cls[:, None] == 3, [110.0, 70.0], np.where(cls[:, None] == 0, [30.0, 70.0], [45.0, 40.0]))
    pos = rng.uniform([60, 120], [W - 60, H - 10], size=(n, 2))
    vel = np.where(rng.random(n)[:, None] < 0.5, 0.0, rng.normal(0, 40, size=(n, 2)))
    return cls, size, pos, vel


def run_bench(n_objects: int = 50, frames: int = 300, fps: float = 10.0) -> BenchResult:
    cls, size, pos, vel = _scene(n_objects)
    rules = RulesConfig()
    cam = bench_camera()
    tracker = ByteTracker(rules.tracker)
    analytics = CameraAnalytics(cam, rules, "Asia/Shanghai")
    rng = np.random.default_rng(3)
    trk_ms: list[float] = []
    rul_ms: list[float] = []
    for i in range(frames):
        t = i / fps
        p = pos + vel * t
        p[:, 0] = np.mod(p[:, 0], W)
        p[:, 1] = np.clip(p[:, 1], size[:, 1] + 1, H - 1)
        jit = rng.normal(0, 1.0, size=(n_objects, 4))
        xyxy = np.c_[p[:, 0] - size[:, 0] / 2, p[:, 1] - size[:, 1], p[:, 0] + size[:, 0] / 2, p[:, 1]] + jit
        conf = np.where(rng.random(n_objects) < 0.1, 0.3, 0.85)
        dets = Detections.from_arrays(xyxy, conf, cls)
        t0 = time.perf_counter()
        tracks = tracker.update(dets, t)
        t1 = time.perf_counter()
        analytics.update_at(t, 1.7e9 + t, tracks, (W, H))
        analytics.feature_record(t, 1.7e9 + t)
        t2 = time.perf_counter()
        if i >= frames // 10:  # skip warm-up
            trk_ms.append((t1 - t0) * 1e3)
            rul_ms.append((t2 - t1) * 1e3)
    tot = np.add(trk_ms, rul_ms)
    return BenchResult(
        objects=n_objects,
        frames=frames,
        tracker_ms=round(float(np.median(trk_ms)), 3),
        rules_ms=round(float(np.median(rul_ms)), 3),
        total_ms=round(float(np.median(tot)), 3),
        p95_total_ms=round(float(np.percentile(tot, 95)), 3),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--objects", type=int, nargs="+", default=[50, 300])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for n in args.objects:
        r = run_bench(n, args.frames)
        if args.json:
            print(json.dumps(asdict(r)))
        else:
            print(
                f"{r.objects:4d} objects: tracker {r.tracker_ms:.2f} ms + rules/features {r.rules_ms:.2f} ms "
                f"= {r.total_ms:.2f} ms per frame (p95 {r.p95_total_ms:.2f} ms, {r.frames} frames)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
