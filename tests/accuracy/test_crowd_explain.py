"""The crowd-count analysis (tests/accuracy/crowd_explain.py): detections matched to head points, and what it
shows on the developers' crowd photos (docs/accuracy.md holds its table)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import load_config
from edge.tools.eval_spec import load_spec
from edge.types import Detections
from tests.accuracy import crowd_explain as X
from tests.accuracy.readme import REPO, row_for
from tests.fixtures.assets import require_asset

SPEC = "tests/accuracy/sets/crowd-photos.yaml"


def test_each_detection_is_told_what_it_is() -> None:
    xyxy = [
        [100, 50, 160, 250],  # a person, head at (130, 70): matched
        [105, 55, 150, 200],  # the same head in its top part: a duplicate
        [300, 0, 340, 90],  # touches the top edge, no head: a body whose head is above the frame
        [110, 180, 150, 245],  # legs inside the first person's box, no head: a fragment
        [500, 300, 540, 400],  # nothing: other
    ]
    det = Detections.from_arrays(xyxy, [0.9, 0.5, 0.6, 0.4, 0.4], [0, 0, 0, 0, 0])
    heads = np.array([[130.0, 70.0], [700.0, 300.0]])  # the second: a person nobody boxed
    kinds, counted, missed, crops = X.explain(det, np.array([0, 1, 0, 0, 2]), heads, np.ones(5, bool))
    assert kinds == ["matched", "duplicate", "cut_top", "fragment", "other"]
    assert missed == 1 and crops == 2  # the duplicate and the other came from crop passes
    assert sum(counted.values()) - len(heads) == 5 - 2  # count - truth = unpaired - missed


def test_a_close_person_boxed_from_the_waist_up_is_matched() -> None:
    """The head of an upper-body box is lower than a full body's: the top part reaches 0.75 of its width."""
    det = Detections.from_arrays([[0, 110, 130, 520]], [0.8], [0])
    _, counted, missed, _ = X.explain(det, np.zeros(1, np.int32), np.array([[60.0, 230.0]]), np.ones(1, bool))
    assert counted["matched"] == 1 and missed == 0


@pytest.mark.assets
@pytest.mark.slow
def test_on_the_crowd_photos_the_table_adds_up_and_the_part_merge_removes_boxes_not_people() -> None:
    require_asset("eval-dev/crowd/photo_01_heads.csv")
    spec = load_spec(REPO / SPEC)
    cam = load_config(spec.config_path).cameras[0]
    rows = X.run(spec, cam)
    assert [r.heads for r in rows] == [r.truth for r in rows]  # the head files hold the spec's counts
    for r in rows:
        assert r.error == sum(r.kinds[k] for k in X.KINDS if k != "matched") - r.missed
    mae = float(np.mean([abs(r.error) for r in rows]))
    assert mae == pytest.approx(row_for(SPEC).pipeline["MAE"], abs=0.2)  # the count eval reports
    # photo_03's error is people whose heads are above the frame (the head-point truth has no point for them)
    p03 = next(r for r in rows if r.case == "photo_03")
    assert p03.kinds["cut_top"] >= 10 and p03.error - p03.kinds["cut_top"] <= 2
    before = X.run(spec, load_config(REPO / "tests/accuracy/sets/variants/nanodet-tiles-no-part-merge.site.yaml").cameras[0])
    removed = sum(b.count - r.count for b, r in zip(before, rows, strict=True))
    lost = sum(b.kinds["matched"] - r.kinds["matched"] for b, r in zip(before, rows, strict=True))
    extra = sum(b.kinds["duplicate"] + b.kinds["fragment"] - r.kinds["duplicate"] - r.kinds["fragment"] for b, r in zip(before, rows, strict=True))
    assert removed >= 10 and extra >= 8 and lost <= 2, (removed, extra, lost)
