"""The simulated streams the fleet runs on: every payload matches the published schema, the
periodic records come at the configured cadence, and a dispatch task follows open -> acknowledged
(by command) -> resolved -> closed."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from edge.config.loader import load_config
from edge.events.builder import EventBuilder
from edge.events.schema import validate_event
from firmware_sim.streams import LOCAL, BoxStream
from tests.fleet.helpers import REPO

MORNING = dt.datetime(2026, 11, 23, 7, 0, tzinfo=LOCAL).timestamp()  # a Monday, school gate in force


@pytest.mark.parametrize("site", ["no-parking-street", "bike-bay", "plaza-crowd"])
def test_two_peak_hours_of_every_site_validate_and_keep_their_cadence(site: str) -> None:
    cfg = load_config(REPO / "configs" / f"{site}.yaml")
    stream = BoxStream(cfg, MORNING, seed=5)
    builder = EventBuilder(cfg.device_id, cfg.site_id, clock_quality=lambda: "ntp")  # validates every payload
    drafts = stream.advance(MORNING + 7200)
    kinds = collections.Counter(d.kind for d in drafts)
    for d in drafts[:: max(1, len(drafts) // 200)]:
        validate_event(builder.build(d).to_dict())
    for d in drafts:
        builder.build(d)
    assert [d.ts for d in drafts] == sorted(d.ts for d in drafts)
    periods = 7200 / cfg.rules.feature_interval_s
    assert abs(kinds["features"] - periods * len(cfg.cameras)) <= len(cfg.cameras)
    assert abs(kinds["device_health"] - 7200 / cfg.health.health_interval_s) <= 1
    expected = {"no-parking-street": "parking_violation", "bike-bay": "bike_bay_status", "plaza-crowd": "crowd_density"}
    assert kinds[expected[site]] >= 5, kinds


def test_a_dispatch_task_is_acknowledged_by_command_then_cleared_and_closed() -> None:
    cfg = load_config(REPO / "configs" / "bike-bay.yaml")
    stream = BoxStream(cfg, MORNING, seed=2)
    t = MORNING
    opened = []
    while not opened and t < MORNING + 4 * 3600:
        t += 60
        opened = [d for d in stream.advance(t) if d.kind == "dispatch_task" and d.phase == "start"]
    assert opened, "no overflow in four peak hours"
    task_id = opened[0].payload["task_id"]
    acked = stream.acknowledge(task_id, "ops-desk-2", t)
    assert [d.payload["state"] for d in acked] == ["acknowledged"] and acked[0].payload["acknowledged_by"] == "ops-desk-2"
    assert stream.acknowledge(task_id, "ops-desk-2", t + 1) == []  # a repeated ack_task changes nothing
    with pytest.raises(KeyError):
        stream.acknowledge("no-such-task", "x", t)
    later = [d for d in stream.advance(t + 3 * 3600) if d.kind == "dispatch_task" and d.payload["task_id"] == task_id]
    assert [(d.phase, d.payload["state"]) for d in later] == [("update", "resolved"), ("end", "closed")]
