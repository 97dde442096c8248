"""``edge-agent bench`` on a short cut of the real clip with the default model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edge.cli import main
from edge.errors import CaptureError, ConfigError
from edge.tools.bench import BenchOptions, bench_config, cameras_sustainable, format_table


@pytest.mark.parametrize(
    ("pipeline_fps", "detect_fps", "expect"),
    [(50.0, 5.0, 8), (10.0, 5.0, 1), (6.0, 5.0, 0), (100.0, 2.0, 40), (12.5, 10.0, 1)],
)
def test_cameras_sustainable(pipeline_fps: float, detect_fps: float, expect: int) -> None:
    assert cameras_sustainable(pipeline_fps, detect_fps) == expect


def test_cameras_sustainable_rejects_zero_fps() -> None:
    with pytest.raises(ValueError, match="detect_fps"):
        cameras_sustainable(10, 0)


def test_bench_config_has_three_zones_every_frame_and_private_outbox(tmp_path: Path) -> None:
    clip = tmp_path / "c.avi"
    clip.write_bytes(b"x")
    cfg = bench_config(BenchOptions(model="light_person_192", source=str(clip), threads=1))
    cam = cfg.cameras[0]
    assert [z.id for z in cam.zones] == ["entry", "floor", "exit"]
    assert (cam.model, cam.detect_fps, cam.playback, cam.detector.threads) == (
        "light_person_192",
        60,
        "video_time",
        1,
    )
    assert cfg.uplink.mqtt is None and "edge-bench-" in cfg.uplink.outbox_path
    with pytest.raises(CaptureError, match="no such file"):
        bench_config(BenchOptions(source=str(tmp_path / "missing.mp4")))
    with pytest.raises(ConfigError):
        bench_config(BenchOptions(model="motion", source=str(clip)))


@pytest.fixture
def short_clip(tmp_path: Path, assets: Path) -> Path:
    from tests.fixtures.assets import require_asset

    src = require_asset("media/intel_one-by-one-person-detection.mp4")
    cap = cv2.VideoCapture(str(src))
    out = tmp_path / "short.avi"
    wr = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (768, 432))
    for _ in range(120):  # 12 s, people walking in
        ok, img = cap.read()
        assert ok
        wr.write(img)
    wr.release()
    cap.release()
    return out


@pytest.mark.assets
@pytest.mark.slow
def test_bench_measures_every_stage(short_clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("edge.agent.runner")
    code = main(["bench", "--source", str(short_clip), "--seconds", "3", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    # Progress on stderr while it runs: each stage announced, the agent's run as a bar to 100 %.
    err = captured.err
    assert err.index("bench 1/3") < err.index("bench 2/3") < err.index("bench 3/3"), err
    assert "whole pipeline [" in err and "100%" in err and "12.0 s video" in err, err
    assert r["model"] == "yolox_nano_416" and r["zones"] == 3 and r["frame_size"] == "768x432"
    assert r["whole_pipeline"]["frames"] == 120  # every frame of the file went through the agent
    bare, full, pipe = r["bare_inference"]["ms"], r["full_detect"]["ms"], r["whole_pipeline"]["ms"]
    assert 0 < bare <= full * 1.2 and pipe > 0
    assert r["capture_decode"]["fps"] > r["whole_pipeline"]["fps"] * 0.5
    assert r["tracker_rules_features"]["ms"] > 0
    assert 50 < r["peak_rss_mb"] < 2000
    assert r["pipeline_over_bare"] == pytest.approx(
        r["whole_pipeline"]["fps"] / r["bare_inference"]["fps"], rel=0.02
    )
    assert r["cameras_sustainable"] == cameras_sustainable(r["whole_pipeline"]["fps"], 5.0)
    table = format_table(r)
    assert "whole pipeline / bare inference" in table and "this box can sustain" in table


def test_peak_rss_of_a_child_is_its_own_not_the_parents() -> None:
    import subprocess
    import sys

    ballast = bytearray(400 * 1024 * 1024)  # the parent's peak goes above 400 MB
    ballast[::4096] = b"x" * len(ballast[::4096])
    code = "from edge.tools.bench import peak_rss_kb; import numpy as np; a=peak_rss_kb(); b=np.ones(64*2**20//8); print(a, peak_rss_kb())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    del ballast
    before, after = float(out[0]) / 1024, float(out[1]) / 1024
    assert before < 300, before  # would be > 400 with ru_maxrss inherited across fork+exec
    assert after - before > 60  # a 64 MB array shows up
