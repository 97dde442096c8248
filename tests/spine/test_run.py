"""`edge-agent run` end to end: a real clip through the real model, events out, clean exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.events.schema import validate_event
from tests.fixtures.assets import require_asset

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, source: str, **camera: Any) -> Path:
    cfg = {
        "config_version": 1,
        "device_id": "pole-test",
        "site_id": "lab",
        "geo": {"lat": 30.6, "lon": 104.06},
        "cameras": [
            {
                "id": "door",
                "source": source,
                "detect_fps": 5,
                "model": "yolox_nano_416",
                "zones": [{"id": "hall", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                **camera,
            }
        ],
        "rules": {"feature_interval_s": 30},
        "uplink": {"outbox_path": str(tmp_path / "var" / "outbox.sqlite"), "jsonl_path": str(tmp_path / "events.jsonl")},
        "hardware": {},
        "health": {"health_interval_s": 10},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def moving_dot_clip(path: Path, *, frames: int, grey: int, step: int) -> Path:
    """A small MJPG clip at 10 fps of a white dot moving right over a grey background."""
    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(frames):
        img = np.full((120, 160, 3), grey, np.uint8)
        cv2.circle(img, (10 + i * step, 60), 8, (255, 255, 255), -1)
        w.write(img)
    w.release()
    return path


def agent(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge", *extra, "run", "--config", str(config)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
def test_run_processes_a_whole_clip_in_video_time_and_exits_0(tmp_path: Path, assets: Path) -> None:
    clip = require_asset("media/intel_one-by-one-person-detection.mp4")
    require_asset("models/yolox_nano_416.onnx")
    config = write_config(tmp_path, str(clip))
    proc = agent(config, "--log-json")
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    events = sorted(read_events(tmp_path / "events.jsonl"), key=lambda e: e["seq"])
    for e in events:
        validate_event(e)  # every event the agent emitted matches the published schema
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "agent_status" and events[0]["payload"]["state"] == "started"
    assert kinds[-1] == "agent_status" and events[-1]["payload"]["state"] == "stopping"
    health = [e for e in events if e["kind"] == "device_health"]
    assert health and health[0]["payload"]["cameras"][0]["camera_id"] == "door"
    guard = health[-1]["payload"]["cameras"][0]["model_output"]  # the real model's outputs are all sane
    assert guard["state"] == "ok" and guard["passes"] > 0 and guard["bad_passes"] == 0, guard
    assert "camera_status" not in kinds, "a camera that never went offline reports no offline/online episode"
    feats = [e for e in events if e["kind"] == "features"]
    # 139.4 s of video at one record per 30 s of video time: 4 full windows + the final partial one.
    assert 4 <= len(feats) <= 6, len(feats)
    assert all(e["model"]["name"] == "yolox_nano_416" and e["model"]["sha256"].startswith("695e750a") for e in feats)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gaps in seq"
    # Logs are JSON lines and the pipeline never logs per frame at INFO (697 frames were processed).
    lines = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    assert lines and all("level" in ln for ln in lines)
    assert sum(1 for ln in lines if ln["level"] == "info") < 60


@pytest.mark.slow
def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    clip = moving_dot_clip(tmp_path / "loop.avi", frames=30, grey=40, step=4)
    calibration = {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]]}
    config = write_config(tmp_path, str(clip), model="motion", loop=True, playback="realtime", calibration=calibration)
    proc = agent(config)
    time.sleep(6)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    events = sorted(read_events(tmp_path / "events.jsonl"), key=lambda e: e["seq"])
    assert events[-1]["kind"] == "agent_status" and events[-1]["payload"]["state"] == "stopping"
    assert "Traceback" not in err


@pytest.mark.slow
def test_camera_that_vanishes_mid_run_is_reported_offline_then_online(tmp_path: Path) -> None:
    """The agent keeps running while its camera (a looped file) is gone, and says so upstream."""
    import shutil
    import threading

    from edge.agent.runner import Agent
    from edge.config import load_config

    clip = moving_dot_clip(tmp_path / "cam.avi", frames=20, grey=60, step=6)
    backup = tmp_path / "backup.avi"
    shutil.copy(clip, backup)
    calibration = {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]]}
    config = write_config(tmp_path, str(clip), model="motion", loop=True, calibration=calibration,
                          reconnect_min_s=0.05, reconnect_max_s=0.2)
    events: list[dict[str, Any]] = []
    agent = Agent(load_config(config), on_event=events.append)
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()

    def wait_for(cond: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    wait_for(lambda: "door" in agent.cameras and agent.cameras["door"].frames > 5, "frames")
    clip.unlink()
    wait_for(lambda: any(e["kind"] == "camera_status" and e["phase"] == "start" for e in events), "offline")
    frames_while_gone = agent.cameras["door"].frames
    assert th.is_alive(), "losing the camera is not a crash"
    shutil.copy(backup, clip)
    wait_for(lambda: any(e["kind"] == "camera_status" and e["phase"] == "end" for e in events), "online")
    wait_for(lambda: agent.cameras["door"].frames > frames_while_gone + 5, "frames after the camera came back")
    agent.stop()
    th.join(timeout=30)
    status = [e for e in events if e["kind"] == "camera_status"]
    assert [(e["phase"], e["payload"]["status"]) for e in status] == [("start", "offline"), ("end", "online")]
    assert status[0]["severity"] == "major" and "not found" in status[0]["payload"]["reason"]
    assert status[0]["incident_id"] == status[1]["incident_id"]
    assert status[1]["payload"]["offline_s"] >= 0


@pytest.mark.slow
def test_a_model_that_gives_only_garbage_is_named_in_the_health_record(tmp_path: Path) -> None:
    """A model whose outputs are all NaN feeds the rules nothing; the health record says so, in the
    camera's ``model_output`` and in the record's severity and reason, so the platform sees a blind
    camera rather than an empty street."""
    import numpy as np

    from tests.vision.synth import constant_model, synthetic_manifest, write_manifest

    clip = moving_dot_clip(tmp_path / "cam.avi", frames=60, grey=70, step=2)
    models = tmp_path / "models"
    models.mkdir()
    onnx_file = constant_model(models / "nan_yolox.onnx", "images", [1, 3, 64, 64],
                               {"output": np.full((1, 84, 6), np.nan, np.float32)})
    write_manifest(models, synthetic_manifest("nan_yolox", onnx_file, "yolox", ["person"],
                                              class_map={"person": "person"}))
    config = write_config(tmp_path, str(clip), model="nan_yolox", detect_fps=10, playback="realtime")
    data = yaml.safe_load(config.read_text())
    data["health"]["health_interval_s"] = 2
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "EDGE_MODEL_PATH": str(models)}
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "produces only non-finite or absurd outputs" in proc.stderr
    events = read_events(tmp_path / "events.jsonl")
    for e in events:
        validate_event(e)
    health = [e for e in events if e["kind"] == "device_health"]
    assert health, [e["kind"] for e in events]
    last = health[-1]
    guard = last["payload"]["cameras"][0]["model_output"]
    assert guard["state"] == "garbage" and guard["bad_passes"] == guard["passes"] > 0, (guard, proc.stderr[-2000:])
    assert guard["nonfinite_values"] == guard["passes"] * 84 * 6
    assert last["severity"] == "minor" and "door model gives only garbage outputs" in last["severity_reason"]
    assert "MODEL=garbage" in last["payload"]["summary"]
