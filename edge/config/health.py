"""Health, camera tamper, motion gating and supervision settings (owned by the health stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from edge.config.base import Field, StrictModel

TamperFault = Literal["covered", "defocused", "moved", "frozen", "overexposed", "underexposed"]


class TamperConfig(StrictModel):
    """Camera tamper and blind detection for one camera.

    Every threshold is relative to the camera's own baseline, learned during the first
    ``baseline_s`` seconds and then adapted slowly (``adapt_tau_s``) while no fault is
    active, so day/night changes and weather move the baseline instead of firing.
    """

    enabled: bool = Field(
        True, description="Detect covered, defocused, moved, frozen and badly exposed views."
    )
    disabled_faults: list[TamperFault] = Field(
        default_factory=list,
        description="Faults not to report for this camera, e.g. [frozen] for a still-image source.",
    )
    check_interval_s: float = Field(
        0.5,
        ge=0,
        le=10,
        description="Run the tamper measures at most this often (frame time); 0 checks every frame. Faults hold for seconds, so 2 checks/s keep the detectors' latency while leaving the CPU to inference.",
    )
    work_width_px: int = Field(
        160, ge=64, le=640, description="Width of the grey thumbnail the per-frame measures run on."
    )
    match_width_px: int = Field(
        320, ge=128, le=1280, description="Width of the grey image used for feature matching (camera moved)."
    )
    baseline_s: float = Field(
        30.0,
        gt=0,
        description="Seconds of footage used to learn the camera's normal view before faults are judged.",
    )
    adapt_tau_s: float = Field(
        300.0,
        gt=0,
        description="Time constant of the slow baseline adaptation (only while no fault is active or pending).",
    )
    covered_contrast_ratio: float = Field(
        0.35,
        gt=0,
        lt=1,
        description="Covered when the contrast (grey std) falls below this fraction of the baseline...",
    )
    covered_focus_ratio: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="...and either the normalised sharpness falls below this fraction (a hand or cap is blurred)...",
    )
    covered_similarity: float = Field(
        0.5,
        ge=-1,
        lt=1,
        description="...or the coarse layout's correlation with the learned view falls below this (the scene is gone).",
    )
    covered_flat_ratio: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Also covered when the contrast alone falls below this fraction of the baseline in a dark view.",
    )
    covered_s: float = Field(
        5.0, ge=0, description="How long the view must stay covered before a fault starts."
    )
    defocus_ratio: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Defocused/sprayed when the normalised sharpness falls below this fraction of the baseline.",
    )
    defocused_s: float = Field(
        10.0, ge=0, description="How long the view must stay blurred before a fault starts."
    )
    moved_shift_frac: float = Field(
        0.04,
        gt=0,
        lt=1,
        description="Moved when the view is displaced by more than this fraction of the image width...",
    )
    moved_rotation_deg: float = Field(
        2.0, gt=0, le=90, description="...or rotated by more than this many degrees."
    )
    moved_min_inliers: int = Field(
        20, ge=6, description="Feature matches that must agree before a displacement is believed."
    )
    moved_check_interval_s: float = Field(
        1.0, gt=0, description="How often the view is matched against the reference (it costs a few ms)."
    )
    moved_s: float = Field(
        5.0, ge=0, description="How long the view must stay displaced before a fault starts."
    )
    frozen_max_diff: float = Field(
        0.05,
        ge=0,
        description="Frozen when consecutive thumbnails differ by at most this mean grey level (0..255).",
    )
    frozen_s: float = Field(
        10.0, ge=0, description="How long the image must stay identical before a fault starts."
    )
    overexposed_clip_frac: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Overexposed when the fraction of saturated pixels exceeds the baseline's by this much.",
    )
    underexposed_luma_ratio: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="Underexposed when the mean brightness falls below this fraction of the baseline (while textured).",
    )
    underexposed_clip_frac: float = Field(
        0.4,
        gt=0,
        lt=1,
        description="...or the fraction of crushed-black pixels exceeds the baseline's by this much.",
    )
    exposure_s: float = Field(
        5.0, ge=0, description="How long a bad exposure must last before a fault starts."
    )
    clear_s: float = Field(
        3.0,
        ge=0,
        description="How long a fault's condition must stay clear before the fault ends (hysteresis).",
    )
    clear_margin: float = Field(
        1.2,
        ge=1.0,
        le=3.0,
        description="A fault ends only once its measure is this factor back on the good side of the threshold.",
    )


class GatingConfig(StrictModel):
    """Motion gating: skip inference while nothing in the camera's zones changes."""

    enabled: bool = Field(False, description="Skip the detector on frames whose zones show no motion.")
    energy_threshold: float = Field(
        0.002,
        ge=0,
        description="Zone motion energy (fraction of changed pixels, from edge.vision.motion) below which a frame is skipped.",
    )
    recheck_s: float = Field(
        5.0,
        gt=0,
        description="While stationary tracks exist, run the detector at least this often to keep them.",
    )
    max_skip_s: float = Field(
        30.0,
        gt=0,
        description="Run the detector at least this often even when nothing moves and nothing is tracked.",
    )

    @model_validator(mode="after")
    def _order(self) -> GatingConfig:
        if self.recheck_s > self.max_skip_s:
            raise ValueError("recheck_s: must be <= max_skip_s (stationary tracks are re-checked more often)")
        return self


class MetricsConfig(StrictModel):
    """An optional Prometheus text endpoint on localhost."""

    enabled: bool = Field(False, description="Serve /metrics in the Prometheus text format.")
    host: str = Field(
        "127.0.0.1", description="Address to bind; keep it on loopback (scrape through a tunnel)."
    )
    port: int = Field(9108, ge=0, le=65535, description="TCP port for /metrics (0 picks a free port).")

    @model_validator(mode="after")
    def _loopback(self) -> MetricsConfig:
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(
                f"host: {self.host!r} is not a loopback address; /metrics has no authentication, bind 127.0.0.1"
            )
        return self


class WatchdogConfig(StrictModel):
    """systemd notify and watchdog supervision."""

    enabled: bool = Field(
        True, description="Send READY/WATCHDOG/STOPPING to systemd when NOTIFY_SOCKET is set."
    )
    stall_s: float = Field(
        20.0,
        gt=0,
        description="Stop watchdog pings when no frame has been processed for this long, so systemd restarts a wedged pipeline.",
    )
    ping_interval_s: float | None = Field(
        None,
        gt=0,
        description="Seconds between pings; None uses half of systemd's WatchdogSec (WATCHDOG_USEC).",
    )


class HealthConfig(StrictModel):
    """Device health reporting."""

    health_interval_s: float = Field(
        60.0, gt=0, description="How often a health record is published and logged."
    )
    stats_window_s: float = Field(
        60.0, gt=0, description="Window over which fps and inference latency percentiles are computed."
    )
    disk_path: str | None = Field(
        None,
        description="Filesystem whose free space is reported; None means the outbox's (uplink.outbox_path).",
    )
    thermal_root: str = Field(
        "/sys/class/thermal", description="Where SoC temperatures are read (thermal_zone*/temp)."
    )
    gating: GatingConfig = Field(default_factory=GatingConfig, description="Motion gating of inference.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Optional Prometheus endpoint.")
    watchdog: WatchdogConfig = Field(
        default_factory=WatchdogConfig, description="systemd notify and watchdog."
    )
