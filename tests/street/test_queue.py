"""A queue is not parking, on the synthetic street: the real agent over ``sim://street?scenario=queue``
(a queue at a light in the kerb lane, through traffic beside it, then a car parked at the kerb)
against the scenario's own ground truth (firmware_sim/street/truth.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.agent.runner import Agent
from edge.config import SiteConfig, load_config
from edge.errors import CaptureError
from firmware_sim.street import StreetOptions, queue_scenario
from firmware_sim.street.source import DEFAULT_START_TS
from firmware_sim.street.truth import compare

SITE = Path(__file__).resolve().parents[1] / "accuracy" / "sets" / "street.site.yaml"


def _config(tmp_path: Path, camera: str) -> SiteConfig:
    cfg = load_config(SITE)
    cam = next(c for c in cfg.cameras if c.id == camera).model_copy(
        update={"source": "sim://street?scenario=queue"}
    )
    uplink = cfg.uplink.model_copy(update={"outbox_path": str(tmp_path / "outbox.sqlite")})
    health = cfg.health.model_copy(update={"health_interval_s": 1e9, "disk_path": str(tmp_path)})
    return cfg.model_copy(update={"cameras": [cam], "uplink": uplink, "health": health})


def _run(tmp_path: Path, camera: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    assert Agent(_config(tmp_path, camera), on_event=events.append).run() == 0
    return events


@pytest.mark.slow
def test_the_queue_at_the_light_is_not_parked_and_the_kerb_car_is(tmp_path: Path) -> None:
    events = _run(tmp_path, "street_lanes")
    report = compare(events, queue_scenario(), DEFAULT_START_TS)
    assert report.ok, "\n".join(report.lines())
    starts = [e for e in events if e["kind"] == "parking_violation" and e["phase"] == "start"]
    assert len(starts) == 1  # car-K only: the three queuing cars stood 82-90 s, past the 60 s limit


@pytest.mark.slow
def test_without_the_lane_the_queue_would_be_reported_as_parked(tmp_path: Path) -> None:
    events = _run(tmp_path, "street")
    assert not compare(events, queue_scenario(), DEFAULT_START_TS).ok
    starts = [e for e in events if e["kind"] == "parking_violation" and e["phase"] == "start"]
    assert len(starts) == 3  # car-K, and the two queuing cars inside the zone taken for parked ones


def test_an_unknown_street_scenario_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(CaptureError, match="unknown scenario 'jam'; use one of default, queue"):
        StreetOptions.from_url("sim://street?scenario=jam")
    assert StreetOptions.from_url("sim://street?scenario=queue").scenario == "queue"
