"""The street rules: parking violations, bike bays with dispatch, crowd density, line counts."""

from edge.rules.analytics import CameraAnalytics, EvidenceSink

__all__ = ["CameraAnalytics", "EvidenceSink"]
