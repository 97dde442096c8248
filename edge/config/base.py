"""Base for every config model: frozen, unknown keys rejected, every field described."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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


MIN_POLYGON_AREA = 1e-6  # of the frame (normalised units): ~2 px on a 1920x1080 frame


def polygon_area(points: list[Point]) -> float:
    """Unsigned area of a polygon (shoelace)."""
    n = len(points)
    twice = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    return abs(twice) / 2.0


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_touch(a: Point, b: Point, c: Point, d: Point) -> bool:
    """True if segments ab and cd cross or touch (including collinear overlap)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def polygon_problem(points: list[Point]) -> str | None:
    """Why a polygon is not a usable region (repeated point, an outline that crosses or touches
    itself, zero area), or None. Points are numbered from 0 as in the YAML list."""
    n = len(points)
    for i in range(n):
        if tuple(points[i]) == tuple(points[(i + 1) % n]):
            return f"point {(i + 1) % n} repeats point {i}; remove the duplicate"
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbouring edges share a point; they are wrong only if they fold back onto each other.
                shared = b if j == i + 1 else a
                p = a if j == i + 1 else b
                q = points[(j + 1) % n] if j == i + 1 else points[j]
                folds = _orient(p, shared, q) == 0 and (
                    (p[0] - shared[0]) * (q[0] - shared[0]) + (p[1] - shared[1]) * (q[1] - shared[1]) > 0
                )
                if folds and n > 3:
                    return f"the outline folds back on itself at point {(i + 1) % n if j == i + 1 else i}"
                continue
            c, d = points[j], points[(j + 1) % n]
            if segments_touch(a, b, c, d):
                return (
                    f"is self-intersecting: the edge from point {i} to {(i + 1) % n} crosses the edge from "
                    f"point {j} to {(j + 1) % n}; list the points in order around the outline"
                )
    if polygon_area(points) < MIN_POLYGON_AREA:
        return "has zero area (its points are collinear); a region must enclose part of the frame"
    return None


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
