"""``python -m firmware_sim street``: a PNG, a video and the ground truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from firmware_sim.street.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_png_and_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, video = tmp_path / "s.png", tmp_path / "s.avi"
    assert (
        main(["--png", str(png), "--at", "120", "--video", str(video), "--duration", "4", "--fps", "5"]) == 0
    )
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (400, 640, 3)
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 21
    assert "21 frames" in capsys.readouterr().out


def test_truth_through_the_firmware_sim_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "firmware_sim", "street", "--truth"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("parking_violation") == 2
    assert "bike_bay_overflow" in out and "crowd_surge" in out
    assert "command ack_task for bay-1" in out


def test_nothing_to_do_is_an_error() -> None:
    assert main([]) == 2
