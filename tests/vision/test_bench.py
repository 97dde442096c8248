"""``bench_model`` (what ``edge-agent bench`` calls) measures bare session.run and full detect."""

from __future__ import annotations

import numpy as np
import pytest

from edge.vision.bench import bench_model
from edge.vision.preprocess import read_image
from tests.fixtures.assets import require_asset


@pytest.mark.assets
def test_bench_model_reports_bare_and_full_latency() -> None:
    img = read_image(str(require_asset("media/opendatacam_webcam_street.jpg")))
    r = bench_model("light_person_192", 1, img, repeats=5)
    assert r["model"] == "light_person_192" and r["threads"] == 1
    bare, full = float(r["bare_ms"]), float(r["full_ms"])
    assert 0 < bare and 0 < full
    assert float(r["pre_ms"]) > 0 and float(r["post_ms"]) > 0
    assert float(r["ratio"]) == pytest.approx(full / bare, rel=0.01)
    assert full + 1e-6 >= float(r["pre_ms"])  # full detect includes pre-processing


@pytest.mark.assets
def test_model_bench_subcommand_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from edge.vision.cli import register

    img = require_asset("media/coco_val2017/000000001532.jpg")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["model", "bench", "light_person_192", "--image", str(img), "--threads", "1", "--repeats", "3"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| model | threads | bare session.run ms | full detect ms")
    row = out[2].split("|")
    assert row[1].strip() == "light_person_192" and row[2].strip() == "1"
    assert np.isfinite(float(row[-2]))
