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
def test_bench_measures_every_stage_with_two_cameras(short_clip: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import os

    from edge.agent.inference import plan_inference
    from edge.tools.bench import bare_layouts, layout_name

    code = main(["bench", "--source", str(short_clip), "--seconds", "1", "--rounds", "2", "--cameras", "2", "--json"])
    assert code == 0
    captured = capfd.readouterr()
    r = json.loads(captured.out)
    # Progress on stderr while it runs: each stage announced in order, the child's stages too, and step 3
    # (the agent's rounds and the bare inference between them) as a bar to 100 % of its planned seconds.
    err = captured.err
    assert err.index("bench 1/4") < err.index("bench 2/4") < err.index("bench 3/4") < err.index("bench 4/4"), err
    planned = 1 * 2 * (1 + len(r["bare_layouts"]))  # seconds x rounds x (the agent + each bare layout)
    assert "whole pipeline + bare inference [" in err and "100%" in err, err
    assert f"{planned:.1f}/{planned:.1f} s" in err, err
    assert err.index("100%") < err.index("full detect in series") < err.index("bench 4/4"), err
    for line in ("the agent with 2 camera(s) as live cameras", "the agent with 1 camera(s) as live cameras"):
        assert line in err, err
    assert r["model"] == "yolox_nano_416" and r["zones"] == 3 and r["frame_size"] == "768x432"
    assert r["cameras"] == 2 and r["rounds"] == 2 and len(r["per_round"]) == 2
    cores = os.cpu_count() or 1
    plan = plan_inference(2, None, cores)
    assert r["inference_layout"] == {"workers": plan.workers, "threads": plan.threads}
    agent_layout = layout_name((plan.workers, plan.threads))
    assert set(r["bare_layouts"]) == {layout_name(x) for x in bare_layouts(cores, (plan.workers, plan.threads), 2)}
    assert r["bare_inference"]["layout"] == agent_layout
    for rnd in r["per_round"]:  # each round's ratios are its own agent fps over its own bare fps
        assert rnd["over_bare"] == pytest.approx(rnd["pipeline_fps"] / rnd["bare_fps"][agent_layout], rel=0.02)
        assert rnd["over_best"] == pytest.approx(rnd["pipeline_fps"] / max(rnd["bare_fps"].values()), rel=0.02)
        assert rnd["over_best"] <= rnd["over_bare"] + 1e-6
    ratios = [rnd["over_bare"] for rnd in r["per_round"]]
    assert r["pipeline_over_bare"]["min"] == min(ratios) and r["pipeline_over_bare"]["max"] == max(ratios)
    assert r["bare_best"]["fps"] == max(r["bare_layouts"].values())
    assert set(r["per_camera"]) == {"bench-0", "bench-1"}  # both cameras were served
    for pc in r["per_camera"].values():
        assert pc["fps"] > 0 and 0 < pc["latency_p50_ms"] <= pc["latency_p95_ms"]
    assert r["whole_pipeline"]["frames"] > 0 and r["whole_pipeline"]["fps"] > 0
    assert 0 < r["whole_pipeline"]["infer_busy"] <= 1.0
    assert {"pre", "infer", "post", "latency"} <= set(r["whole_pipeline"]["step_ms"])
    assert 0 < r["tracker_rules_features"]["ms"]
    assert r["full_detect"]["pre_ms"] > 0 and r["full_detect"]["decode_ms"] > 0
    assert set(r["live"]["per_camera"]) == {"bench-0", "bench-1"}
    for pc in r["live"]["per_camera"].values():  # at the clip's own 10 fps nothing queues for long
        assert pc["fps"] > 0 and 0 < pc["latency_p50_ms"] <= pc["latency_p95_ms"]
    live = r["peak_rss_live_mb"]
    assert set(live) == {"1", "2"} and 50 < live["1"] < 2000 and 50 < r["peak_rss_mb"] < 2000
    assert r["rss_per_extra_camera_live_mb"] == pytest.approx(live["2"] - live["1"], abs=0.2)
    cpu = r["whole_pipeline"]["cpu_ms_per_frame"]
    assert cpu["inference workers"] > 0 and cpu["rules threads (decoding, NMS, tracker, rules, events)"] > 0
    assert r["cpu"]["ms_per_frame"] == pytest.approx(sum(cpu.values()), abs=0.05)
    assert 0 <= r["other_processes_cores"] <= cores  # how loaded the machine was while measuring
    assert r["cameras_sustainable"] == cameras_sustainable(r["whole_pipeline"]["fps"], 5.0)
    table = format_table(r)
    for text in ("whole pipeline / bare inference", "whole pipeline / best bare", "camera bench-1:", "this box can sustain"):
        assert text in table


def test_bench_refuses_nonsense_options(tmp_path: Path) -> None:
    clip = tmp_path / "c.avi"
    clip.write_bytes(b"x")
    with pytest.raises(ConfigError):
        bench_config(BenchOptions(source=str(clip), cameras=0))
    with pytest.raises(ConfigError):
        bench_config(BenchOptions(source=str(clip), rounds=0))
    with pytest.raises(SystemExit):
        main(["bench", "--frame-size", "1920by1080"])


def test_bench_config_gives_every_camera_the_clip_looped(tmp_path: Path) -> None:
    clip = tmp_path / "c.avi"
    clip.write_bytes(b"x")
    cfg = bench_config(BenchOptions(model="light_person_192", source=str(clip), cameras=3))
    assert [c.id for c in cfg.cameras] == ["bench-0", "bench-1", "bench-2"]
    assert all(c.source == str(clip) and c.loop and c.model == "light_person_192" for c in cfg.cameras)


@pytest.mark.assets
def test_scaled_clip_makes_a_camera_of_another_resolution(short_clip: Path, tmp_path: Path) -> None:
    from edge.tools.bench import scaled_clip

    out = scaled_clip(str(short_clip), (320, 180), tmp_path, frames=12)
    cap = cv2.VideoCapture(out)
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (180, 320, 3)
        n += 1
    cap.release()
    assert n == 12


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
