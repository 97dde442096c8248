"""Real footage for the tamper tests: frames decoded once per session with cv2."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.fixtures.assets import require_asset

CLIPS = {
    # top-down car park, low contrast, cars driving through (big, fast scene changes)
    "carpark": ("media/intel_car-detection.mp4", 1),
    # indoor, people walking in one at a time (every 2nd frame: 40 s of footage in memory)
    "people": ("media/intel_one-by-one-person-detection.mp4", 2),
}
MAX_FRAMES = 400


def load_clip(name: str) -> list[np.ndarray]:
    rel, step = CLIPS[name]
    cap = cv2.VideoCapture(str(require_asset(rel)))
    frames: list[np.ndarray] = []
    i = 0
    try:
        while len(frames) < MAX_FRAMES:
            ok, img = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(img)
            i += 1
    finally:
        cap.release()
    assert len(frames) > 100, f"could not decode {rel}"
    return frames


_CACHE: dict[str, list[np.ndarray]] = {}


@pytest.fixture(scope="session")
def clips() -> dict[str, list[np.ndarray]]:
    for name in CLIPS:
        if name not in _CACHE:
            _CACHE[name] = load_clip(name)
    return _CACHE
