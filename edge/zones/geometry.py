"""Pure, vectorised plane geometry: point-in-polygon, areas, segment crossings, zone compilation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.classes import CLASSES, resolve
from edge.config.zones import ZoneConfig


def polygon_edges(polygon: np.ndarray) -> np.ndarray:
    """(5,V) rows x1, y1, x2, y2, (x2-x1)/(y2-y1) of a polygon's edges (precompute once per zone)."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    dy = np.where(y2 == y1, 1e-12, y2 - y1)
    return np.stack([x1, y1, x2, y2, (x2 - x1) / dy])


def points_in_polygon(points: np.ndarray, polygon: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """Even-odd rule for (N,2) points against one (V,2) polygon; (N,) bool. Vectorised over N×V."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros(0, bool)
    e = polygon_edges(polygon) if edges is None else edges
    x = pts[:, 0:1]
    y = pts[:, 1:2]
    straddle = (e[1] > y) != (e[3] > y)
    xcross = e[0] + (y - e[1]) * e[4]
    hits = straddle & (x < xcross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) distance from each point to the nearest edge of a (V,2) polygon (vectorised over N×V)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    a = np.asarray(polygon, np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros(0)
    b = np.roll(a, -1, axis=0)
    ab = b - a  # (V,2)
    ap = pts[:, None, :] - a[None, :, :]  # (N,V,2)
    denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
    u = np.clip((ap * ab[None]).sum(axis=2) / denom[None], 0.0, 1.0)
    closest = a[None] + u[..., None] * ab[None]
    return np.sqrt(((pts[:, None, :] - closest) ** 2).sum(axis=2)).min(axis=1)


def polygon_area(polygon: np.ndarray) -> float:
    """Shoelace area of a (V,2) polygon (absolute value)."""
    p = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) * 0.5)


def segments_cross(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed crossings of N moves p0->p1 over segment a-b.

    Returns (N,) int8: +1 when the move goes from the left of a->b to its right, as seen by someone
    standing at a looking towards b on the screen (image y points down), -1 the other way, 0 for none.
    """
    p0 = np.asarray(p0, np.float64).reshape(-1, 2)
    p1 = np.asarray(p1, np.float64).reshape(-1, 2)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = b - a

    def side(p: np.ndarray) -> np.ndarray:
        return np.sign(d[0] * (p[:, 1] - a[1]) - d[1] * (p[:, 0] - a[0]))

    s0, s1 = side(p0), side(p1)
    m = p1 - p0
    # Where the other segment's ends lie relative to the move.
    ca = np.sign(m[:, 0] * (a[1] - p0[:, 1]) - m[:, 1] * (a[0] - p0[:, 0]))
    cb = np.sign(m[:, 0] * (b[1] - p0[:, 1]) - m[:, 1] * (b[0] - p0[:, 0]))
    crosses = (s0 != 0) & (s1 != 0) & (s0 != s1) & (ca != cb)
    # With y down, side() < 0 is the left of a->b.
    out = np.zeros(p0.shape[0], np.int8)
    out[crosses & (s0 < 0)] = 1
    out[crosses & (s0 > 0)] = -1
    return out


@dataclass(frozen=True, slots=True)
class CompiledZone:
    """A zone in pixel coordinates for one frame size."""

    config: ZoneConfig
    polygon_px: np.ndarray  # (V,2) float64
    exclude_px: tuple[np.ndarray, ...]
    class_ids: frozenset[int]
    area_px: float
    edges: np.ndarray | None = None

    @property
    def class_lut(self) -> np.ndarray:
        return class_lut(self.class_ids)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def kind(self) -> str:
        return self.config.kind

    def contains(self, anchors: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
        """(N,) bool: anchor inside the polygon, outside every exclusion, and of a watched class."""
        return self.contains_with_margin(anchors, class_ids, None)[0]

    def contains_with_margin(
        self,
        anchors: np.ndarray,
        class_ids: np.ndarray | None,
        margin_px: np.ndarray | None,
        check: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(inside, inside-or-within ``margin_px`` (N,) outside the outer edge), both (N,) bool.

        The margin test runs only on rows where ``check`` is true (the current members), if given.
        """
        edges = self.edges if self.edges is not None else polygon_edges(self.polygon_px)
        inside = points_in_polygon(anchors, self.polygon_px, edges)
        near = inside.copy()
        if margin_px is not None and anchors.shape[0]:
            out = np.flatnonzero(~inside if check is None else (~inside & check))
            if out.size:
                near[out[distance_to_polygon(anchors[out], self.polygon_px) <= margin_px[out]]] = True
        keep = np.ones(inside.shape, bool)
        for ex in self.exclude_px:
            keep &= ~points_in_polygon(anchors, ex)
        if class_ids is not None:
            keep &= self._lut[np.asarray(class_ids) + 1]
        return inside & keep, near & keep

    @property
    def _lut(self) -> np.ndarray:
        return _lut_cache(self.class_ids)


_LUTS: dict[frozenset[int], np.ndarray] = {}


def class_lut(ids: frozenset[int]) -> np.ndarray:
    """Boolean table indexed by ``class_id + 1`` (so OTHER = -1 maps to 0): True for ``ids``."""
    lut = np.zeros(len(CLASSES) + 1, bool)
    for i in ids:
        lut[i + 1] = True
    return lut


def _lut_cache(ids: frozenset[int]) -> np.ndarray:
    lut = _LUTS.get(ids)
    if lut is None:
        lut = _LUTS[ids] = class_lut(ids)
    return lut


def to_pixels(points: Sequence[tuple[float, float]] | np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(points, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)


def compile_zones(zones: Sequence[ZoneConfig], width: int, height: int) -> list[CompiledZone]:
    """Normalised zone polygons -> pixel polygons for a ``width`` x ``height`` frame."""
    out: list[CompiledZone] = []
    for z in zones:
        poly = to_pixels(z.polygon, width, height)
        out.append(
            CompiledZone(
                config=z,
                polygon_px=poly,
                exclude_px=tuple(to_pixels(e, width, height) for e in z.exclude),
                class_ids=resolve(z.class_names()),
                area_px=polygon_area(poly),
                edges=polygon_edges(poly),
            )
        )
    return out
