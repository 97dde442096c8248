"""Parking and queues on real photos held over time (COCO street photos in the shared assets) and on the
synthetic street: the parking-photos and street-dev labelled sets, measured by `edge-agent eval` and held
to README's rows (the "bare" column there is the same set with the zones' lanes left out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.tools.eval import EvalOptions, run_eval
from edge.tools.eval_report import format_report
from tests.accuracy.readme import REPO, row_for
from tests.fixtures.assets import require_asset

SETS = Path(__file__).resolve().parent / "sets"


def _eval(spec: str, config: str | None = None) -> dict:  # type: ignore[type-arg]
    report = run_eval(
        EvalOptions(spec=str(REPO / spec), config=str(SETS / config) if config else None, progress=False)
    )
    print(format_report(report))  # shown by pytest -rA / on failure
    return report


def _spurious(report: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {c["id"]: sum(1 for e in c["episodes"] if e["window"] is None) for c in report["cases"]}


@pytest.mark.assets
def test_parked_cars_are_violations_and_a_bus_queue_or_a_jam_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    media = require_asset("media/coco_val2017/000000006723.jpg")
    monkeypatch.setenv("EDGE_ASSETS", str(media.parents[2]))
    spec = "tests/accuracy/sets/parking-photos.yaml"
    row = row_for(spec)
    agg = _eval(spec)["aggregates"]["episodes"]
    assert agg == {"truth": 2, "found": 2, "spurious": 0, "recall": 1.0, "precision": 1.0}
    assert (agg["recall"], agg["precision"]) == (row.pipeline["recall"], row.pipeline["precision"])
    # The same photos with the zones' lanes left out: every queuing bus and car is "parked".
    without = _eval(spec, "variants/kerb-photos-no-lanes.site.yaml")
    spurious = _spurious(without)
    assert spurious["kerb_6723"] == 0 and spurious["junction_334371"] >= 3 and spurious["highway_1532"] >= 5
    assert without["aggregates"]["episodes"]["precision"] == pytest.approx(row.bare["precision"], abs=0.01)


@pytest.mark.slow
def test_the_street_every_episode_of_its_truth_and_no_queue() -> None:
    """Both street scenarios: the two parked cars, the overflow and its task, the two dumped bikes, the
    surge, and the car at the kerb beside the queue; nothing for the queue itself (without the lane: the
    two queuing cars in the zone are reported as parked)."""
    spec = "tests/accuracy/sets/street-dev.yaml"
    row = row_for(spec)
    agg = _eval(spec)["aggregates"]["episodes"]
    assert agg == {"truth": 8, "found": 8, "spurious": 0, "recall": 1.0, "precision": 1.0}
    assert (agg["recall"], agg["precision"]) == (row.pipeline["recall"], row.pipeline["precision"])
    without = _eval(spec, "variants/street-no-lanes.site.yaml")
    assert _spurious(without) == {"street_demo": 0, "street_queue": 2}
    assert without["aggregates"]["episodes"]["precision"] == pytest.approx(row.bare["precision"], abs=0.01)
