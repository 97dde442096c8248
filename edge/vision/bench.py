"""Latency of a model: bare ``session.run`` versus full detect (pre + inference + decode).

``python -m edge.vision.bench [IMAGE] [--repeats N]`` prints the table for every shipped model at
1 and 2 threads; the lead's ``edge-agent bench`` calls ``bench_model``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edge.config.detector import DetectorConfig
from edge.vision.detector import OnnxDetector
from edge.vision.manifest import load_manifest

SHIPPED = ("yolox_nano_416", "nanodet_plus_m_416", "picodet_xs_320", "deimv2_atto_320", "light_person_192")


def bench_model(ref: str, threads: int, image: np.ndarray, repeats: int) -> dict[str, float | str | int]:
    """Median ms of bare ``session.run`` and of the full detect on ``image`` (BGR uint8)."""
    det = OnnxDetector(load_manifest(ref), DetectorConfig(threads=threads))
    feeds, _ = det.pre(image)
    feeds = {k: v.copy() for k, v in feeds.items()}
    for _ in range(3):  # settle caches and thread pools
        det.session.run(feeds)
        det.detect_image(image)
    bare, full, pre, post = [], [], [], []
    for _ in range(repeats):  # interleaved so both see the same machine load
        t0 = time.perf_counter()
        det.session.run(feeds)
        t1 = time.perf_counter()
        det.detect_image(image)
        t2 = time.perf_counter()
        bare.append((t1 - t0) * 1e3)
        full.append((t2 - t1) * 1e3)
        pre.append(det.last_timing_ms["pre"])
        post.append(det.last_timing_ms["post"])
    b, f = statistics.median(bare), statistics.median(full)
    return {
        "model": det.name,
        "threads": threads,
        "bare_ms": round(b, 3),
        "full_ms": round(f, 3),
        "pre_ms": round(statistics.median(pre), 3),
        "post_ms": round(statistics.median(post), 3),
        "ratio": round(f / b, 3),
    }


def main(argv: list[str] | None = None) -> int:
    from edge.vision.preprocess import read_image

    p = argparse.ArgumentParser(prog="python -m edge.vision.bench", description=__doc__)
    p.add_argument("image", nargs="?", help="frame to use (default: a synthetic 1920x1080 frame)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", nargs="+", default=list(SHIPPED))
    args = p.parse_args(argv)
    img = (
        read_image(args.image)
        if args.image
        else np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8)
    )
    print("| model | threads | bare session.run ms | full detect ms | pre ms | decode ms | full/bare |")
    print("|---|---|---|---|---|---|---|")
    for ref in args.model:
        for t in args.threads:
            r = bench_model(ref, t, img, args.repeats)
            print(
                f"| {r['model']} | {t} | {r['bare_ms']:.2f} | {r['full_ms']:.2f} | {r['pre_ms']:.2f} | "
                f"{r['post_ms']:.2f} | {r['ratio']:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
