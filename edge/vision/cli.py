"""``edge-agent detect`` and ``edge-agent model check`` (the vendor conformance kit).

Exit codes: 0 ok, 2 bad input or usage (unknown model, unreadable image), 1 conformance failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.classes import class_name
from edge.errors import ModelError


def register(subparsers: Any) -> None:
    """Add ``detect`` and ``model`` (with ``check`` and ``bench``) to the edge-agent parser."""
    p = subparsers.add_parser(
        "detect",
        help="run a model on images; prints one JSON line per image",
        description="Run a model on images. Prints one JSON line per image: "
        '{"image", "model", "detections": [{"label", "class", "score", "box": [x1, y1, x2, y2]}]}.',
    )
    p.add_argument("--model", default="yolox_nano_416", help="manifest name (models/<name>.yaml) or path")
    p.add_argument(
        "--threshold", type=float, default=None, help="score threshold for every class (default: manifest's)"
    )
    p.add_argument(
        "--annotate", metavar="DIR", default=None, help="also write <image>.png with boxes drawn into DIR"
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_detect)

    m = subparsers.add_parser("model", help="model tools: conformance check, benchmark")
    msub = m.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    c = msub.add_parser(
        "check",
        help="vendor conformance kit: compare a model with its manifest and run it",
        description="Load the graph, compare its inputs/outputs with the manifest, run a warm-up and the "
        "images, check outputs are finite and boxes fall inside the image, report latency. Exit 0 only if all holds.",
    )
    c.add_argument("model", help="manifest name or path")
    c.add_argument("--image", action="append", default=[], metavar="IMG", help="image to run (repeatable)")
    c.add_argument("--repeats", type=int, default=10, help="runs for the latency median (default 10)")
    c.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=cmd_model_check)
    b = msub.add_parser("bench", help="bare session.run vs full detect latency on a frame")
    b.add_argument("models", nargs="*", help="manifest names (default: the five shipped models)")
    b.add_argument("--image", default=None, help="frame (default: synthetic 1920x1080)")
    b.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    b.add_argument("--repeats", type=int, default=30)
    b.set_defaults(func=cmd_model_bench)
    m.set_defaults(func=lambda args: (m.print_help(), 2)[1])


def cmd_detect(args: argparse.Namespace) -> int:
    from edge.config.detector import DetectorConfig
    from edge.vision.detector import OnnxDetector
    from edge.vision.manifest import load_manifest
    from edge.vision.preprocess import read_image

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print(f"error: --threshold {args.threshold} must be within 0..1", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(args.model)
        det = OnnxDetector(
            manifest, DetectorConfig(threshold=args.threshold, threads=args.threads, keep_other=True)
        )
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rc = 0
    for path in args.images:
        try:
            img = read_image(path)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 2
            continue
        d = det.detect_image(img)
        dets = [
            {
                "label": manifest.labels[int(lid)],
                "class": class_name(int(cid)),
                "score": round(float(s), 4),
                "box": [round(float(v), 1) for v in box],
            }
            for box, s, cid, lid in zip(d.xyxy, d.confidence, d.class_id, d.label_id, strict=True)
        ]
        print(
            json.dumps(
                {"image": path, "model": det.name, "model_sha256": det.sha256_short, "detections": dets}
            ),
            flush=True,
        )
        if args.annotate:
            from edge.vision.annotate import draw, write_png

            write_png(Path(args.annotate) / (Path(path).stem + ".png"), draw(img, d, manifest.labels))
    return rc


def cmd_model_check(args: argparse.Namespace) -> int:
    from edge.vision.conformance import check_model
    from edge.vision.preprocess import read_image

    images = []
    for path in args.image:
        try:
            images.append((path, read_image(path)))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    report = check_model(args.model, images, threads=args.threads, repeats=args.repeats)
    if args.json:
        print(
            json.dumps(
                {
                    "model": report.model,
                    "ok": report.ok,
                    "problems": report.problems,
                    "info": report.info,
                    "latency_ms": report.latency_ms,
                    "detections": report.detections,
                }
            )
        )
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_model_bench(args: argparse.Namespace) -> int:
    from edge.vision.bench import SHIPPED, main

    argv = [
        *([args.image] if args.image else []),
        "--repeats",
        str(args.repeats),
        "--threads",
        *map(str, args.threads),
    ]
    argv += ["--model", *(args.models or SHIPPED)]
    try:
        return main(argv)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
