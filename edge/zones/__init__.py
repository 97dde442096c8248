"""Zones: normalised polygons compiled to pixels, ground-plane calibration, schedules, membership."""

from edge.zones.calibration import Homography
from edge.zones.geometry import CompiledZone, compile_zones, points_in_polygon, polygon_area
from edge.zones.membership import ZoneMembership
from edge.zones.schedule import Schedule

__all__ = [
    "CompiledZone",
    "Homography",
    "Schedule",
    "ZoneMembership",
    "compile_zones",
    "points_in_polygon",
    "polygon_area",
]
