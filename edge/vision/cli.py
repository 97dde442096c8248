"""``edge-agent detect``, ``edge-agent model check`` (the vendor conformance kit), ``model bench``
and ``model quantize`` (an int8 model calibrated on the site's frames).

Exit codes: 0 ok, 2 bad input or usage (unknown model, unreadable image), 1 conformance failure
or, for ``quantize``, agreement with the float model below ``--min-agreement`` (nothing installed).
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
        '{"image", "model", "detections": [{"label", "class", "score", "box": [x1, y1, x2, y2]}]}. '
        "The model's own boxes (its decoder, thresholds and NMS); --merge-person-parts applies the agent's "
        "rule that a person boxed whole and from the waist up is one person.",
    )
    p.add_argument(
        "--merge-person-parts",
        action="store_true",
        help="drop a person box inside a larger one with the same top and centre, as the agent does",
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
    _register_quantize(msub)
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
            manifest,
            DetectorConfig(
                threshold=args.threshold,
                threads=args.threads,
                keep_other=True,
                merge_person_parts=args.merge_person_parts,
            ),
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


def _register_quantize(msub: Any) -> None:
    from edge.vision.manifest import SYSTEM_MODELS

    q = msub.add_parser(
        "quantize",
        help="static int8 model calibrated on frames from the site; reports speed-up and agreement",
        description="Make a static int8 (QDQ) copy of a model, calibrated on frames from the site's own camera "
        "(sampled evenly from a recording or a folder, pre-processed as the manifest says). Writes "
        "<name>_int8_site.onnx, its manifest and a JSON report into --out; reports the speed-up of bare "
        "session.run and the agreement with the float model on held-out frames. Exit 0 when agreement reaches "
        "--min-agreement (and, with --install, the model is installed), 1 when it does not (nothing is "
        "installed), 2 on bad input. Needs the onnx package: pip install edge[quantize].",
    )
    q.add_argument("model", help="the float model: manifest name or path")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", metavar="VIDEO", help="a recording from the site's camera")
    src.add_argument("--images", metavar="DIR", help="a folder of frames from the site's camera")
    test = q.add_mutually_exclusive_group()
    test.add_argument(
        "--test-source",
        metavar="VIDEO",
        help="judge agreement on frames of this recording instead of held-out frames of the calibration source",
    )
    test.add_argument("--test-images", metavar="DIR", help="judge agreement on this folder of frames instead")
    q.add_argument("--calib", type=int, default=64, help="calibration frames (default 64)")
    q.add_argument("--holdout", type=int, default=64, help="frames to judge agreement on (default 64)")
    q.add_argument(
        "--out",
        default="quantize-out",
        help="folder for the .onnx, manifest and report (default ./quantize-out)",
    )
    q.add_argument("--name", default=None, help="name of the new model (default <model>_int8_site)")
    q.add_argument(
        "--calibration",
        default="minmax-avg",
        help="range method: minmax-avg (default: per-frame extremes averaged), minmax, percentile, entropy "
        "(the last two hold every activation of every calibration frame in memory: several GB)",
    )
    q.add_argument(
        "--keep-float",
        default="auto",
        help="parts left float: 'auto' (default: the head, and the stem too when that gains agreement on the "
        "calibration frames), 'none', or a list such as 'stem,head'",
    )
    q.add_argument(
        "--min-agreement",
        type=float,
        default=0.95,
        help="fraction of float detections the int8 model must match at IoU >= 0.7 with the same class (default 0.95)",
    )
    q.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="inference threads for the timing, e.g. 1 2 (default: all cores)",
    )
    q.add_argument(
        "--repeats", type=int, default=20, help="timed runs of each model per thread count (default 20)"
    )
    q.add_argument(
        "--install", action="store_true", help="copy the model and manifest into --install-dir if it passes"
    )
    q.add_argument(
        "--install-dir",
        default=str(SYSTEM_MODELS),
        help=f"where --install puts them (default {SYSTEM_MODELS})",
    )
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.set_defaults(func=cmd_model_quantize)


def cmd_model_quantize(args: argparse.Namespace) -> int:
    from edge.errors import CaptureError
    from edge.vision.quantize import QuantizeOptions, install, quantize_model, require_onnx, take_frames

    kf = args.keep_float.strip().lower()
    keep: tuple[str, ...] | None = (
        None if kf == "auto" else () if kf == "none" else tuple(p.strip() for p in kf.split(",") if p.strip())
    )
    opts = QuantizeOptions(
        calib=args.calib,
        holdout=args.holdout,
        method=args.calibration,
        keep_float=keep,
        threads=tuple(args.threads) if args.threads else (None,),
        repeats=args.repeats,
        min_agreement=args.min_agreement,
        name=args.name,
    )
    try:
        opts.check()
        require_onnx()
        kind, path = ("video", args.source) if args.source else ("images", args.images)
        if args.test_source or args.test_images:
            calib, _ = take_frames(path, kind, opts.calib, 0)
            tkind, tpath = ("video", args.test_source) if args.test_source else ("images", args.test_images)
            _, holdout = take_frames(tpath, tkind, 0, opts.holdout)
        else:
            calib, holdout = take_frames(path, kind, opts.calib, opts.holdout)
        report = quantize_model(args.model, calib, holdout, Path(args.out), opts)
    except (ModelError, CaptureError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.passed and args.install:
        try:
            report.installed = install(report, Path(args.install_dir))
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(report.as_dict()) if args.json else report.text(), flush=True)
    if not report.passed:
        hint = "try more --calib frames or footage closer to the site" + (
            "" if "stem" in report.keep_float else ", or --keep-float stem,head"
        )
        if args.install:
            print(
                f"refused to install {report.name}: {report.verdict()}; nothing installed ({hint})",
                file=sys.stderr,
            )
        else:
            print(f"not fit to install: {report.verdict()} ({hint})", file=sys.stderr)
        return 1
    if report.installed:
        print(f"installed {' and '.join(report.installed)}", file=sys.stderr if args.json else sys.stdout)
    return 0
