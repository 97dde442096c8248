"""Parking and queues on real photos held over time (COCO street photos in the shared assets) and
on the synthetic street: what the parking-photos and street-dev labelled sets hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config.loader import load_config
from tests.accuracy import measure as M
from tests.fixtures.assets import require_asset

SETS = Path(__file__).resolve().parent / "sets"


def _without_lanes(spec: M.Spec) -> list[dict]:  # type: ignore[type-arg]
    cfg = load_config(spec.config_path)
    cams = [c.model_copy(update={"zones": [z.model_copy(update={"lanes": []}) for z in c.zones]}) for c in cfg.cameras]
    cfg = cfg.model_copy(update={"cameras": cams})
    kinds = frozenset(e["kind"] for c in spec.cases for e in (c.truth.get("episodes") or []))
    return [M.score_case(M.run_case(cfg, c), kinds) for c in spec.cases]


@pytest.mark.assets
def test_parked_cars_are_violations_and_a_bus_queue_or_a_jam_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    media = require_asset("media/coco_val2017/000000006723.jpg")
    monkeypatch.setenv("EDGE_ASSETS", str(media.parents[2]))
    spec = M.load_spec(SETS / "parking-photos.yaml")
    _, _, agg = M.run_spec(spec)
    assert agg["episodes"] == {"expected": 2, "found": 2, "spurious": 0, "precision": 1.0, "recall": 1.0}
    # The same photos with the zones' lanes left out: every queuing bus and car is "parked".
    spurious = {s["id"]: len(s["episodes"]["spurious"]) for s in _without_lanes(spec)}
    assert spurious["kerb_6723"] == 0 and spurious["junction_334371"] >= 3 and spurious["highway_1532"] >= 5


@pytest.mark.slow
def test_the_street_every_episode_of_its_truth_and_no_queue() -> None:
    """Both street scenarios: the two parked cars, the overflow and its task, the two dumped bikes,
    the surge, and the car at the kerb beside the queue; nothing for the queue itself."""
    _, _, agg = M.run_spec(M.load_spec(SETS / "street-dev.yaml"))
    assert agg["episodes"] == {"expected": 8, "found": 8, "spurious": 0, "precision": 1.0, "recall": 1.0}
