"""``edge-agent doctor --config FILE``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.hardware.doctor import exit_code, format_table, run_doctor

    cfg = load_config(args.config)  # ConfigError -> exit 2 in edge.cli
    results = run_doctor(cfg, timeout_s=args.timeout)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(format_table(results))
    return exit_code(results)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor", help="self-test this box: camera, model, broker, disk, GPIO, serial devices, clock"
    )
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds each probe may take (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.set_defaults(func=cmd_doctor)
