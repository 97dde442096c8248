"""The people-counting sets of tests/accuracy/sets run through `edge-agent eval`, held to README's table.

Each figure may be at most ``TOL`` worse than the README's (onnxruntime's thread count changes float
rounding, which can flip a detection sitting exactly on the threshold; everything else is deterministic:
the same frames in video time, the same models). The pipeline is never worse than the bare detector on
the same frames. Without the shared assets these skip (fail under CI=true).
"""

from __future__ import annotations

import pytest

from edge.tools.eval import EvalOptions, run_eval
from edge.tools.eval_report import format_report
from tests.accuracy.readme import REPO, row_for
from tests.fixtures.assets import require_asset

pytestmark = [pytest.mark.assets, pytest.mark.slow]

TOL_COUNT = 0.2  # people, MAE over the set's figures
TOL_FRAME = 0.05  # people per labelled frame


def run(spec: str, baseline: bool = True) -> dict:
    report = run_eval(EvalOptions(spec=str(REPO / spec), baseline=baseline, progress=False))
    print(format_report(report))  # shown by pytest -rA / on failure: the table a developer would see
    return report


def test_crowd_photos() -> None:
    require_asset("eval-dev/crowd/counts.csv")
    require_asset("models/nanodet_plus_m_416_opencvzoo_2022nov_clean.onnx")
    spec = "tests/accuracy/sets/crowd-photos.yaml"
    readme = row_for(spec)
    a = run(spec)["aggregates"]["counts"]
    assert a["n"] == 15 and a["missing"] == 0
    assert a["mae"] <= readme.pipeline["MAE"] + TOL_COUNT, (a, readme)
    assert abs(a["baseline_mae"] - readme.bare["MAE"]) <= TOL_COUNT, (a, readme)
    assert a["mae"] < a["baseline_mae"], "the pipeline counts worse than its own model run bare"


def test_pedestrian_clip() -> None:
    require_asset("media/intel_one-by-one-person-detection.mp4")
    require_asset("models/yolox_nano_416.onnx")
    spec = "tests/accuracy/sets/people-video.yaml"
    readme = row_for(spec)
    report = run(spec)
    frames = report["aggregates"]["frames"]
    assert frames["n"] >= 130 and frames["missing"] == 0
    assert frames["mae"] <= readme.pipeline["per-frame MAE"] + TOL_FRAME, (frames, readme)
    assert frames["mae"] <= frames["baseline_mae"] + 1e-9, "worse than the bare detector on the same frames"
    lines = report["aggregates"]["lines"]
    assert lines["mae"] <= readme.pipeline["line MAE"], (lines, readme)


def test_synthetic_street_people() -> None:
    spec = "tests/accuracy/sets/street.yaml"
    readme = row_for(spec)
    report = run(spec, baseline=False)
    agg = report["aggregates"]
    assert agg["frames"]["n"] == 240
    assert agg["frames"]["mae"] <= readme.pipeline["per-frame MAE"] + TOL_FRAME, (agg, readme)
    assert agg["lines"]["mae"] <= readme.pipeline["line MAE"], (agg, readme)
    assert agg["episodes"]["recall"] >= readme.pipeline["recall"], (agg, readme)
    assert agg["episodes"]["precision"] >= readme.pipeline["precision"], (agg, readme)
