"""Base for every config model: frozen, unknown keys rejected, every field described."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge.geometry import polygon_problem

__all__ = ["Field", "StrictModel"]


class StrictModel(BaseModel):
    """Frozen, ``extra="forbid"``. Subclasses give every field a ``description``.

    Durations are seconds and carry an ``_s`` suffix; a test walks every model and
    fails on a field without a description.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


Point = tuple[float, float]


def check_point(p: Point) -> Point:
    """A normalised image point: both coordinates within 0..1."""
    x, y = p
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point [{x}, {y}] is outside 0..1; coordinates are fractions of the frame width/height")
    return p


#: How far beyond the frame (normalised) a region's vertex may lie: a zone drawn over the frame's edge.
REGION_REACH = 0.1


def check_polygon(points: list[Point], *, min_points: int = 3) -> list[Point]:
    """At least ``min_points`` normalised vertices forming a simple polygon with an area.

    Vertices may lie up to ``REGION_REACH`` beyond the frame: a region drawn to (or over) the frame's
    border includes the objects cut by it (their anchor lies on the border).
    """
    if len(points) < min_points:
        raise ValueError(f"needs at least {min_points} points, got {len(points)}")
    lo, hi = -REGION_REACH, 1.0 + REGION_REACH
    for x, y in points:
        if not (lo <= x <= hi and lo <= y <= hi):
            raise ValueError(
                f"point [{x}, {y}] is outside 0..1 by more than {REGION_REACH}; coordinates are fractions of "
                f"the frame width/height (a zone may reach up to {REGION_REACH} over the frame's edge)"
            )
    problem = polygon_problem(points)
    if problem is not None:
        raise ValueError(problem)
    return points
