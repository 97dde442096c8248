"""Camera tamper detectors on real footage with synthetic faults applied to the frames.

Frames are fed at 5 fps of simulated time (``Frame.t``); the video loops. The baseline is
learned over ``baseline_s`` seconds, the fault is applied from ``FAULT_T`` onwards and must
start within the fault's configured hold time (plus one frame, plus one match interval for
"moved"). Normal footage, a day/night brightness ramp and synthetic rain fire nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import jsonschema
import numpy as np
import pytest

from edge.config.health import TamperConfig
from edge.health.tamper import TamperMonitor, coarse, measure, similarity
from edge.types import EventDraft, Frame

pytestmark = pytest.mark.assets

FPS = 5.0
DT = 1.0 / FPS
TS0 = 1_790_000_000.0
CFG = TamperConfig(baseline_s=20.0)
FAULT_T = 30.0

Fx = Callable[[np.ndarray, float], np.ndarray]


def run(
    frames: list[np.ndarray], fx: Fx, duration_s: float, cfg: TamperConfig = CFG
) -> tuple[TamperMonitor, list[EventDraft]]:
    mon = TamperMonitor("cam0", cfg)
    out: list[EventDraft] = []
    for i in range(int(duration_s * FPS)):
        t = i * DT
        img = fx(frames[i % len(frames)], t)
        out.extend(mon.update(Frame(image=img, seq=i, t=t, ts=TS0 + t, camera_id="cam0")))
    return mon, out


def after(fn: Fx, t0: float = FAULT_T) -> Fx:
    return lambda img, t: fn(img, t) if t >= t0 else img


def black(img: np.ndarray, t: float) -> np.ndarray:
    return np.zeros_like(img)


def hand(img: np.ndarray, t: float) -> np.ndarray:
    """A hand over the lens: a dark, smooth, skin-toned blob, a little light leaking round it, sensor noise."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    blob = 18 + 14 * np.exp(-((xx - w * 0.4) ** 2 + (yy - h * 0.6) ** 2) / (2 * (w * 0.35) ** 2))
    leak = cv2.resize(cv2.resize(img, (w // 32, h // 32), interpolation=cv2.INTER_AREA), (w, h)).astype(
        np.float32
    )
    noise = np.random.default_rng(round(t * 10)).normal(0, 2.0, (h, w, 1))
    out = blob[..., None] * np.array([0.8, 0.9, 1.3]) + 0.08 * leak + noise
    return np.clip(out, 0, 255).astype(np.uint8)


def dark_blur(img: np.ndarray, t: float) -> np.ndarray:
    """The scene itself, dark and totally out of focus (a palm a few cm from the lens)."""
    h, w = img.shape[:2]
    small = cv2.GaussianBlur(cv2.resize(img, (w // 16, h // 16), interpolation=cv2.INTER_AREA), (0, 0), 3)
    return (cv2.resize(small, (w, h)) * 0.15).astype(np.uint8)


def warp(dx: float, dy: float, angle: float) -> Fx:
    def fx(img: np.ndarray, t: float) -> np.ndarray:
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    return fx


def gain(k: float) -> Fx:
    return lambda img, t: np.clip(img.astype(np.float32) * k, 0, 255).astype(np.uint8)


def overexpose(img: np.ndarray, t: float) -> np.ndarray:
    return cv2.convertScaleAbs(img, alpha=3.0, beta=80)


CASES: list[tuple[str, str, Fx, float]] = [
    # name, expected fault, effect (from FAULT_T), allowed delay after onset
    ("black frames", "covered", black, CFG.covered_s + DT),
    ("hand over lens", "covered", hand, CFG.covered_s + DT),
    ("dark blur", "covered", dark_blur, CFG.covered_s + DT),
    ("shifted 8%", "moved", warp(60, 20, 0), CFG.moved_s + CFG.moved_check_interval_s + DT),
    ("rotated 5 deg", "moved", warp(0, 0, 5), CFG.moved_s + CFG.moved_check_interval_s + DT),
    ("overexposed", "overexposed", overexpose, CFG.exposure_s + DT),
    ("underexposed", "underexposed", gain(0.2), CFG.exposure_s + DT),
]


@pytest.mark.parametrize("clip", ["carpark", "people"])
@pytest.mark.parametrize(("name", "fault", "fx", "delay"), CASES, ids=[c[0] for c in CASES])
def test_fault_fires_within_its_time(clips, clip, name, fault, fx, delay, schema) -> None:
    mon, out = run(clips[clip], after(fx), FAULT_T + delay + 2.0)
    starts = [tr for tr in out if tr.phase == "start"]
    assert starts, f"{name}: no tamper started on {clip}"
    first = starts[0]
    assert first.payload["fault"] == fault, f"{name}: first fault {first.payload} expected {fault}"
    assert FAULT_T <= first.t <= FAULT_T + delay, f"{name}: started at {first.t}, onset {FAULT_T}"
    assert first.kind == "camera_tamper" and first.camera_id == "cam0"
    assert first.started_ts is not None and first.started_ts >= TS0 + FAULT_T - 1e-6
    assert fault in mon.active_faults
    for tr in out:
        schema.validate(dict(tr.payload))
    if fault == "moved":
        assert mon.calibration_valid is False
        assert first.payload["calibration_valid"] is False
    else:
        assert mon.calibration_valid is True


@pytest.mark.parametrize("clip", ["carpark", "people"])
def test_frozen_stream(clips, clip) -> None:
    frames = clips[clip]
    held = frames[7]
    _, out = run(frames, lambda img, t: held if t >= FAULT_T else img, FAULT_T + CFG.frozen_s + 2 * DT)
    assert [(tr.phase, tr.payload["fault"]) for tr in out] == [("start", "frozen")]
    assert out[0].t <= FAULT_T + CFG.frozen_s + DT
    assert out[0].payload["value"] == 0.0


@pytest.mark.parametrize("clip", ["carpark", "people"])
def test_blur_ramp_fires_defocused(clips, clip) -> None:
    """Gaussian blur grows from sigma 0 at FAULT_T to 16 px (a sprayed lens) over 32 s, then holds."""
    ramp_end = FAULT_T + 32.0

    def blur(img: np.ndarray, t: float) -> np.ndarray:
        sigma = min(16.0, (t - FAULT_T) * 0.5)
        return cv2.GaussianBlur(img, (0, 0), sigma) if sigma >= 0.3 else img

    _, out = run(clips[clip], after(blur), ramp_end + CFG.defocused_s + DT)
    starts = [tr for tr in out if tr.phase == "start"]
    assert [tr.payload["fault"] for tr in starts] == ["defocused"]
    sigma_at_onset = (starts[0].started_ts - TS0 - FAULT_T) * 0.5
    assert sigma_at_onset >= 2.0, f"fired on a mild blur (sigma {sigma_at_onset:.1f})"
    assert starts[0].payload["value"] < CFG.defocus_ratio * starts[0].payload["baseline"]


def test_fault_ends_with_same_key_after_clear_time(clips, schema) -> None:
    frames = clips["people"]
    off_t = FAULT_T + 15.0
    fx: Fx = lambda img, t: black(img, t) if FAULT_T <= t < off_t else img  # noqa: E731
    mon, out = run(frames, fx, off_t + CFG.clear_s + 2.0)
    assert [(tr.phase, tr.payload["fault"]) for tr in out] == [("start", "covered"), ("end", "covered")]
    start, end = out
    assert start.key == end.key and start.started_ts == end.started_ts
    assert off_t + CFG.clear_s - DT <= end.t <= off_t + CFG.clear_s + DT
    assert end.payload["duration_s"] == pytest.approx(end.t - FAULT_T, abs=DT)
    schema.validate(dict(end.payload))
    assert mon.active_faults == []


def test_moved_back_restores_calibration(clips) -> None:
    frames = clips["people"]
    back_t = FAULT_T + 12.0
    shift = warp(60, 20, 0)
    fx: Fx = lambda img, t: shift(img, t) if FAULT_T <= t < back_t else img  # noqa: E731
    mon, out = run(frames, fx, back_t + CFG.clear_s + CFG.moved_check_interval_s + 2.0)
    assert [(tr.phase, tr.payload["fault"]) for tr in out] == [("start", "moved"), ("end", "moved")]
    assert out[0].payload["calibration_valid"] is False
    assert out[1].payload["calibration_valid"] is True and mon.calibration_valid


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["carpark", "people"])
def test_normal_footage_fires_nothing(clips, clip) -> None:
    mon, out = run(clips[clip], lambda img, t: img, 150.0)
    assert out == []
    assert not mon.learning and mon.brightness is not None and mon.brightness > 20


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["carpark", "people"])
def test_day_night_ramp_fires_nothing(clips, clip) -> None:
    """Dusk: brightness falls smoothly to 30 % over 3 minutes, holds, then dawn brings it back."""

    def ramp(img: np.ndarray, t: float) -> np.ndarray:
        k = 1.0 if t < FAULT_T else max(0.3, 1.0 - 0.7 * (t - FAULT_T) / 180.0)
        if t > FAULT_T + 240.0:
            k = min(1.0, 0.3 + 0.7 * (t - FAULT_T - 240.0) / 120.0)
        return gain(k)(img, t)

    mon, out = run(clips[clip], ramp, FAULT_T + 380.0)
    assert out == [], [(tr.t, tr.payload) for tr in out]
    assert mon.brightness is not None


@pytest.mark.slow
def test_rain_fires_nothing(clips) -> None:
    """Rain: bright streaks that change every frame, slightly lower contrast."""
    rng = np.random.default_rng(3)

    def rain(img: np.ndarray, t: float) -> np.ndarray:
        out = (img.astype(np.float32) * 0.85 + 20).astype(np.uint8)
        h, w = img.shape[:2]
        for _ in range(120):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.line(out, (x, y), (x + 3, y + 25), (200, 200, 200), 1)
        return out

    _, out = run(clips["people"], after(rain), FAULT_T + 60.0)
    assert out == []


def test_measures_are_gain_invariant_where_they_should_be(clips) -> None:
    """Sharpness and layout similarity do not change with brightness; contrast does."""
    from edge.health.vision_ops import grey_small

    img = clips["people"][50]
    g1 = grey_small(img, 160)
    g2 = grey_small(gain(0.3)(img, 0.0), 160)
    m1, m2 = measure(g1, None), measure(g2, None)
    assert m2.std == pytest.approx(0.3 * m1.std, rel=0.1)
    assert m2.focus == pytest.approx(m1.focus, rel=0.3)
    assert similarity(coarse(g1), coarse(g2)) > 0.98
    assert math.isnan(m1.diff) and measure(g1, g1).diff == 0.0


def test_disabled_fault_is_not_reported(clips) -> None:
    cfg = TamperConfig(baseline_s=20.0, disabled_faults=["frozen"])
    held = clips["people"][7]
    _, out = run(clips["people"], lambda img, t: held if t >= FAULT_T else img, FAULT_T + 15.0, cfg)
    assert out == []


def test_cost_per_frame(clips) -> None:
    """The per-frame detectors (not the 1 Hz feature match) stay around a millisecond."""
    import time

    mon = TamperMonitor("cam0", TamperConfig(baseline_s=5.0, disabled_faults=["moved"]))
    frames = clips["carpark"]
    costs = []
    for i in range(200):
        t0 = time.perf_counter()
        mon.update(Frame(image=frames[i], seq=i, t=i * DT, ts=TS0 + i * DT, camera_id="cam0"))
        costs.append((time.perf_counter() - t0) * 1000)
    med = float(np.median(costs))
    print(f"tamper cost per 768x432 frame: median {med:.3f} ms, p95 {np.percentile(costs, 95):.3f} ms")
    assert med < 3.0


@pytest.fixture(scope="module")
def schema() -> jsonschema.Draft202012Validator:
    import json
    from pathlib import Path

    import edge

    path = Path(edge.__file__).parent / "events/schemas/kinds/camera_tamper.json"
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


def test_resolution_change_relearns_instead_of_firing(clips) -> None:
    """A camera reconnecting at another resolution is not tampering: the monitor re-learns."""
    small = [cv2.resize(f, (640, 360)) for f in clips["people"][:60]]
    mon, out = run(clips["people"], lambda img, t: img, 25.0)
    assert not mon.learning
    for i, img in enumerate(small):
        t = 25.0 + i * DT
        out.extend(mon.update(Frame(image=img, seq=i, t=t, ts=TS0 + t, camera_id="cam0")))
    assert out == [] and mon.learning
