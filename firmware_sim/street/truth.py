"""Compare the events an agent emitted on the synthetic street with the scenario's ground truth.

Every expected episode (``Scenario.expected``) must be matched by exactly one episode start
(``phase`` ``start`` or ``instant``) of the same kind in the same zone, starting inside the
expected time window; any other start of a checked kind is spurious. A dispatch task must also
go through ``Scenario.task_phases`` (open -> acknowledged -> resolved) in its payload ``state``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from firmware_sim.street.scenario import ExpectedEpisode, Scenario

START_PHASES = ("start", "instant")
# Alarm kinds the street must not produce unless the scenario expects them.
ALWAYS_CHECKED = frozenset({"blacklisted_bike", "camera_tamper", "parking_violation", "bike_bay_overflow"})


def event_time(event: Mapping[str, Any], start_ts: float) -> float:
    """Video time (s since the street started) of an event dict's ``ts``."""
    ts = event.get("ts")
    if isinstance(ts, int | float):
        return float(ts) - start_ts
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() - start_ts


@dataclass(slots=True)
class EpisodeMatch:
    expected: ExpectedEpisode
    found_t: float | None = None
    incident_id: str | None = None
    states: list[str] = field(default_factory=list)  # dispatch task states seen, in order
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.found_t is not None and not self.problem


@dataclass(slots=True)
class TruthReport:
    matches: list[EpisodeMatch]
    spurious: list[tuple[str, str | None, float]]  # (kind, zone, t)

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.matches) and not self.spurious

    @property
    def found(self) -> int:
        return sum(1 for m in self.matches if m.ok)

    def lines(self) -> list[str]:
        out = []
        for m in self.matches:
            e = m.expected
            window = f"{e.t_min:6.1f}-{e.t_max:6.1f} s"
            if m.ok:
                got = f"found at {m.found_t:6.1f} s"
            elif m.found_t is None:
                got = "MISSING"
            else:
                got = f"at {m.found_t:6.1f} s but {m.problem}"
            extra = f" [{' > '.join(m.states)}]" if m.states else ""
            out.append(f"{e.kind:<18} {e.zone_id:<16} expected {window}  {got}{extra}  ({e.note})")
        for kind, zone, t in self.spurious:
            out.append(f"{kind:<18} {zone or '-':<16} SPURIOUS start at {t:6.1f} s")
        return out


def compare(events: Iterable[Mapping[str, Any]], scenario: Scenario, start_ts: float) -> TruthReport:
    """Match emitted events (``edge.event/1`` dicts, in emission order) against the ground truth."""
    kinds = {e.kind for e in scenario.expected} | ALWAYS_CHECKED
    matches = [EpisodeMatch(e) for e in sorted(scenario.expected, key=lambda e: (e.kind, e.t_min))]
    by_incident: dict[str, EpisodeMatch] = {}
    spurious: list[tuple[str, str | None, float]] = []
    for ev in events:
        kind = str(ev.get("kind"))
        if kind not in kinds:
            continue
        t = event_time(ev, start_ts)
        incident = str(ev.get("incident_id") or "")
        phase = ev.get("phase")
        payload = ev.get("payload") or {}
        if phase in START_PHASES and incident not in by_incident:
            zone = ev.get("zone_id")
            cands = [
                m
                for m in matches
                if m.found_t is None and m.expected.kind == kind and m.expected.zone_id == zone
            ]
            inside = [m for m in cands if m.expected.t_min <= t <= m.expected.t_max]
            if inside:
                m = inside[0]
            elif cands:  # the episode happened, but too early or too late
                m = cands[0]
                m.problem = f"outside its window (started {t:.1f} s)"
            else:
                spurious.append((kind, zone, round(t, 1)))
                continue
            m.found_t = round(t, 1)
            m.incident_id = incident
            by_incident[incident] = m
        match = by_incident.get(incident)
        if match is not None and kind == "dispatch_task":
            state = payload.get("state")
            if isinstance(state, str) and (not match.states or match.states[-1] != state):
                match.states.append(state)
    for m in matches:
        if m.expected.kind == "dispatch_task" and m.found_t is not None and not m.problem:
            want = list(scenario.task_phases)
            it = iter(m.states)
            if not all(any(s == w for s in it) for w in want):
                m.problem = f"task went {' > '.join(m.states) or 'nowhere'}, expected {' > '.join(want)}"
    return TruthReport(matches=matches, spurious=spurious)
