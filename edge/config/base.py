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


def check_polygon(points: list[Point], *, min_points: int = 3) -> list[Point]:
    """At least ``min_points`` normalised vertices, all within 0..1, forming a simple polygon with an area."""
    if len(points) < min_points:
        raise ValueError(f"needs at least {min_points} points, got {len(points)}")
    for p in points:
        check_point(p)
    problem = polygon_problem(points)
    if problem is not None:
        raise ValueError(problem)
    return points
