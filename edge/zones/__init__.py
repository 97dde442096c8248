"""Zones: normalised polygons compiled to pixels, the ground plane, schedules, membership."""

from edge.zones.calibration import GroundPlane, ground_plane
from edge.zones.geometry import CompiledZone, compile_zones
from edge.zones.membership import ZoneMembership
from edge.zones.schedule import Schedule

__all__ = ["CompiledZone", "GroundPlane", "Schedule", "ZoneMembership", "compile_zones", "ground_plane"]
