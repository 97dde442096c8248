"""The ``report`` sub-command (the closed-loop figures), for ``python -m city`` and ``edge-agent``
(through the ``edge.commands`` plug-in group).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="closed-loop figures from events: dispatch tasks per bay and operator, kerb violations and dwell",
        description=(
            "Per bay and per operator: tasks opened, time to acknowledge, time to resolution as seen by the "
            "camera, re-opened tasks; per kerb zone: violations, median and p95 dwell. SOURCE is a JSONL file "
            "of edge.event/1 envelopes or the reference consumer's database as sqlite:///path."
        ),
    )
    p.add_argument("source", help="events.jsonl, or sqlite:///path/to/consumer.db (SELECT envelope FROM events)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from city.loops import SourceError, build_report, read_events, render

    try:
        report = build_report(read_events(args.source))
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return 0
