"""``python -m firmware_sim street``: render the synthetic street to look at it.

python -m firmware_sim street --png street.png --at 300        # one frame at t = 300 s
python -m firmware_sim street --video street.mp4 --fps 5        # the whole scenario
python -m firmware_sim street --truth                           # what the agent must report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.types import Frame
from firmware_sim.street.render import StreetRenderer
from firmware_sim.street.scenario import default_scenario
from firmware_sim.street.source import StreetOptions, StreetSource


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "street", help="render the synthetic street (PNG frames, a video, or its ground truth)"
    )
    p.add_argument("--png", help="write one frame (at --at seconds) to this PNG file")
    p.add_argument("--at", type=float, default=300.0, help="video time of the --png frame (default 300 s)")
    p.add_argument("--video", help="write the whole scenario to this video file (.mp4 or .avi)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second of --video (default 5)")
    p.add_argument("--duration", type=float, default=None, help="cut the scenario after this many seconds")
    p.add_argument("--seed", type=int, default=0, help="sensor-noise seed")
    p.add_argument("--truth", action="store_true", help="print the episodes the agent must report")
    p.set_defaults(func=cmd_street)


def cmd_street(args: argparse.Namespace) -> int:
    import cv2

    scenario = default_scenario()
    did = False
    if args.truth:
        for e in scenario.expected:
            print(f"{e.kind:<18} {e.zone_id:<16} starts {e.t_min:6.1f}-{e.t_max:6.1f} s  {e.note}")
        for c in scenario.commands:
            print(f"command {c.name} for {c.zone_id} at {c.t:.1f} s")
        did = True
    if args.png:
        renderer = StreetRenderer(seed=args.seed)
        if not cv2.imwrite(args.png, renderer.render(scenario, args.at)):
            print(f"cannot write {args.png}", file=sys.stderr)
            return 1
        print(f"wrote {args.png} (t = {args.at:g} s)")
        did = True
    if args.video:
        src = StreetSource(
            "street",
            fps=args.fps,
            scenario=scenario,
            options=StreetOptions(seed=args.seed, duration_s=args.duration),
        )
        fourcc = cv2.VideoWriter.fourcc(*("mp4v" if Path(args.video).suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(args.video, fourcc, args.fps, (src.renderer.width, src.renderer.height))
        if not writer.isOpened():
            print(f"cannot write {args.video}: no encoder for that file type; try .avi", file=sys.stderr)
            return 1
        n = 0
        while isinstance(frame := src.read(), Frame):
            writer.write(frame.image)
            n += 1
        writer.release()
        print(f"wrote {args.video}: {n} frames at {args.fps:g} fps")
        did = True
    if not did:
        print("nothing to do: give --png FILE, --video FILE or --truth", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.street")
    sub = parser.add_subparsers(dest="cmd", required=True)
    register(sub)
    args = parser.parse_args(["street", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))
