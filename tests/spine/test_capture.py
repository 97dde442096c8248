"""Capture: files in video time, sub-sampling, still images, drops, and a camera that vanishes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture import open_source, probe_camera
from edge.capture.opencv import OpenCvSource, source_kind
from edge.config.site import CameraConfig
from edge.errors import CaptureError
from edge.types import Frame, SourceState, SourceStatus
from tests.fixtures.assets import require_asset


def drain(src, limit_s: float = 60.0, stop_on=(SourceState.ENDED,)):
    frames: list[Frame] = []
    states: list[SourceStatus] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        item = src.read(timeout_s=0.5)
        if isinstance(item, Frame):
            frames.append(item)
        elif isinstance(item, SourceStatus):
            states.append(item)
            if item.state in stop_on:
                break
    return frames, states


def write_clip(path: Path, n: int, fps: float = 10.0, size=(64, 48)) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert w.isOpened(), "cv2 cannot write MJPG here"
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        cv2.putText(img, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        w.write(img)
    w.release()


@pytest.mark.parametrize(
    ("source", "kind"),
    [(0, "device"), ("2", "device"), ("/dev/video0", "device"), ("rtsp://cam/stream", "url"),
     ("http://x/y.mjpg", "url"), ("a.mp4", "file"), ("still.JPG", "image"), ("x.png", "image")],
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_real_clip_plays_in_video_time_and_subsamples(assets):
    clip = require_asset("media/intel_one-by-one-person-detection.mp4")
    cam = CameraConfig(id="door", source=str(clip), detect_fps=2.5)
    src = open_source(cam)
    t0 = time.monotonic()
    frames, states = drain(src)
    wall = time.monotonic() - t0
    src.close()
    assert [s.state for s in states] == [SourceState.ONLINE, SourceState.ENDED]
    # 1394 frames at 10 fps = 139.4 s of video; every 4th frame at 2.5 fps.
    assert len(frames) == 349
    assert src.counters.captured == 1394 and src.counters.skipped == 1394 - 349 and src.counters.dropped == 0
    dt = np.diff([f.t for f in frames])
    assert np.allclose(dt, 0.4, atol=1e-6), "timestamps come from the file, not the wall clock"
    assert np.allclose(np.diff([f.ts for f in frames]), 0.4, atol=1e-6)
    assert frames[-1].t - frames[0].t == pytest.approx(139.2)
    assert wall < 60, "video time replays faster than real time"
    assert [f.seq for f in frames] == list(range(1, 350))


def test_still_image_is_held_for_simulated_duration(tmp_path):
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), np.full((40, 60, 3), 90, np.uint8))
    cam = CameraConfig(id="c", source=str(img), hold_s=30, detect_fps=2)
    src = open_source(cam)
    frames, states = drain(src)
    src.close()
    assert len(frames) == 60
    assert frames[-1].t - frames[0].t == pytest.approx(29.5)
    assert frames[0].image.shape == (40, 60, 3)
    assert states[-1].state is SourceState.ENDED


def test_missing_file_goes_offline_then_online_when_it_appears(tmp_path):
    clip = tmp_path / "later.avi"
    cam = CameraConfig(id="c", source=str(clip), detect_fps=10, reconnect_min_s=0.05, reconnect_max_s=0.1)
    src = open_source(cam)
    item = src.read(timeout_s=5)
    assert isinstance(item, SourceStatus) and item.state is SourceState.OFFLINE
    assert "not found" in item.reason
    write_clip(tmp_path / "tmp.avi", 20)
    shutil.move(tmp_path / "tmp.avi", clip)
    frames, states = drain(src, limit_s=20)
    src.close()
    assert [s.state for s in states] == [SourceState.ONLINE, SourceState.ENDED]
    assert len(frames) == 20


def test_looped_file_removed_mid_run_reports_offline_and_recovers(tmp_path):
    """A camera that vanishes mid-run (the file behind a looped source is removed, then restored)."""
    clip = tmp_path / "cam.avi"
    write_clip(clip, 10)
    backup = tmp_path / "backup.avi"
    shutil.copy(clip, backup)
    cam = CameraConfig(id="c", source=str(clip), loop=True, reconnect_min_s=0.05, reconnect_max_s=0.2)
    src = open_source(cam)
    first = src.read(timeout_s=5)
    assert isinstance(first, SourceStatus) and first.state is SourceState.ONLINE
    clip.unlink()  # the camera disappears; the loop's next reopen fails
    _frames, states = drain(src, limit_s=20, stop_on=(SourceState.OFFLINE,))
    assert states and states[-1].state is SourceState.OFFLINE
    shutil.copy(backup, clip)
    _frames2, states2 = drain(src, limit_s=20, stop_on=(SourceState.ONLINE,))
    src.close()
    assert states2 and states2[-1].state is SourceState.ONLINE
    assert src.counters.reconnects >= 1


def test_device_path_that_disappears_is_offline_not_a_crash(tmp_path):
    cam = CameraConfig(id="c", source=str(tmp_path / "dev" / "video9").replace(str(tmp_path), "/dev/edge-test"),
                       reconnect_min_s=0.05, reconnect_max_s=0.1)
    src = open_source(cam)
    item = src.read(timeout_s=5)
    src.close()
    assert isinstance(item, SourceStatus) and item.state is SourceState.OFFLINE
    assert "not present" in item.reason


def test_latest_frame_slot_drops_and_counts_when_the_pipeline_is_slow(tmp_path):
    clip = tmp_path / "c.avi"
    write_clip(clip, 40, fps=40)
    cam = CameraConfig(id="c", source=str(clip), playback="realtime", detect_fps=40)
    src = OpenCvSource(cam)
    time.sleep(1.5)  # the pipeline is "busy": the reader overwrites the one-slot buffer
    frames, _states = drain(src, limit_s=10)
    src.close()
    assert src.counters.dropped > 0
    assert len(frames) + src.counters.dropped == src.counters.delivered
    assert len(frames) < 5


def test_probe_camera_reports_size_or_reason(tmp_path):
    img = tmp_path / "s.jpg"
    cv2.imwrite(str(img), np.zeros((30, 50, 3), np.uint8))
    assert probe_camera(CameraConfig(id="c", source=str(img))) == (50, 30)
    with pytest.raises(CaptureError, match="not found"):
        probe_camera(CameraConfig(id="c", source=str(tmp_path / "nope.jpg")), timeout_s=1.0)
