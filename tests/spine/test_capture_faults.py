"""Bad sources: a half-corrupt video that flaps is one offline episode (debounced by
``online_stable_s``), FFmpeg's messages stay out of the log, the capture says plainly what it
waits for, and ``replay`` refuses a missing or undecodable recording with one line.

The half-corrupt file is real: an MJPG AVI written with cv2, its middle third overwritten with
random bytes (FFmpeg decodes some of the damaged frames, then fails part-way)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.capture.opencv import OpenCvSource, check_decodable, display_source
from edge.config.site import CameraConfig
from edge.errors import CaptureError
from edge.types import Frame, SourceState, SourceStatus

REPO = Path(__file__).resolve().parents[2]
FFMPEG_NOISE = ("[mjpeg @", "error count", "moov atom", "[mov,mp4", "[tcp @")


def write_half_corrupt(path: Path, n: int = 100, fps: float = 10.0, seed: int = 0) -> Path:
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert wr.isOpened(), "cv2 cannot write MJPG here"
    for i in range(n):
        img = np.full((120, 160, 3), (i * 5) % 256, np.uint8)
        cv2.putText(img, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        wr.write(img)
    wr.release()
    data = bytearray(path.read_bytes())
    a, b = len(data) // 3, 2 * len(data) // 3
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def collect(src: OpenCvSource, until: Any, limit_s: float = 30.0) -> tuple[int, list[SourceStatus]]:
    frames, states = 0, []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not until(frames, states):
        item = src.read(timeout_s=0.2)
        if isinstance(item, Frame):
            frames += 1
        elif isinstance(item, SourceStatus):
            states.append(item)
            if item.state is SourceState.ENDED:
                break
    return frames, states


def cam(path: Path, **kw: Any) -> CameraConfig:
    base = {
        "id": "c",
        "source": str(path),
        "detect_fps": 10,
        "reconnect_min_s": 0.02,
        "reconnect_max_s": 0.05,
    }
    return CameraConfig(**{**base, **kw})


@pytest.mark.parametrize("playback", ["video_time", "realtime"])
def test_flapping_half_corrupt_source_is_one_offline_episode(
    tmp_path: Path, playback: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    clip = write_half_corrupt(tmp_path / "half.avi")
    caplog.set_level(logging.DEBUG, logger="edge.capture")
    src = OpenCvSource(cam(clip, loop=True, playback=playback, online_stable_s=30))
    try:
        _, states = collect(src, lambda f, s: src.counters.flaps >= 4, limit_s=60)
    finally:
        src.close()
    assert src.counters.flaps >= 4, "the file really flaps (frames come back, then fail again)"
    assert [s.state for s in states] == [SourceState.ONLINE, SourceState.OFFLINE]  # one episode
    assert "read failed at frame" in states[1].reason
    err = capfd.readouterr().err
    assert not [w for w in FFMPEG_NOISE if w in err], err[-500:]
    infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len([m for m in infos if "failed again before it was stable" in m]) == 1  # then counted
    assert len([m for m in infos if "waiting for source" in m]) == 1
    assert not [m for m in infos if any(w in m for w in FFMPEG_NOISE)]


def test_without_debounce_the_same_file_flaps_into_many_episodes(tmp_path: Path) -> None:
    """The control: online_stable_s 0 is the old behaviour, one episode per flap."""
    clip = write_half_corrupt(tmp_path / "half.avi")
    src = OpenCvSource(cam(clip, loop=True, online_stable_s=0))
    try:
        _, states = collect(src, lambda f, s: sum(x.state is SourceState.OFFLINE for x in s) >= 4, limit_s=60)
    finally:
        src.close()
    assert sum(s.state is SourceState.OFFLINE for s in states) >= 4
    assert src.counters.flaps == 0


def test_episode_ends_after_frames_flow_for_online_stable_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A looped clean clip that vanishes and comes back: ONLINE only after 2 s of its video time.

    Judged on what the reader thread produced, in its order: a state may overtake frames still queued
    for a slow consumer (a loaded CI machine), so the frames a consumer has read when ONLINE reaches it
    can end up to a queue's depth earlier."""
    clip = tmp_path / "c.avi"
    write_half_corrupt(clip, n=30)
    clean = tmp_path / "clean.avi"
    wr = cv2.VideoWriter(str(clean), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(30):
        wr.write(np.full((48, 64, 3), i * 8, np.uint8))
    wr.release()
    clip.unlink()
    src = OpenCvSource(cam(clip, loop=True, online_stable_s=2.0))
    produced: list[Frame | SourceStatus] = []  # the reader's hand-overs, in its order
    handoff = src._handoff
    put_frame, put_state = handoff.put_frame, handoff.put_state

    def record_frame(frame: Frame, stop: threading.Event) -> None:
        produced.append(frame)
        put_frame(frame, stop)

    def record_state(status: SourceStatus) -> None:
        produced.append(status)
        put_state(status)

    monkeypatch.setattr(handoff, "put_frame", record_frame)
    monkeypatch.setattr(handoff, "put_state", record_state)
    online: SourceStatus | None = None
    try:
        _, states = collect(src, lambda f, s: bool(s), limit_s=10)
        assert [s.state for s in states] == [SourceState.OFFLINE]
        clip.write_bytes(clean.read_bytes())
        consumed = 0
        deadline = time.monotonic() + 30
        while online is None and time.monotonic() < deadline:
            item = src.read(timeout_s=0.2)
            if isinstance(item, Frame):
                consumed += 1
            elif isinstance(item, SourceStatus):
                assert item.state is SourceState.ONLINE
                online = item
    finally:
        src.close()
    assert online is not None, "the episode ended within 30 s"
    assert consumed, "frames flow (to the pipeline) before the episode ends"
    at = next(i for i, p in enumerate(produced) if p is online)
    before = [p.t for p in produced[:at] if isinstance(p, Frame)]
    assert before[-1] - before[0] >= 2.0 - 0.11, before  # two seconds of video passed first
    assert before[-1] - before[0] < 2.0 + 0.11, before  # ... and the episode ended then, not later
    assert "stable for 2.0s" in online.reason


def test_non_looped_half_corrupt_file_reaches_its_end(tmp_path: Path) -> None:
    """A read failure mid-file resumes past the failed frame: the run ends instead of retrying
    the same frame forever, and the camera that came back is reported back before the end."""
    clip = write_half_corrupt(tmp_path / "half.avi")
    src = OpenCvSource(cam(clip, online_stable_s=30))
    try:
        frames, states = collect(src, lambda f, s: False, limit_s=60)
    finally:
        src.close()
    kinds = [s.state for s in states]
    assert kinds == [SourceState.ONLINE, SourceState.OFFLINE, SourceState.ONLINE, SourceState.ENDED]
    assert "until the end of the file" in states[2].reason
    assert frames > 60


def test_waiting_is_said_plainly_once_per_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.capture")
    src = OpenCvSource(cam(tmp_path / "nowhere.avi"))
    try:
        time.sleep(0.5)
    finally:
        src.close()
    waits = [r for r in caplog.records if "waiting for source" in r.getMessage()]
    assert len(waits) >= 3  # it does retry
    info = [r.getMessage() for r in waits if r.levelno == logging.INFO]
    assert len(info) == 1
    assert "camera=c waiting for source" in info[0] and "nowhere.avi" in info[0]
    assert "not found" in info[0] and "next retry in" in info[0] and "(attempt 1)" in info[0]


def test_stream_password_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    assert display_source("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert display_source("/dev/video0") == "/dev/video0"
    caplog.set_level(logging.DEBUG, logger="edge.capture")
    src = OpenCvSource(
        CameraConfig(
            id="c", source="rtsp://admin:s3cret@127.0.0.1:9/live", reconnect_min_s=0.05, reconnect_max_s=0.1
        )
    )
    try:
        _, states = collect(src, lambda f, s: bool(s), limit_s=15)
    finally:
        src.close()
    assert states and states[0].state is SourceState.OFFLINE
    assert "s3cret" not in states[0].reason
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]
    assert [r for r in caplog.records if "admin:***@127.0.0.1:9" in r.getMessage()]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.mp4", None, "no such file"),
        ("text.mp4", b"hello, not a video\n", "cannot be opened as video"),
        ("noise.avi", bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8)), "cannot be"),
        ("broken.jpg", b"\xff\xd8\xff\xe0 not really", "cannot be decoded as an image"),
    ],
)
def test_check_decodable_refuses_with_one_line(
    tmp_path: Path, name: str, content: bytes | None, words: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptureError) as exc:
        check_decodable(str(path))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_check_decodable_accepts_a_damaged_but_playable_file(tmp_path: Path) -> None:
    check_decodable(str(write_half_corrupt(tmp_path / "half.avi")))


