"""Device health, camera tamper, motion gating and systemd supervision."""

from edge.health.gating import MotionGate
from edge.health.report import (
    CameraHealth,
    CameraStatusMonitor,
    HealthInputs,
    build_health_payload,
    camera_status_transition,
    health_transition,
)
from edge.health.stats import CameraStats
from edge.health.system import SystemSampler, sample_system

__all__ = [
    "CameraHealth",
    "CameraStats",
    "CameraStatusMonitor",
    "HealthInputs",
    "MotionGate",
    "SystemSampler",
    "build_health_payload",
    "camera_status_transition",
    "health_transition",
    "sample_system",
]
