"""Scenario timelines (YAML) -> golden event sequences through the real tracker and rules.

Covered (one file each): a car parking, staying and leaving; a car hidden 20 s by a bus (one
violation); jitter on a zone edge; a schedule starting while a car is parked; a bay filling past
capacity with acknowledgement and automatic resolution; a re-opened task; bikes outside bays; a
blacklisted livery; a density surge and its clearing; in/out line crossings both ways; a queue at
a light in the zone's lane (no violation) beside a car at the kerb, a car alone in the lane and one
the queue moves off from (violations).
"""

from __future__ import annotations

import json

import pytest

from tests.analytics.scenario import HERE, check, load, run, run_cached

SCENARIOS = sorted(p.name for p in HERE.glob("*.yaml"))


def test_all_issue_scenarios_exist() -> None:
    assert set(SCENARIOS) >= {
        "parking_basic.yaml",
        "parking_bus_occlusion.yaml",
        "parking_edge_jitter.yaml",
        "parking_schedule_start.yaml",
        "bay_overflow_ack_resolve.yaml",
        "bay_task_reopen.yaml",
        "bikes_outside_bay.yaml",
        "blacklisted_livery.yaml",
        "crowd_surge.yaml",
        "line_crossings.yaml",
        "parking_queue_at_light.yaml",
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str) -> None:
    spec, res = run_cached(name)
    check(spec, res)
    for tr in res.transitions:
        json.dumps(dict(tr.payload))  # every payload is plain JSON
        if tr.phase != "instant":
            assert tr.started_ts is not None and tr.started_ts <= tr.ts


def test_bus_occlusion_without_place_memory_would_split_the_violation() -> None:
    """The same timeline with the stationary-place memory switched off gives two violations:
    this is what the memory prevents (and why the scenario above is a real test)."""
    spec = load("parking_bus_occlusion.yaml")
    spec["rules"]["tracker"] = {"place_memory_s": 1.0}
    res = run(spec)
    starts = [t for t in res.transitions if t.kind == "parking_violation" and t.phase == "start"]
    assert len(starts) == 1  # the second stay (from t=420) is shorter than the 300 s limit...
    ends = [t for t in res.transitions if t.kind == "parking_violation" and t.phase == "end"]
    assert ends[0].t < 460, "...and the first violation ends while the car is hidden"
    spec["duration_s"] = 1000
    spec["objects"][0]["track"][-1][0] = 900
    res = run(spec)
    starts = [t for t in res.transitions if t.kind == "parking_violation" and t.phase == "start"]
    assert (
        len({t.key for t in starts}) == 2 and starts[1].payload["track_id"] != starts[0].payload["track_id"]
    )


def test_edge_jitter_membership_enters_and_leaves_once() -> None:
    _spec, res = run_cached("parking_edge_jitter.yaml")
    zin = sum(r.payload["zones"]["np-1"]["in"] for r in res.features)
    zout = sum(r.payload["zones"]["np-1"]["out"] for r in res.features)
    assert (zin, zout) == (1, 1)


def test_edge_jitter_without_hysteresis_flickers() -> None:
    spec = load("parking_edge_jitter.yaml")
    spec["rules"]["membership"] = {"enter_s": 0, "exit_s": 0, "edge_margin": 0, "hold_unseen_s": 0}
    res = run(spec)
    zin = sum(r.payload["zones"]["np-1"]["in"] for r in res.features)
    assert zin > 5


def test_line_crossing_features_count_both_directions() -> None:
    _, res = run_cached("line_crossings.yaml")
    assert res.features, "a features record is due every 100 s"
    assert res.features[0].payload["lines"] == {"door": {"in": 3, "out": 2}}


def test_crowd_surge_fires_once_and_clears_once() -> None:
    _, res = run_cached("crowd_surge.yaml")
    phases = [t.phase for t in res.transitions if t.kind == "crowd_surge"]
    assert phases.count("start") == 1 and phases.count("end") == 1
    assert phases[0] == "start" and phases[-1] == "end"
    levels = [t.payload["los"] for t in res.transitions if t.kind == "crowd_surge" and t.phase == "update"]
    assert levels == sorted(levels), "updates report escalation only"


def test_dispatch_ack_reply() -> None:
    _, res = run_cached("bay_overflow_ack_resolve.yaml")
    assert res.replies == [
        {
            "task_id": res.replies[0]["task_id"],
            "state": "acknowledged",
            "changed": True,
            "time_to_acknowledge_s": 98.5,
        }
    ]


def test_without_its_lanes_the_queue_would_be_three_violations() -> None:
    """The queue scenario with the zone's lanes left out: today's rule sees the queue's three cars
    (and the car stuck behind the blocker) as parked, besides kerb, alone and blocker."""
    spec = load("parking_queue_at_light.yaml")
    spec["camera"]["zones"][0].pop("lanes")
    starts = [t for t in run(spec).transitions if t.kind == "parking_violation" and t.phase == "start"]
    assert sum(1 for t in starts if t.t < 80) == 3
    assert len(starts) == 3 + 1 + 3


def test_lanes_belong_to_no_parking_zones_only() -> None:
    from edge.config.zones import ZoneConfig

    lane = [[0.0, 0.4], [1.0, 0.4], [1.0, 0.6], [0.0, 0.6]]
    with pytest.raises(ValueError, match="lanes: only no_parking zones"):
        ZoneConfig.model_validate({"id": "b", "kind": "bike_bay", "capacity": 3, "polygon": lane, "lanes": [lane]})
    with pytest.raises(ValueError, match="at least 3 points"):
        ZoneConfig.model_validate({"id": "k", "kind": "no_parking", "polygon": lane, "lanes": [lane[:2]]})