@pytest.mark.parametrize("kind", ["missing", "undecodable"])
def test_replay_of_a_bad_source_exits_non_zero_with_one_line(tmp_path: Path, kind: str) -> None:
    import yaml

    src = tmp_path / "clip.mp4"
    if kind == "undecodable":
        src.write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "config_version": 1,
                "device_id": "pole-1",
                "site_id": "lab",
                "cameras": [{"id": "cam0", "source": str(src), "model": "motion"}],
                "uplink": {"outbox_path": str(tmp_path / "o.sqlite")},
            }
        )
    )
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "replay",
            "--config",
            str(cfg),
            "--source",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {src}"), out.stderr
    assert ("no such file" if kind == "missing" else "cannot be opened as video") in lines[0]
    assert time.monotonic() - t0 < 30  # it did not wait for the file to come back


def test_agent_reports_one_camera_status_episode_for_a_flapping_file(tmp_path: Path) -> None:
    """The real runner (CameraStatusMonitor unchanged) over the half-corrupt looped file."""
    from edge.agent.runner import Agent
    from edge.config import parse_config

    clip = write_half_corrupt(tmp_path / "half.avi")
    cfg = parse_config(
        {
            "config_version": 1,
            "device_id": "pole-flap",
            "site_id": "lab",
            "cameras": [
                {
                    "id": "cam0",
                    "source": str(clip),
                    "loop": True,
                    "detect_fps": 10,
                    "model": "motion",
                    "reconnect_min_s": 0.02,
                    "reconnect_max_s": 0.05,
                    "online_stable_s": 30,
                    "calibration": {
                        "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                        "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]],
                    },
                }
            ],
            "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
            "health": {"health_interval_s": 3600},
        }
    )
    events: list[dict[str, Any]] = []
    agent = Agent(cfg, on_event=events.append)
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cr = agent.cameras.get("cam0")
            if cr is not None and getattr(cr.source, "counters", None) and cr.source.counters.flaps >= 5:
                break
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        agent.stop()
        th.join(30)
    flaps = agent.cameras["cam0"].source.counters.flaps if "cam0" in agent.cameras else 0
    status = [(e["phase"], e["payload"]["status"]) for e in events if e["kind"] == "camera_status"]
    assert flaps >= 5
    assert status == [("start", "offline")], status
