"""Device health, camera tamper and systemd supervision."""

from edge.health.report import (
    CameraHealth,
    CameraStatusMonitor,
    HealthInputs,
    build_health_payload,
    camera_status_draft,
    health_draft,
)
from edge.health.stats import CameraStats
from edge.health.system import SystemSampler, sample_system

__all__ = [
    "CameraHealth",
    "CameraStats",
    "CameraStatusMonitor",
    "HealthInputs",
    "SystemSampler",
    "build_health_payload",
    "camera_status_draft",
    "health_draft",
    "sample_system",
]
