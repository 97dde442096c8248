"""The closed loop in figures, from the event stream alone.

Per bay and per operator (``dispatch_task`` events): tasks opened, openings (a task re-opens when
the overflow returns within ``reopen_s`` of its resolution), re-opened tasks, time to acknowledge
(opening -> ``ack_task``), time to resolution as seen by the camera (opening -> the camera saw the
bay at or under capacity for ``verify_s``; resolutions claimed by a ``resolve_task`` command are
counted apart) and tasks never resolved. A task counts for every operator it names (the operators
whose bikes were in the bay, and the bay's own operator), because each of them was asked to act.

Per kerb zone (``parking_violation`` events): violations (distinct incidents), still open, and
the dwell of each violation (its largest ``dwell_s``: the value at its ``end``) as median and p95.

Timestamps come from the payload (``opened_ts``, ``acknowledged_ts``, ``resolved_ts``): each
``dispatch_task`` message carries the whole history of its current opening, so a lost update
changes nothing. Messages are deduplicated on ``event_id`` (delivery is at least once).
Percentiles interpolate linearly between order statistics (numpy's default "linear" method).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SourceError(ValueError):
    """The event source cannot be read; the message says what to check."""


# ----------------------------------------------------------------------------- reading
def read_events(source: str) -> Iterator[dict[str, Any]]:
    """Events from a JSONL file, or from the consumer's database ``sqlite:///path`` (``SELECT envelope FROM events``)."""
    if source.startswith("sqlite:///"):
        yield from _read_sqlite(source[len("sqlite:///") :])
        return
    path = Path(source)
    try:
        f = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file; give a JSONL file of events or sqlite:///path/to/consumer.db") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise SourceError(f"{path}:{i}: not a JSON line ({exc})") from None
            if isinstance(doc, dict):
                yield doc


