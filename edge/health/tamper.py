"""Camera tamper and blind detection: covered, defocused, moved, frozen, over/under-exposed.

Every frame is shrunk to a small grey thumbnail (``TamperConfig.work_width_px``) and a
handful of numpy measures are taken on it (~0.3 ms for a 768x432 frame):

- ``mean``: the scene's mean luma (also exposed as ``brightness`` for the IR relay);
- ``std``: contrast; ``focus``: mean |Laplacian| / (std + 1), a sharpness that does not
  change when the whole image gets darker or brighter (day/night) but drops with blur;
- ``entropy``: bits of the 64-bin grey histogram; ``high_frac``/``low_frac``: saturated
  and crushed pixels; ``diff``: mean |difference| to the previous thumbnail.

The camera's own baseline of these measures is learned over ``baseline_s`` (medians), then
follows the scene slowly (exponential, ``adapt_tau_s``) only while no fault is active or
pending, so dusk, dawn and weather move the baseline and a sudden fault does not.
"Moved" compares ORB features with a reference view (``vision_ops``, the only cv2 part)
every ``moved_check_interval_s``.

Each fault has time hysteresis (its condition must hold for ``<fault>_s`` to start and
be clear for ``clear_s`` to end) and value hysteresis (``clear_margin``). Starts and
ends are ``camera_tamper`` Transitions sharing one key per episode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.config.health import TamperConfig, TamperFault
from edge.health.vision_ops import FeatureMatcher, ViewDrift, grey_small
from edge.types import EventDraft, Frame, Severity

log = logging.getLogger(__name__)

FAULTS: tuple[TamperFault, ...] = ("covered", "defocused", "moved", "frozen", "overexposed", "underexposed")
_SEVERITY: dict[str, Severity] = {
    "covered": "major",
    "moved": "major",
    "frozen": "major",
    "defocused": "minor",
    "overexposed": "minor",
    "underexposed": "minor",
}
_COVERED_ENTROPY_BITS = 0.5  # below this the thumbnail is essentially one grey level
_SAT_HIGH = 250
_SAT_LOW = 8


@dataclass(frozen=True, slots=True)
class ViewMeasures:
    """The per-frame measures of one grey thumbnail (grey levels 0..255, fractions 0..1)."""

    mean: float
    std: float
    focus: float
    entropy: float
    high_frac: float
    low_frac: float
    diff: float  # mean |difference| to the previous thumbnail; NaN for the first


def coarse(grey: np.ndarray, block: int = 4) -> np.ndarray:
    """Block-mean of a grey thumbnail (float32): the scene's layout without its noise."""
    h, w = (grey.shape[0] // block) * block, (grey.shape[1] // block) * block
    g = grey[:h, :w].astype(np.float32)
    return g.reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two same-shape images, -1..1; unchanged by gain and offset
    (so night and day of one view score high), low when the view is blocked or replaced."""
    if a.shape != b.shape:
        return 0.0
    da = a - a.mean()
    db = b - b.mean()
    den = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    return float((da * db).sum()) / den if den > 1e-6 else 0.0


def measure(grey: np.ndarray, previous: np.ndarray | None) -> ViewMeasures:
    """Measure a grey uint8 thumbnail (and its difference to ``previous`` of the same shape)."""
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grey image, got shape {grey.shape} dtype {grey.dtype}")
    f = grey.astype(np.float32)
    mean = float(f.mean())
    std = float(f.std())
    lap = np.abs(4.0 * f[1:-1, 1:-1] - f[:-2, 1:-1] - f[2:, 1:-1] - f[1:-1, :-2] - f[1:-1, 2:])
    focus = float(lap.mean()) / (std + 1.0)
    hist = np.bincount((grey >> 2).ravel(), minlength=64).astype(np.float64) / grey.size
    nz = hist[hist > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    high = float(np.count_nonzero(grey >= _SAT_HIGH)) / grey.size
    low = float(np.count_nonzero(grey <= _SAT_LOW)) / grey.size
    if previous is not None and previous.shape == grey.shape:
        diff = float(np.abs(f - previous.astype(np.float32)).mean())
    else:
        diff = math.nan
    return ViewMeasures(mean, std, focus, entropy, high, low, diff)


@dataclass(slots=True)
class _Baseline:
    mean: float
    std: float
    focus: float
    high_frac: float
    low_frac: float
    diff: float

    @classmethod
    def from_samples(cls, samples: list[ViewMeasures]) -> _Baseline:
        def med(name: str) -> float:
            vals = np.array([getattr(s, name) for s in samples], np.float64)
            vals = vals[np.isfinite(vals)]
            return float(np.median(vals)) if vals.size else 0.0

        return cls(med("mean"), med("std"), med("focus"), med("high_frac"), med("low_frac"), med("diff"))

    def adapt(self, m: ViewMeasures, alpha: float) -> None:
        self.mean += alpha * (m.mean - self.mean)
        self.std += alpha * (m.std - self.std)
        self.focus += alpha * (m.focus - self.focus)
        self.high_frac += alpha * (m.high_frac - self.high_frac)
        self.low_frac += alpha * (m.low_frac - self.low_frac)
        if math.isfinite(m.diff):
            self.diff += alpha * (m.diff - self.diff)


@dataclass(slots=True)
class _Judgement:
    """One fault's verdict on one frame: bad (fault condition), clear (good by the margin), or neither."""

    bad: bool
    clear: bool
    measure: str
    value: float
    baseline: float
    threshold: float


@dataclass(slots=True)
class _FaultState:
    active: bool = False
    bad_since: float | None = None
    clear_since: float | None = None
    started_t: float = 0.0
    started_ts: float = 0.0
    key: str = ""


class TamperMonitor:
    """Tamper detection for one camera: call ``update(frame)`` on every processed frame."""

    def __init__(
        self,
        camera_id: str,
        cfg: TamperConfig,
        *,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self._perf = perf_counter
        self._enabled: tuple[TamperFault, ...] = tuple(f for f in FAULTS if f not in cfg.disabled_faults)
        self._matcher = FeatureMatcher()
        self._samples: list[ViewMeasures] = []
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._baseline: _Baseline | None = None
        self._prev: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self._layout: np.ndarray | None = None  # coarse reference layout of the normal view
        self._layouts: list[np.ndarray] = []
        self._candidates: list[tuple[float, np.ndarray, np.ndarray]] = []  # (t, layout, match-size grey)
        self.last_similarity = math.nan
        self._states: dict[str, _FaultState] = {f: _FaultState() for f in self._enabled}
        self._moved: _Judgement | None = None
        self._last_match_t: float | None = None
        self._reference_t: float | None = None
        self._ref_grey: np.ndarray | None = None
        self.last: ViewMeasures | None = None
        self.last_drift: ViewDrift | None = None
        self.calibration_valid = True
        self.cost_ms_ewma = 0.0

    # ------------------------------------------------------------------ views
    @property
    def brightness(self) -> float | None:
        """Mean luma 0..255 of the latest frame (for the IR-illuminator relay), None before any frame."""
        return None if self.last is None else self.last.mean

    @property
    def active(self) -> bool:
        """True while any tamper fault is active (the status LED shows "tamper")."""
        return any(s.active for s in self._states.values())

    @property
    def learning(self) -> bool:
        return self._baseline is None

    @property
    def active_faults(self) -> list[str]:
        return [f for f, s in self._states.items() if s.active]

    def state(self) -> dict[str, object]:
        """A summary for the health record."""
        b = self._baseline
        return {
            "learning": self.learning,
            "active": self.active_faults,
            "calibration_valid": self.calibration_valid,
            "brightness": None if self.last is None else round(self.last.mean, 1),
            "sharpness_ratio": None
            if (b is None or self.last is None or b.focus <= 0)
            else round(self.last.focus / b.focus, 3),
            "similarity": None if math.isnan(self.last_similarity) else round(self.last_similarity, 3),
            "cost_ms": round(self.cost_ms_ewma, 3),
        }

    def accept_view(self) -> None:
        """The current view is the new normal (after a deliberate re-aim and re-calibration):
        learn a fresh baseline and reference; ``calibration_valid`` becomes True."""
        self._baseline = None
        self._samples.clear()
        self._layouts.clear()
        self._candidates.clear()
        self._layout = None
        self._first_t = None
        self._reference_t = None
        self.calibration_valid = True

    # ----------------------------------------------------------------- update
    def update(self, frame: Frame) -> list[EventDraft]:
        """Measure one frame; return the tamper start/end Transitions it causes (usually none)."""
        if not self.cfg.enabled:
            return []
        t0 = self._perf()
        if frame.image.shape != self._shape:
            if self._shape is not None:
                log.info(
                    "camera resolution changed camera=%s %s -> %s; re-learning the tamper baseline",
                    self.camera_id,
                    self._shape[:2],
                    frame.image.shape[:2],
                )
                self.accept_view()
                self._prev = None
            self._shape = frame.image.shape
        grey = grey_small(frame.image, self.cfg.work_width_px)
        m = measure(grey, self._prev)
        self._prev = grey
        self.last = m
        out: list[EventDraft] = []
        if self._baseline is None:
            self._learn(frame, m)
        else:
            out = self._judge(frame, m, coarse(grey))
        self._last_t = frame.t
        cost = (self._perf() - t0) * 1000.0
        self.cost_ms_ewma = cost if self.cost_ms_ewma == 0.0 else 0.95 * self.cost_ms_ewma + 0.05 * cost
        return out

    def _learn(self, frame: Frame, m: ViewMeasures) -> None:
        if self._first_t is None:
            self._first_t = frame.t
        self._samples.append(m)
        layout = coarse(self._prev if self._prev is not None else np.zeros((8, 8), np.uint8))
        self._layouts.append(layout)
        due = not self._candidates or frame.t - self._candidates[-1][0] >= self.cfg.moved_check_interval_s
        if "moved" in self._states and due:
            self._candidates.append((frame.t, layout, grey_small(frame.image, self.cfg.match_width_px)))
        if frame.t - self._first_t >= self.cfg.baseline_s and len(self._samples) >= 3:
            self._baseline = _Baseline.from_samples(self._samples)
            self._samples.clear()
            shapes = {a.shape for a in self._layouts}
            if len(shapes) == 1:
                self._layout = np.median(np.stack(self._layouts), axis=0).astype(np.float32)
            self._layouts.clear()
            self._pick_reference(frame)
            log.info(
                "tamper baseline learned camera=%s mean=%.1f std=%.1f focus=%.3f",
                self.camera_id,
                self._baseline.mean,
                self._baseline.std,
                self._baseline.focus,
            )

    def _pick_reference(self, frame: Frame) -> None:
        """The reference view for "moved": the learning frame most like the median layout
        (an empty street rather than one a bus happens to fill)."""
        cands, self._candidates = self._candidates, []
        if self._layout is None or not cands:
            self._set_reference(frame)
            return
        layout = self._layout
        best = max(cands, key=lambda c: similarity(c[1], layout))
        self._matcher.set_reference(best[2])
        self._reference_t = frame.t

    def _set_reference(self, frame: Frame) -> None:
        if "moved" not in self._states:
            return
        grey = grey_small(frame.image, self.cfg.match_width_px)
        n = self._matcher.set_reference(grey)
        self._reference_t = frame.t
        if n == 0:
            log.info("tamper reference view has too few features camera=%s; retrying later", self.camera_id)

    def _judge(self, frame: Frame, m: ViewMeasures, layout: np.ndarray) -> list[EventDraft]:
        b = self._baseline
        assert b is not None
        cfg = self.cfg
        k = cfg.clear_margin
        verdicts: dict[str, _Judgement] = {}
        std_r = m.std / max(b.std, 1e-3)
        focus_r = m.focus / max(b.focus, 1e-6)
        over = m.high_frac - b.high_frac
        over_bad = over > cfg.overexposed_clip_frac
        sim = similarity(layout, self._layout) if self._layout is not None else 1.0
        self.last_similarity = sim
        covered_bad = not over_bad and (
            (
                std_r < cfg.covered_contrast_ratio
                and (focus_r < cfg.covered_focus_ratio or sim < cfg.covered_similarity)
            )
            or (std_r < cfg.covered_flat_ratio and m.mean < 0.5 * b.mean)
            or m.entropy < _COVERED_ENTROPY_BITS
        )
        verdicts["covered"] = _Judgement(
            bad=covered_bad,
            # structure (contrast x sharpness) must come back, with margin, before "covered" ends
            clear=m.entropy >= _COVERED_ENTROPY_BITS * k
            and (std_r >= cfg.covered_flat_ratio * k or m.mean >= 0.5 * b.mean * k)
            and (
                std_r >= cfg.covered_contrast_ratio * k
                or (focus_r >= cfg.covered_focus_ratio * k and sim >= min(0.95, cfg.covered_similarity * k))
            ),
            measure="contrast",
            value=m.std,
            baseline=b.std,
            threshold=cfg.covered_contrast_ratio * b.std,
        )
        # a covered or blown-out view hides everything else: do not also call it blurred, frozen or dark
        blind = covered_bad or over_bad or self._is_active("covered") or self._is_active("overexposed")
        verdicts["defocused"] = _Judgement(
            bad=focus_r < cfg.defocus_ratio and not blind,
            clear=focus_r >= cfg.defocus_ratio * k,
            measure="sharpness",
            value=m.focus,
            baseline=b.focus,
            threshold=cfg.defocus_ratio * b.focus,
        )
        frozen_value = m.diff if math.isfinite(m.diff) else math.inf
        verdicts["frozen"] = _Judgement(
            bad=frozen_value <= cfg.frozen_max_diff and not blind,
            clear=frozen_value > max(cfg.frozen_max_diff * k, 1e-6),
            measure="frame_diff",
            value=m.diff if math.isfinite(m.diff) else -1.0,
            baseline=b.diff,
            threshold=cfg.frozen_max_diff,
        )
        verdicts["overexposed"] = _Judgement(
            bad=over_bad,
            clear=over < cfg.overexposed_clip_frac / k,
            measure="saturated_frac",
            value=m.high_frac,
            baseline=b.high_frac,
            threshold=b.high_frac + cfg.overexposed_clip_frac,
        )
        luma_r = m.mean / max(b.mean, 1e-3)
        crushed = m.low_frac - b.low_frac
        verdicts["underexposed"] = _Judgement(
            bad=(luma_r < cfg.underexposed_luma_ratio or crushed > cfg.underexposed_clip_frac) and not blind,
            clear=luma_r >= cfg.underexposed_luma_ratio * k and crushed < cfg.underexposed_clip_frac / k,
            measure="luma",
            value=m.mean,
            baseline=b.mean,
            threshold=cfg.underexposed_luma_ratio * b.mean,
        )
        if "moved" in self._states:
            verdicts["moved"] = self._judge_moved(frame, blind)

        out: list[EventDraft] = []
        for fault, st in self._states.items():
            j = verdicts[fault]
            tr = self._step(fault, st, j, frame)
            if tr is not None:
                out.append(tr)

        quiet = not any(s.active or s.bad_since is not None for s in self._states.values())
        if quiet and self._last_t is not None:
            dt = max(0.0, frame.t - self._last_t)
            alpha = 1.0 - math.exp(-dt / cfg.adapt_tau_s)
            b.adapt(m, alpha)
            if self._layout is not None and self._layout.shape == layout.shape:
                self._layout += alpha * (layout - self._layout)
            self._maybe_refresh_reference(frame)
        return out

    def _judge_moved(self, frame: Frame, covered_bad: bool) -> _Judgement:
        cfg = self.cfg
        due = self._last_match_t is None or frame.t - self._last_match_t >= cfg.moved_check_interval_s
        if due and not covered_bad:
            self._last_match_t = frame.t
            if not self._matcher.has_reference:
                self._set_reference(frame)
            else:
                d = self._matcher.drift(grey_small(frame.image, cfg.match_width_px), cfg.moved_min_inliers)
                self.last_drift = d
                if d is not None:
                    rot = abs(d.rotation_deg)
                    by_rot = rot / cfg.moved_rotation_deg > d.shift_frac / cfg.moved_shift_frac
                    self._moved = _Judgement(
                        bad=d.shift_frac > cfg.moved_shift_frac or rot > cfg.moved_rotation_deg,
                        clear=d.shift_frac < cfg.moved_shift_frac / cfg.clear_margin
                        and rot < cfg.moved_rotation_deg / cfg.clear_margin,
                        measure="rotation_deg" if by_rot else "shift_frac",
                        value=rot if by_rot else d.shift_frac,
                        baseline=0.0,
                        threshold=cfg.moved_rotation_deg if by_rot else cfg.moved_shift_frac,
                    )
        if self._moved is None:  # nothing measurable yet: neither bad nor clear
            return _Judgement(False, False, "shift_frac", 0.0, 0.0, cfg.moved_shift_frac)
        return self._moved

    def _maybe_refresh_reference(self, frame: Frame) -> None:
        """Follow slow scene changes (shadows, night) with a fresh reference while the view is known
        to be where it should be (last drift tiny)."""
        d = self.last_drift
        if (
            self._reference_t is not None
            and frame.t - self._reference_t >= self.cfg.adapt_tau_s
            and d is not None
            and d.shift_frac < self.cfg.moved_shift_frac / 4
            and abs(d.rotation_deg) < self.cfg.moved_rotation_deg / 4
        ):
            self._set_reference(frame)

    def _is_active(self, fault: str) -> bool:
        st = self._states.get(fault)
        return st is not None and st.active

    def _hold_s(self, fault: str) -> float:
        cfg = self.cfg
        return {
            "covered": cfg.covered_s,
            "defocused": cfg.defocused_s,
            "moved": cfg.moved_s,
            "frozen": cfg.frozen_s,
            "overexposed": cfg.exposure_s,
            "underexposed": cfg.exposure_s,
        }[fault]

    def _step(self, fault: str, st: _FaultState, j: _Judgement, frame: Frame) -> EventDraft | None:
        t = frame.t
        if not st.active:
            if not j.bad:
                if j.clear:  # an ambiguous frame (between the thresholds) keeps a pending fault pending
                    st.bad_since = None
                return None
            if st.bad_since is None:
                st.bad_since = t
            if t - st.bad_since < self._hold_s(fault):
                return None
            st.active, st.clear_since = True, None
            st.started_t = st.bad_since
            st.started_ts = frame.ts - (t - st.bad_since)
            st.key = f"camera_tamper/{self.camera_id}/{fault}/{round(st.started_ts * 1000)}"
            if fault == "moved":
                self.calibration_valid = False
            log.warning(
                "camera tamper start camera=%s fault=%s %s=%.4g baseline=%.4g",
                self.camera_id,
                fault,
                j.measure,
                j.value,
                j.baseline,
            )
            return self._transition(fault, "start", st, j, frame)
        st.bad_since = None if not j.bad else st.bad_since
        if not j.clear:
            st.clear_since = None
            return None
        if st.clear_since is None:
            st.clear_since = t
        if t - st.clear_since < self.cfg.clear_s:
            return None
        st.active = False
        st.bad_since = None
        st.clear_since = None
        if fault == "moved":  # the view is back on its reference: the zone calibration fits again
            self.calibration_valid = True
        log.warning(
            "camera tamper end camera=%s fault=%s after %.1fs", self.camera_id, fault, t - st.started_t
        )
        return self._transition(fault, "end", st, j, frame)

    def _transition(self, fault: str, phase: str, st: _FaultState, j: _Judgement, frame: Frame) -> EventDraft:
        payload: dict[str, object] = {
            "fault": fault,
            "measure": j.measure,
            "value": _num(j.value),
            "baseline": _num(j.baseline),
            "threshold": _num(j.threshold),
            "calibration_valid": self.calibration_valid,
        }
        if phase == "end":
            payload["duration_s"] = round(frame.t - st.started_t, 3)
        severity = _SEVERITY[fault]
        reason = f"{j.measure} {_num(j.value)} vs baseline {_num(j.baseline)} (threshold {_num(j.threshold)})"
        return EventDraft(
            kind="camera_tamper",
            phase="start" if phase == "start" else "end",
            key=st.key,
            t=frame.t,
            ts=frame.ts,
            camera_id=self.camera_id,
            severity=severity,
            severity_reason=reason,
            started_ts=st.started_ts,
            payload=payload,
        )


def _num(x: float) -> float:
    return round(float(x), 4) if math.isfinite(x) else -1.0
