"""Motion gating in the real pipeline: real model, real tracker and rules, F1's MotionEnergy.

* A still held for minutes (an image-file source) skips >= 90 % of inferences while the
  parked vehicle's no-parking violation opens and stays open (stationary tracks are
  re-checked every ``recheck_s``).
* Moving footage gives the same events gated as ungated.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from edge.agent.pipeline import CameraPipeline
from edge.config.health import GatingConfig
from edge.config.site import SiteConfig
from edge.types import Frame
from edge.vision.gating import MotionGate
from tests.fixtures.assets import require_asset

pytestmark = [pytest.mark.assets, pytest.mark.slow]

GATING = GatingConfig(enabled=True, recheck_s=5.0, max_skip_s=30.0)
TS0 = 1_790_000_000.0


def _site(limit_s: float) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "config_version": 1,
            "device_id": "pole-test",
            "site_id": "site-test",
            "cameras": [
                {
                    "id": "cam0",
                    "source": "still.jpg",
                    "model": "yolox_nano_416",
                    "zones": [
                        {
                            "id": "kerb",
                            "kind": "no_parking",
                            "limit_s": limit_s,
                            "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                        }
                    ],
                }
            ],
            "rules": {"parking": {"grace_s": limit_s, "update_s": 60, "leave_s": 20}},
        }
    )


def _pipeline(cfg: SiteConfig, gated: bool) -> CameraPipeline:
    from edge.rules import CameraAnalytics
    from edge.tracking import ByteTracker
    from edge.vision.detector import build_detector
    from edge.vision.motion import MotionEnergy

    cam = cfg.cameras[0]
    return CameraPipeline(
        cam.id,
        build_detector(cam),
        ByteTracker(cfg.rules.tracker),
        CameraAnalytics(cam, cfg.rules, cfg.timezone),
        motion=MotionEnergy(cam),
        gate=MotionGate(GATING) if gated else None,
    )


def _events(trs: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(tr.kind, tr.phase, tr.zone_id) for tr in trs if tr.kind not in ("features",)]


def test_still_skips_90_percent_and_violation_stays_open() -> None:
    img = cv2.imread(str(require_asset("media/roboflow-inference_truck.jpg")))
    img = cv2.resize(img, (960, 640), interpolation=cv2.INTER_AREA)
    cfg = _site(limit_s=30.0)
    pipe = _pipeline(cfg, gated=True)
    gate = pipe.gate
    assert isinstance(gate, MotionGate)
    transitions = []
    fps = 5.0
    for i in range(int(180 * fps)):  # three minutes of the same frame
        t = i / fps
        res = pipe.step(Frame(image=img, seq=i, t=t, ts=TS0 + t, camera_id="cam0"))
        transitions.extend(res.drafts)
    viol = [tr for tr in transitions if tr.kind == "parking_violation"]
    print(
        f"still: skipped {gate.skipped_fraction:.3f} of {gate.frames} frames; "
        f"violations {[(tr.phase, tr.track_id, round(tr.t, 1)) for tr in viol]}"
    )
    assert gate.skipped_fraction >= 0.9
    starts = [tr for tr in viol if tr.phase == "start"]
    assert starts, "the parked vehicle's violation must open"
    assert not [tr for tr in viol if tr.phase == "end"], "and stay open while inference is skipped"
    assert len({tr.key for tr in starts}) == len(starts)  # one episode per parked vehicle
    assert starts[0].t <= 30.0 + 15.0
    assert len(pipe.last_tracks) >= 1 and bool(pipe.last_tracks.stationary.any())


def test_moving_footage_same_events_gated_and_ungated() -> None:
    """People walking through a hall, three counting lines: gating skips the empty stretches
    between people, and every line crossing of the ungated run is still reported, at the same time."""
    cap = cv2.VideoCapture(str(require_asset("media/intel_one-by-one-person-detection.mp4")))
    frames: list[np.ndarray] = []
    while len(frames) < 500:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    cfg = SiteConfig.model_validate(
        {
            "config_version": 1,
            "device_id": "pole-test",
            "site_id": "site-test",
            "cameras": [
                {
                    "id": "cam0",
                    "source": "hall.mp4",
                    "model": "yolox_nano_416",
                    "lines": [{"id": f"x{x}", "a": [x, 0.0], "b": [x, 1.0]} for x in (0.3, 0.5, 0.7)],
                }
            ],
        }
    )
    fps = 10.0
    runs = {}
    for gated in (False, True):
        pipe = _pipeline(cfg, gated)
        evs = []
        for i, img in enumerate(frames):
            t = i / fps
            res = pipe.step(Frame(image=img, seq=i, t=t, ts=TS0 + t, camera_id="cam0"))
            evs.extend(
                (tr.kind, tr.phase, tr.zone_id, round(tr.t, 1))
                for tr in res.drafts
                if tr.kind != "features"
            )
        runs[gated] = (evs, pipe.skipped_fraction)
    (ungated, _), (gated_, skipped) = runs[False], runs[True]
    print(f"moving: {len(ungated)} events ungated, {len(gated_)} gated; gated run skipped {skipped:.3f}")
    assert ungated, "the clip should produce line crossings"
    assert skipped > 0.3, "the empty stretches between people should be skipped"
    assert gated_ == ungated