def _read_sqlite(path_text: str) -> Iterator[dict[str, Any]]:
    path = Path(path_text)
    if not path.exists():
        raise SourceError(f"{path}: no such database file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"{path}: cannot open the database ({exc})") from None
    try:
        try:
            rows = db.execute("SELECT envelope FROM events")
        except sqlite3.Error as exc:
            raise SourceError(
                f"{path}: no table events with a column envelope ({exc}); is this the reference consumer's database?"
            ) from None
        for (raw,) in rows:
            text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if isinstance(doc, dict):
                yield doc
    finally:
        db.close()


def _dedupe_sorted(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[str] = set()
    out = []
    for ev in events:
        eid = str(ev.get("event_id"))
        if eid in seen:
            continue
        seen.add(eid)
        out.append(ev)
    out.sort(key=lambda e: (str(e.get("ts")), int(e.get("seq") or 0)))
    return out


# ----------------------------------------------------------------------------- statistics
def percentile(values: Iterable[float], q: float) -> float | None:
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Spread:
    n: int
    median: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        xs = [float(v) for v in values]
        return cls(len(xs), percentile(xs, 50), percentile(xs, 95), max(xs) if xs else None)


# ----------------------------------------------------------------------------- dispatch tasks
@dataclass
class Opening:
    """One opening of a task (the first, or a re-opening)."""

    opened_ts: float
    acknowledged_ts: float | None = None
    resolved_ts: float | None = None
    resolved_by: str | None = None

    @property
    def time_to_acknowledge_s(self) -> float | None:
        return None if self.acknowledged_ts is None else self.acknowledged_ts - self.opened_ts

    @property
    def time_to_resolve_s(self) -> float | None:
        return None if self.resolved_ts is None else self.resolved_ts - self.opened_ts


@dataclass
class Task:
    incident_id: str
    task_id: str
    bay_id: str
    operators: list[str] = field(default_factory=list)
    openings: dict[int, Opening] = field(default_factory=dict)  # reopen_count -> opening
    closed: bool = False

    @property
    def reopened(self) -> bool:
        return len(self.openings) > 1 or any(k > 0 for k in self.openings)


def tasks_from(events: Iterable[Mapping[str, Any]]) -> list[Task]:
    tasks: dict[str, Task] = {}
    for ev in _dedupe_sorted(e for e in events if e.get("kind") == "dispatch_task"):
        p = ev.get("payload") or {}
        inc = str(ev.get("incident_id"))
        t = tasks.get(inc)
        if t is None:
            t = tasks[inc] = Task(inc, str(p.get("task_id")), str(p.get("bay_id") or ev.get("zone_id")))
        for op in p.get("operators") or []:
            if op not in t.operators:
                t.operators.append(str(op))
        k = int(p.get("reopen_count") or 0)
        opened = p.get("opened_ts")
        if opened is None:
            continue
        o = t.openings.get(k)
        if o is None:
            o = t.openings[k] = Opening(float(opened))
        if p.get("acknowledged_ts") is not None:
            o.acknowledged_ts = float(p["acknowledged_ts"])
        if p.get("resolved_ts") is not None:
            o.resolved_ts = float(p["resolved_ts"])
            o.resolved_by = p.get("resolved_by")
        if p.get("state") == "closed" or ev.get("phase") == "end":
            t.closed = True
    return list(tasks.values())


@dataclass(frozen=True, slots=True)
class LoopFigures:
    """Figures of one group of tasks (one bay, or one operator)."""

    tasks_opened: int
    openings: int
    reopened_tasks: int
    reopenings: int
    time_to_acknowledge_s: Spread
    unacknowledged: int
    time_to_resolve_camera_s: Spread
    resolved_by_command: int
    unresolved: int


def loop_figures(tasks: Iterable[Task]) -> LoopFigures:
    ts = list(tasks)
    openings = [o for t in ts for o in t.openings.values()]
    tta = [o.time_to_acknowledge_s for o in openings if o.time_to_acknowledge_s is not None]
    ttr = [o.time_to_resolve_s for o in openings if o.resolved_by == "camera" and o.time_to_resolve_s is not None]
    return LoopFigures(
        tasks_opened=len(ts),
        openings=len(openings),
        reopened_tasks=sum(1 for t in ts if t.reopened),
        reopenings=sum(max(0, len(t.openings) - 1) for t in ts),
        time_to_acknowledge_s=Spread.of(tta),
        unacknowledged=sum(1 for o in openings if o.acknowledged_ts is None),
        time_to_resolve_camera_s=Spread.of(ttr),
        resolved_by_command=sum(1 for o in openings if o.resolved_ts is not None and o.resolved_by != "camera"),
        unresolved=sum(1 for o in openings if o.resolved_ts is None),
    )


# ----------------------------------------------------------------------------- kerb zones
@dataclass(frozen=True, slots=True)
class KerbFigures:
    violations: int
    open: int
    dwell_s: Spread
    by_category: dict[str, int]


def kerb_figures(events: Iterable[Mapping[str, Any]]) -> dict[str, KerbFigures]:
    dwell: dict[tuple[str, str], float] = {}
    ended: set[tuple[str, str]] = set()
    category: dict[tuple[str, str], str] = {}
    for ev in _dedupe_sorted(e for e in events if e.get("kind") == "parking_violation"):
        key = (str(ev.get("zone_id")), str(ev.get("incident_id")))
        p = ev.get("payload") or {}
        if p.get("dwell_s") is not None:
            dwell[key] = max(dwell.get(key, 0.0), float(p["dwell_s"]))
        if p.get("case_category"):
            category[key] = str(p["case_category"])
        if ev.get("phase") == "end":
            ended.add(key)
    out: dict[str, KerbFigures] = {}
    for zone in sorted({z for z, _ in dwell}):
        keys = [k for k in dwell if k[0] == zone]
        cats: dict[str, int] = {}
        for k in keys:
            if k in category:
                cats[category[k]] = cats.get(category[k], 0) + 1
        out[zone] = KerbFigures(
            violations=len(keys),
            open=sum(1 for k in keys if k not in ended),
            dwell_s=Spread.of(dwell[k] for k in keys),
            by_category=cats,
        )
    return out


# ----------------------------------------------------------------------------- the report
@dataclass(frozen=True, slots=True)
class LoopReport:
    by_bay: dict[str, LoopFigures]
    by_operator: dict[str, LoopFigures]
    kerb: dict[str, KerbFigures]
    events: int

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "events": self.events,
            "by_bay": {k: asdict(v) for k, v in self.by_bay.items()},
            "by_operator": {k: asdict(v) for k, v in self.by_operator.items()},
            "kerb": {k: asdict(v) for k, v in self.kerb.items()},
        }


def build_report(events: Iterable[Mapping[str, Any]]) -> LoopReport:
    evs = list(events)
    tasks = tasks_from(evs)
    bays = sorted({t.bay_id for t in tasks})
    operators = sorted({op for t in tasks for op in t.operators})
    return LoopReport(
        by_bay={b: loop_figures(t for t in tasks if t.bay_id == b) for b in bays},
        by_operator={op: loop_figures(t for t in tasks if op in t.operators) for op in operators},
        kerb=kerb_figures(evs),
        events=len(evs),
    )


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def render(report: LoopReport) -> str:
    out = [f"closed loop from {report.events} event(s)", ""]
    head = (
        f"{'':<18} {'tasks':>5} {'opened':>6} {'re-opened':>9} {'ack n':>5} {'ack med s':>9} {'ack p95 s':>9} "
        f"{'unacked':>7} {'cam res n':>9} {'res med s':>9} {'res p95 s':>9} {'by cmd':>6} {'open':>5}"
    )
    for title, table in (("dispatch tasks by bay", report.by_bay), ("dispatch tasks by operator", report.by_operator)):
        out.append(title)
        out.append(head)
        for key, f in table.items():
            a, r = f.time_to_acknowledge_s, f.time_to_resolve_camera_s
            out.append(
                f"{key:<18} {f.tasks_opened:>5} {f.openings:>6} {f.reopened_tasks:>9} {a.n:>5} {_s(a.median):>9} "
                f"{_s(a.p95):>9} {f.unacknowledged:>7} {r.n:>9} {_s(r.median):>9} {_s(r.p95):>9} "
                f"{f.resolved_by_command:>6} {f.unresolved:>5}"
            )
        if not table:
            out.append("  (no dispatch tasks)")
        out.append("")
    out.append("kerb zones: parking violations")
    out.append(f"{'':<18} {'violations':>10} {'open':>5} {'dwell med s':>11} {'dwell p95 s':>11} {'dwell max s':>11}  categories")
    for zone, k in report.kerb.items():
        cats = ", ".join(f"{c} {n}" for c, n in sorted(k.by_category.items())) or "-"
        out.append(
            f"{zone:<18} {k.violations:>10} {k.open:>5} {_s(k.dwell_s.median):>11} {_s(k.dwell_s.p95):>11} "
            f"{_s(k.dwell_s.max):>11}  {cats}"
        )
    if not report.kerb:
        out.append("  (no parking violations)")
    out.append("")
    out.append(
        "opened = openings incl. re-openings; cam res = resolved as seen by the camera (time from opening); "
        "by cmd = resolutions claimed by a resolve_task command; open = openings not resolved"
    )
    return "\n".join(out)


# ----------------------------------------------------------------------------- the command
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
