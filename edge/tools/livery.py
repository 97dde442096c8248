"""``edge-agent livery learn``: an operator's livery from a few photos of its bikes, as a config block.

The technician photographs a few of the operator's bikes (and, better, a few other bikes that stand
at the site: private bikes, other operators) with the pole's camera or a phone, and runs::

    edge-agent livery learn --operator qingju --images photos/qingju/ --others photos/private/

Bikes are found by the detector (``--model``, default the config's or yolox_nano_416; ``--largest``
takes only the biggest bike of each photo, for close-ups), or listed in a crop file (``--crops
FILE.csv``: ``image,x1,y1,x2,y2,operator`` with normalised boxes; rows of this operator are the
examples, every other row an "other" bike). It prints the ``rules.bike.operators`` entry to paste
into the site config (hue range, saturation and value floors, coverage threshold), how well it
separates the examples from the others, and warnings; ``--json`` prints the same as JSON.
Exit codes: 0 learned, 2 bad input (no images, no bikes found, a grey livery).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("livery", help="bike-share liveries: learn an operator's colours from photos")
    sub = p.add_subparsers(dest="livery_command", metavar="SUBCOMMAND")
    lp = sub.add_parser(
        "learn",
        help="learn an operator's livery from example photos; prints the config block",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lp.add_argument("--operator", required=True, help="operator name as events and dispatch tasks name it")
    lp.add_argument(
        "--images", nargs="+", default=[], metavar="DIR|FILE", help="photos of the operator's bikes"
    )
    lp.add_argument(
        "--others",
        nargs="+",
        default=[],
        metavar="DIR|FILE",
        help="photos of other bikes at the site (private, other operators)",
    )
    lp.add_argument(
        "--crops", metavar="CSV", help="bike boxes instead of the detector: image,x1,y1,x2,y2,operator"
    )
    lp.add_argument(
        "--root",
        metavar="DIR",
        help="folder the crop file's image paths are relative to (default: the file's)",
    )
    lp.add_argument(
        "--config", metavar="FILE", help="site config: its first camera's model and detector settings"
    )
    lp.add_argument(
        "--model", default=None, help="detector model (default: the config's, else yolox_nano_416)"
    )
    lp.add_argument(
        "--threshold", type=float, default=0.3, help="bike detection score threshold (default 0.3)"
    )
    lp.add_argument("--largest", action="store_true", help="only the largest bike of each example photo")
    lp.add_argument("--json", action="store_true", help="print the result as JSON")
    lp.set_defaults(func=cmd_learn)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _image_files(items: Iterable[str], what: str) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in _IMAGE_EXT)
            if not found:
                raise ConfigError(f"{what} {p}: no .jpg/.png images in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"{what} {p}: no such file or folder")
    return out


def _read(path: Path) -> np.ndarray:
    from edge.vision.preprocess import read_image

    try:
        return read_image(str(path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _crop(img: np.ndarray, box: Iterable[float]) -> np.ndarray:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    a, b = round(max(0.0, x1) * w), round(max(0.0, y1) * h)
    c, d = round(min(1.0, x2) * w), round(min(1.0, y2) * h)
    return img[b:d, a:c]


def crops_from_file(path: str, root: str | None, operator: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(examples, others) from a crop list ``image,x1,y1,x2,y2,operator``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--crops {p}: no such file")
    base = Path(root) if root else p.parent
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    images: dict[str, np.ndarray] = {}
    with p.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.lstrip().startswith("#"))]
    need = {"image", "x1", "y1", "x2", "y2", "operator"}
    if not rows or not need <= set(rows[0]):
        raise ConfigError(f"--crops {p}: needs a header line {','.join(sorted(need))} and one row per bike")
    for n, r in enumerate(rows, start=2):
        try:
            box = [float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])]
        except (TypeError, ValueError):
            raise ConfigError(
                f"--crops {p}: row {n}: x1,y1,x2,y2 must be numbers (normalised 0..1)"
            ) from None
        if not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            raise ConfigError(f"--crops {p}: row {n}: box {box} is not x1 < x2, y1 < y2 within 0..1")
        name = r["image"]
        if name not in images:
            images[name] = _read(base / name)
        crop = _crop(images[name], box)
        (pos if (r.get("operator") or "").strip() == operator else neg).append(crop)
    return pos, neg


def _detector(args: argparse.Namespace) -> Any:
    from edge.config import load_config
    from edge.config.detector import DetectorConfig
    from edge.tools.assets import ensure_model_path
    from edge.vision.detector import OnnxDetector
    from edge.vision.manifest import load_manifest

    ensure_model_path()
    model, dcfg = args.model, None
    if args.config:
        cam = load_config(args.config).cameras[0]
        model = model or cam.model
        dcfg = cam.detector
    model = model or "yolox_nano_416"
    if model == "motion":
        raise ConfigError("livery learn needs an ONNX detector to find bikes; give --model or --crops")
    base = dcfg or DetectorConfig()
    return OnnxDetector(load_manifest(model), base.model_copy(update={"threshold": args.threshold}))


def crops_from_detector(det: Any, files: list[Path], largest: bool) -> tuple[list[np.ndarray], int]:
    """Bike crops (bicycle, motorcycle) the detector finds in each photo; and the photos without any."""
    from edge.classes import BICYCLE, MOTORCYCLE

    out: list[np.ndarray] = []
    empty = 0
    for f in files:
        img = _read(f)
        d = det.detect_image(img)
        keep = np.isin(d.class_id, [BICYCLE, MOTORCYCLE])
        boxes = d.xyxy[keep]
        if not len(boxes):
            empty += 1
            continue
        if largest:
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            boxes = boxes[[int(np.argmax(area))]]
        for x1, y1, x2, y2 in boxes.round().astype(int).tolist():
            out.append(img[max(0, y1) : y2, max(0, x1) : x2])
    return out, empty


def operator_yaml(op: Any) -> str:
    lo, hi = op.hue_deg
    return (
        f"      - {{name: {op.name}, hue_deg: [{lo:g}, {hi:g}], min_saturation: {op.min_saturation:g}, "
        f"min_value: {op.min_value:g}, min_fraction: {op.min_fraction:g}}}"
    )


def cmd_learn(args: argparse.Namespace) -> int:
    from edge.rules.livery import learn_operator

    if not 0.0 < args.threshold <= 1.0:
        raise ConfigError(f"--threshold {args.threshold} must be within 0..1")
    notes: list[str] = []
    if args.crops:
        pos, neg = crops_from_file(args.crops, args.root, args.operator)
        if args.images or args.others:
            notes.append("--images/--others are ignored with --crops")
    else:
        if not args.images:
            raise ConfigError("give --images (photos of the operator's bikes) or --crops FILE.csv")
        det = _detector(args)
        pos, empty = crops_from_detector(det, _image_files(args.images, "--images"), args.largest)
        if empty:
            notes.append(f"{empty} example photo(s) had no bike the detector found at score {args.threshold}")
        neg = []
        if args.others:
            neg, _ = crops_from_detector(det, _image_files(args.others, "--others"), False)
    if not pos:
        raise ConfigError(
            f"no bikes of {args.operator} found to learn from; check the photos or give --crops"
        )
    try:
        report = learn_operator(args.operator, pos, neg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    notes += report.notes
    op = report.operator
    if args.json:
        print(
            json.dumps(
                {
                    "operator": op.model_dump(mode="json"),
                    "examples": report.examples,
                    "others": report.others,
                    "examples_missed": report.missed,
                    "others_taken": report.taken,
                    "example_coverage": report.example_coverage,
                    "other_coverage": report.other_coverage,
                    "notes": notes,
                },
                indent=2,
            )
        )
        return 0
    pc = np.array(report.example_coverage)
    print(f"# livery of {op.name}: learned from {report.examples} bike(s), {report.others} other bike(s)")
    print(
        f"#   coverage of the examples: min {pc.min():.3f}, median {np.median(pc):.3f}; threshold {op.min_fraction:g}; "
        f"{report.missed} example(s) under it"
    )
    if report.others:
        oc = np.array(report.other_coverage)
        print(f"#   coverage of the others: max {oc.max():.3f}; {report.taken} of them over the threshold")
    for n in notes:
        print(f"#   note: {n}")
    print("rules:\n  bike:\n    operators:")
    print(operator_yaml(op))
    return 0
