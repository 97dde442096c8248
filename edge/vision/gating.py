"""Motion gating: skip inference on frames where nothing in the camera's zones changes.

It decides whether the detector runs, so it lives beside the detector and the motion energy it reads.

The motion energy comes from ``edge.vision.motion.MotionEnergy`` (fraction of changed
pixels inside the zones). Parked vehicles do not move, so while the tracker holds
stationary tracks an inference is forced every ``recheck_s`` to keep them confirmed
(a parking violation stays open); and at least every ``max_skip_s`` regardless, so a
slow change that the motion detector misses is still seen. Time is the frame's ``t``.
"""

from __future__ import annotations

from edge.config.health import GatingConfig


class MotionGate:
    """Decides, frame by frame, whether the detector runs. One per camera."""

    def __init__(self, cfg: GatingConfig) -> None:
        self.cfg = cfg
        self._last_infer_t: float | None = None
        self.frames = 0
        self.skipped = 0

    def should_infer(self, t: float, energy: float | None, has_stationary: bool) -> bool:
        """True when the detector should run on the frame at monotonic time ``t``.

        ``energy`` is the zones' motion energy (None = unknown, which always infers);
        ``has_stationary`` whether the tracker currently holds stationary tracks.
        """
        self.frames += 1
        run = self._decide(t, energy, has_stationary)
        if run:
            self._last_infer_t = t
        else:
            self.skipped += 1
        return run

    def _decide(self, t: float, energy: float | None, has_stationary: bool) -> bool:
        cfg = self.cfg
        if not cfg.enabled or energy is None or self._last_infer_t is None:
            return True
        if energy >= cfg.energy_threshold:
            return True
        since = t - self._last_infer_t
        if since < 0:  # clock went backwards (source restarted): infer and re-anchor
            return True
        if has_stationary and since >= cfg.recheck_s:
            return True
        return since >= cfg.max_skip_s

    @property
    def skipped_fraction(self) -> float:
        """Fraction of frames so far whose inference was skipped (0 before any frame)."""
        return self.skipped / self.frames if self.frames else 0.0
