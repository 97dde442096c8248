"""Sub-commands of the field tools: ``replay``, ``eval``, ``calibrate``, ``bench`` and ``report``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.tools import loops


def cmd_replay(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.tools.assets import ensure_model_path
    from edge.tools.replay import ReplayOptions, replay

    ensure_model_path()
    cfg = load_config(args.config)
    opts = ReplayOptions(
        source=args.source,
        out_dir=args.out,
        hold_s=args.hold,
        camera_id=args.camera,
        video=not args.no_video,
        frames_every_s=args.frames_every,
        progress=not args.quiet,
    )
    summary = replay(cfg, opts)
    print(json.dumps(summary, indent=2) if args.json else summary_text(summary))
    return 0


def summary_text(summary: dict[str, Any]) -> str:
    lines = [
        f"replayed {summary['frames']} frames ({summary['video_s']:.1f} s of video) in {summary['wall_s']:.1f} s "
        f"({summary['fps']:.1f} fps)",
        f"events: {summary['events']}  "
        + " ".join(f"{k}={v}" for k, v in sorted(summary["events_by_kind"].items())),
        "wrote:",
    ]
    lines += [f"  {p}" for p in summary["files"]]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from edge.tools.assets import ensure_model_path
    from edge.tools.eval import EvalOptions, run_eval
    from edge.tools.eval_report import format_report

    ensure_model_path()
    report = run_eval(
        EvalOptions(
            spec=args.spec,
            baseline=args.baseline,
            cases=tuple(args.case or ()),
            cache_dir=args.cache,
            config=args.config,
            baseline_model=args.baseline_model,
            progress=not args.quiet,
        )
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from edge.tools.assets import ensure_model_path
    from edge.tools.calibrate import CalibrateServer, CalibrateState

    ensure_model_path()
    state = CalibrateState.load(args.config, args.out, timeout_s=args.timeout)
    server = CalibrateServer(state, port=args.port)
    print(f"calibration page: {server.url}  (127.0.0.1 only; Ctrl-C to stop)", file=sys.stderr)
    print(
        f"saving writes {state.out_path or state.config_path}"
        + ("" if state.out_path else " (old file kept as .bak)"),
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.tools.bench import BenchOptions, format_table, run_bench

    result = run_bench(
        BenchOptions(
            config=args.config,
            model=args.model,
            source=args.source,
            seconds=args.seconds,
            threads=args.threads,
            detect_fps=args.detect_fps,
            cameras=args.cameras,
            rounds=args.rounds,
            frame_size=args.frame_size,
            progress=not args.quiet,
        )
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame size; write WIDTHxHEIGHT, e.g. 1920x1080") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be within 16..7680 x 16..4320")
    return w, h


def register(subparsers: Any) -> None:
    loops.register(subparsers)
    p = subparsers.add_parser(
        "replay",
        help="run the full pipeline over a recording and write events, features, pictures and a report",
        description="Run the site config's camera over a recorded video or still image, in video time, "
        "through the real agent (detector, tracker, rules, events) without publishing anything. "
        "Writes report.html (one page an operator can read: counts, density and level of service per "
        "zone, a timeline of events, the heat map, annotated key frames), the events and features as "
        "JSON lines, an annotated video and summary.json to --out.",
    )
    p.add_argument("--config", required=True, help="site config YAML (zones and rules to check)")
    p.add_argument(
        "--source", required=True, help="video file or still image to replay instead of the camera"
    )
    p.add_argument("--camera", default=None, help="camera id to replay (default: the first camera)")
    p.add_argument("--hold", type=float, default=None, help="for a still image: simulated seconds to hold it")
    p.add_argument("--out", default="replay-out", help="output directory (default ./replay-out)")
    p.add_argument("--no-video", action="store_true", help="write annotated JPEG frames instead of a video")
    p.add_argument(
        "--frames-every",
        type=float,
        default=None,
        help="also write an annotated JPEG every S seconds of video",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_replay)

    p = subparsers.add_parser(
        "eval",
        help="measure the pipeline's accuracy on a labelled set: per case figure, truth, error; MAE, precision/recall",
    )
    p.add_argument("spec", help="labelled-set spec YAML (see docs/accuracy.md), e.g. tests/accuracy/sets/crowd-photos.yaml")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also count with the bare detector on the same frames (the model alone at its own thresholds)",
    )
    p.add_argument("--baseline-model", default=None, help="bare detector's model (default: the camera's model)")
    p.add_argument("--case", action="append", help="run only this case id (repeatable)")
    p.add_argument("--config", default=None, help="run this site config instead of the spec's (compare settings)")
    p.add_argument(
        "--cache", default=None, help="folder to keep detections between runs (same model, settings and frame)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser(
        "calibrate",
        help="serve the calibration page on 127.0.0.1 to draw zones, lines and ground points",
        description="Serve a local page (127.0.0.1 only; reach it through an SSH tunnel) showing the "
        "camera's picture: draw and edit zones, exclusions and counting lines, set each zone's "
        "fields and schedule, click ground points and check them, preview detections and a live "
        "view, then save a validated config (comments kept, old file as .bak).",
    )
    p.add_argument("--config", required=True, help="site config YAML to edit")
    p.add_argument(
        "--out", default=None, help="write a new file instead of the config (default: same file + .bak)"
    )
    p.add_argument("--port", type=int, default=8470, help="local port (default 8470; 0 picks a free one)")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for a camera frame (default 10)"
    )
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser(
        "bench",
        help="measure capture, inference, pipeline fps and peak RSS on this box",
        description="Measure on real footage what this box sustains with this model: capture and "
        "decode, bare inference, full detection, tracker and rules, the whole agent on --cameras cameras "
        "(rounds interleaved with bare inference), its CPU by thread role, each camera's latency and its "
        "peak memory (also as live cameras); prints how many cameras fit at the configured detect_fps. "
        "Takes a minute or two; progress goes to stderr. Run it on an otherwise idle box.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--config", default=None, help="site config: bench its first camera's model, zones and source"
    )
    g.add_argument("--model", default=None, help="model manifest name or path (default yolox_nano_416)")
    p.add_argument("--source", default=None, help="video to decode (default: the shared assets' person clip)")
    p.add_argument(
        "--seconds",
        type=float,
        default=2.5,
        help="seconds of the agent measured per round, and of bare inference per layout (default 2.5)",
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the config's)")
    p.add_argument("--cameras", type=int, default=1, help="cameras on the box, all playing the clip (default 1)")
    p.add_argument(
        "--rounds", type=int, default=8, help="rounds of agent then bare inference, interleaved (default 8): the spread"
    )
    p.add_argument(
        "--frame-size", type=_frame_size, default=None, metavar="WxH", help="re-encode the clip at this size first, e.g. 1920x1080"
    )
    p.add_argument(
        "--detect-fps", type=float, default=None, help="detect_fps to size cameras for (default: config's)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no stage lines or progress bar on stderr")
    p.set_defaults(func=cmd_bench)
