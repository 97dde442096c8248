"""The ground-truth comparison: found, missing, late, spurious, task phases."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim.street.scenario import ExpectedEpisode, Scenario
from firmware_sim.street.truth import compare, event_time

START = 1_000_000.0
EXPECTED = (
    ExpectedEpisode("parking_violation", "kerb", 60.0, 90.0, "car-A"),
    ExpectedEpisode("dispatch_task", "bay", 100.0, 130.0, "task"),
)
SCENARIO = Scenario(actors=(), duration_s=300.0, expected=EXPECTED)


def ev(kind: str, phase: str, zone: str, t: float, incident: str, **payload: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "phase": phase,
        "zone_id": zone,
        "ts": START + t,
        "incident_id": incident,
        "payload": payload,
    }


GOOD = [
    ev("parking_violation", "start", "kerb", 70.0, "i1"),
    ev("parking_violation", "update", "kerb", 100.0, "i1"),
    ev("dispatch_task", "start", "bay", 110.0, "i2", state="open"),
    ev("dispatch_task", "update", "bay", 150.0, "i2", state="acknowledged"),
    ev("dispatch_task", "update", "bay", 200.0, "i2", state="resolved"),
    ev("parking_violation", "end", "kerb", 200.0, "i1"),
    ev("line_crossing", "instant", "line", 10.0, "x"),  # not a checked kind
]


def test_all_found() -> None:
    rep = compare(GOOD, SCENARIO, START)
    assert rep.ok and rep.found == 2 and not rep.spurious
    task = next(m for m in rep.matches if m.expected.kind == "dispatch_task")
    assert task.states == ["open", "acknowledged", "resolved"]


@pytest.mark.parametrize(
    ("events", "words"),
    [
        (GOOD[2:], "MISSING"),  # no violation at all
        ([ev("parking_violation", "start", "kerb", 95.0, "i1"), *GOOD[2:]], "outside its window"),
        ([*GOOD, ev("parking_violation", "start", "kerb", 240.0, "i9")], "SPURIOUS"),  # a second violation
        ([*GOOD, ev("parking_violation", "start", "other-zone", 70.0, "i8")], "SPURIOUS"),
        ([*GOOD, ev("blacklisted_bike", "instant", "bay", 70.0, "i7")], "SPURIOUS"),  # never expected here
        (
            [g for g in GOOD if g["payload"].get("state") != "acknowledged"],
            "expected open > acknowledged > resolved",
        ),
    ],
)
def test_mismatches_are_reported(events: list[dict[str, Any]], words: str) -> None:
    rep = compare(events, SCENARIO, START)
    assert not rep.ok
    assert any(words in line for line in rep.lines()), rep.lines()


def test_event_time_reads_iso_and_epoch() -> None:
    assert event_time({"ts": START + 12.5}, START) == pytest.approx(12.5)
    assert event_time({"ts": "1970-01-12T13:46:52.500Z"}, START) == pytest.approx(12.5)
