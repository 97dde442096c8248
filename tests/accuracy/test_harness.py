"""`edge-agent eval`: the spec format, its error messages, matching of episodes and bikes, and a real run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.errors import ConfigError
from edge.tools.eval import (
    EvalOptions,
    OperatorResult,
    attributed_bikes,
    match_episodes,
    match_operators,
    run_eval,
)
from edge.tools.eval_report import aggregates, format_report
from edge.tools.eval_spec import CaseSpec, load_spec
from tests.accuracy.readme import REPO, figures, row_for
from tests.fixtures.assets import require_asset

SITE = """
config_version: 1
device_id: t
site_id: t
cameras:
  - id: cam0
    source: replaced.jpg
    model: motion
    zones:
      - {id: whole, kind: crowd, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
uplink: {outbox_path: ./o.sqlite}
"""


def write_set(tmp_path: Path, spec: str, site: str = SITE) -> Path:
    (tmp_path / "site.yaml").write_text(site)
    p = tmp_path / "set.yaml"
    p.write_text(spec)
    return p


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("name: x\nconfig: site.yaml\ncases: []\n", "cases: list should have at least 1 item"),
        ("name: x\nconfig: site.yaml\ncases: [{id: a, media: a.jpg, bogus: 1}]\n", "cases[0].bogus: unknown key"),
        (
            "name: x\nconfig: site.yaml\ncases: [{id: a, media: a.jpg}, {id: a, media: b.jpg}]\n",
            "'a' is used twice",
        ),
        (
            "name: x\nconfig: site.yaml\ncases: [{id: a, media: a.jpg, truth: {episodes: [{kind: k, zone: z, start_s: [9, 3]}]}}]\n",
            "ends before it starts",
        ),
        (
            "name: x\nconfig: site.yaml\ncases: [{id: a, media: a.jpg, truth: {operators: [{box: [0.5, 0.2, 0.3, 0.6], operator: q}]}}]\n",
            "is not a box",
        ),
        ("name: x\nconfig: site.yaml\nmedia_root: ${NO_SUCH_VAR_12}\ncases: [{id: a, media: a.jpg}]\n", "NO_SUCH_VAR_12 is not set"),
        ("- just a list\n", "a spec is a YAML mapping"),
    ],
)
def test_bad_specs_name_the_problem(tmp_path: Path, spec: str, message: str) -> None:
    p = write_set(tmp_path, spec)
    with pytest.raises(ConfigError) as exc:
        load_spec(p)
    text = str(exc.value) + " " + " ".join(exc.value.problems)
    assert message in text, text


def test_the_cli_prints_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_set(tmp_path, "name: x\nconfig: site.yaml\ncases: [{id: a, media: a.jpg, oops: 1}]\n")
    assert main(["eval", str(p)]) == 2
    err = capsys.readouterr().err
    assert "cases[0].oops: unknown key" in err and "Traceback" not in err
    assert main(["eval", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_media_truth_and_labels_are_checked_before_running(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "still.png"), np.zeros((40, 60, 3), np.uint8))
    (tmp_path / "labels.csv").write_text("t_s,zone,class,count\n1.0,whole,person,2\n2.0,whole,person,many\n")
    cases = {
        "missing": ("{id: m, media: nope.jpg}", "media " + str(tmp_path / "nope.jpg") + " not found"),
        "zone": ("{id: z, media: still.png, truth: {counts: {plaza: {person: 1}}}}", "truth names zone 'plaza'; camera cam0 has whole"),
        "class": ("{id: c, media: still.png, truth: {counts: {whole: {people: 1}}}}", "truth names class 'people'"),
        "csv": ("{id: v, media: still.png, truth: {frame_counts: labels.csv}}", "row 3 is not t_s,zone,class,count"),
    }
    for name, (case, message) in cases.items():
        p = write_set(tmp_path, f"name: x\nconfig: site.yaml\ncases: [{case}]\n")
        with pytest.raises(Exception) as exc:  # ConfigError or CaptureError: both print one line
            run_eval(EvalOptions(spec=str(p), progress=False))
        assert message in str(exc.value), (name, str(exc.value))


def test_episodes_are_matched_by_kind_zone_and_start_window() -> None:
    case = CaseSpec.model_validate(
        {
            "id": "c",
            "media": "x.mp4",
            "truth": {
                "episodes": [
                    {"kind": "parking_violation", "zone": "kerb", "start_s": [60, 90]},
                    {"kind": "parking_violation", "zone": "kerb", "start_s": [200, 230]},
                    {"kind": "crowd_surge", "zone": "plaza", "start_s": [10, 20]},
                ]
            },
        }
    )
    ts0 = 1000.0
    events = [
        {"kind": "parking_violation", "zone_id": "kerb", "phase": "start", "ts": ts0 + 75},
        {"kind": "parking_violation", "zone_id": "kerb", "phase": "start", "ts": ts0 + 140},  # nothing expected
        {"kind": "parking_violation", "zone_id": "bay", "phase": "start", "ts": ts0 + 210},  # wrong zone
        {"kind": "crowd_surge", "zone_id": "plaza", "phase": "start", "ts": "1970-01-01T00:16:55Z"},  # 15 s
        {"kind": "bike_bay_status", "zone_id": "bay", "phase": "instant", "ts": ts0 + 5},  # kind not labelled
    ]
    kinds = frozenset({"parking_violation", "crowd_surge"})
    got = match_episodes(case, events, ts0, kinds)
    found = [(e.kind, e.zone, e.found_s) for e in got if e.window is not None]
    assert found == [("parking_violation", "kerb", 75.0), ("parking_violation", "kerb", None), ("crowd_surge", "plaza", 15.0)]
    spurious = [(e.kind, e.zone, e.found_s) for e in got if e.window is None]
    assert spurious == [("parking_violation", "kerb", 140.0), ("parking_violation", "bay", 210.0)]


def test_bikes_are_matched_by_iou_and_scored_by_operator() -> None:
    case = CaseSpec.model_validate(
        {
            "id": "c",
            "media": "x.jpg",
            "truth": {
                "operators": [
                    {"box": [0.1, 0.5, 0.2, 0.8], "operator": "qingju"},
                    {"box": [0.3, 0.5, 0.4, 0.8], "operator": "qingju"},
                    {"box": [0.6, 0.5, 0.7, 0.8], "operator": None},  # a private bike
                    {"box": [0.8, 0.1, 0.9, 0.2], "operator": "qingju"},  # never detected
                ]
            },
        }
    )
    states = {
        "bay": {"bikes": [
            {"box": [0.11, 0.52, 0.21, 0.79], "operator": "qingju", "confidence": 0.8},
            {"box": [0.31, 0.5, 0.42, 0.8], "operator": "hellobike", "confidence": 0.6},
        ]},
        "watch": {"bikes": [{"box": [0.6, 0.55, 0.69, 0.8], "operator": None, "confidence": 0.5}]},
        "plaza": {"count": 3},
    }
    got = match_operators(case, attributed_bikes(states))
    assert [(o.found, o.detected) for o in got] == [("qingju", True), ("hellobike", True), (None, True), (None, False)]
    from edge.tools.eval import CaseResult

    agg = aggregates([CaseResult(id="c", media="x.jpg", operators=got)])["operators"]
    assert agg == {
        "truth": 4,
        "detected": 3,
        "right": 2,
        "accuracy": 0.667,
        "detected_fraction": 0.75,
        # shared and private bikes apart: the goal (>= 90 % of detected shared bikes named right) and the
        # confusion a colour livery risks (a private bike read as shared) are different figures
        "shared": {"truth": 3, "detected": 2, "right": 1, "accuracy": 0.5, "unattributed": 0, "wrong_operator": 1},
        "private": {"truth": 1, "detected": 1, "read_as_shared": 0},
    }
    confused = [*got[:2], OperatorResult("c", (0.6, 0.5, 0.7, 0.8), None, "qingju", True)]
    agg = aggregates([CaseResult(id="c", media="x.jpg", operators=confused)])["operators"]
    assert agg["private"] == {"truth": 1, "detected": 1, "read_as_shared": 1}
    text = format_report({"name": "x", "config": "c", "model": "m", "detector": {"roi": "none"}, "wall_s": 0.0,
                          "baseline_model": None, "cases": [], "aggregates": {"operators": agg}})
    assert "shared bikes: accuracy 0.50 (1/2 detected named right, 0 named nobody, 1 another operator" in text
    assert "private bikes: 1 of 1 detected read as shared" in text


def test_readme_figures_are_parsed() -> None:
    assert figures("MAE 3.60 (mean signed +1.07); per-frame MAE 0.01, line MAE 0.5, recall 1.00") == {
        "MAE": 3.6, "per-frame MAE": 0.01, "line MAE": 0.5, "recall": 1.0
    }
    assert figures("shared accuracy 0.92 (12/13); private as shared 0 of 16; accuracy 0.5") == {
        "shared accuracy": 0.92, "private as shared": 0.0, "accuracy": 0.5
    }


def test_readme_rows_of_one_spec_are_told_apart_by_use_case_or_figure(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Accuracy\n\n| use case | labelled set | command | pipeline | bare detector |\n|---|---|---|---|---|\n"
        "| bikes in a bay (count) | b | `edge-agent eval tests/accuracy/sets/b.yaml --baseline` | MAE 1.22 | MAE 3.11 |\n"
        "| shared-bike operator | b | `edge-agent eval tests/accuracy/sets/b.yaml` | shared accuracy 0.92 | — |\n"
        "\n## Next\n",
        encoding="utf-8",
    )
    assert row_for("tests/accuracy/sets/b.yaml", figure="MAE", readme=readme).pipeline == {"MAE": 1.22}
    assert row_for("tests/accuracy/sets/b.yaml", figure="shared accuracy", readme=readme).use_case == "shared-bike operator"
    assert row_for("tests/accuracy/sets/b.yaml", use_case="count", readme=readme).bare == {"MAE": 3.11}
    with pytest.raises(AssertionError, match="2 rows"):
        row_for("tests/accuracy/sets/b.yaml", readme=readme)
    with pytest.raises(AssertionError, match="no row"):
        row_for("tests/accuracy/sets/b.yaml", figure="recall", readme=readme)


@pytest.mark.assets
def test_a_real_case_reads_what_the_box_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One crowd photo through the real agent and NanoDet with tiles: the figure is the crowd zone's
    count in zone_states(); the still is inferred once however long it is held; --cache keeps it."""
    require_asset("eval-dev/crowd/photo_01.jpg")
    spec = str(REPO / "tests/accuracy/sets/crowd-photos.yaml")
    cache = tmp_path / "cache"
    argv = ["eval", spec, "--case", "photo_01", "--baseline", "--json", "--quiet", "--cache", str(cache)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    (case,) = report["cases"]
    (row,) = case["rows"]
    assert (row["group"], row["what"], row["truth"]) == ("counts", "whole/person", 10.0)
    assert row["figure"] is not None and row["baseline"] is not None
    assert row["error"] == row["figure"] - 10.0
    assert case["frames"] == 8 and case["inferred"] == 1  # 2 s at 4 fps, one inference
    assert report["aggregates"]["counts"]["mae"] == abs(row["error"])
    assert list(cache.rglob("*.npz")), "--cache keeps the detections"
    again = run_eval(EvalOptions(spec=spec, cases=("photo_01",), cache_dir=str(cache), progress=False))
    assert again["cases"][0]["inferred"] == 0 and again["cases"][0]["rows"][0]["figure"] == row["figure"]
    text = format_report(report)
    assert "photo_01" in text and "bare nanodet_plus_m_416: MAE" in text
