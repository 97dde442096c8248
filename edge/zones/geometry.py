"""Zones compiled to pixels for one frame size (the plane geometry itself is ``edge.geometry``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.classes import CLASSES, resolve
from edge.config.zones import ZoneConfig
from edge.geometry import (
    clip_polygon_to_rect,
    distance_to_polygon,
    points_in_polygon,
    polygon_area,
    polygon_edges,
    reach_frame_edges,
    to_pixels,
)


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


def region_px(points: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """A normalised region (zone, exclusion, mask) in pixels of a ``width`` x ``height`` frame, its
    vertices on or beyond the frame border moved just past it so objects cut by the border are inside."""
    return reach_frame_edges(to_pixels(points, width, height), width, height)


def compile_zones(zones: Sequence[ZoneConfig], width: int, height: int) -> list[CompiledZone]:
    """Normalised zone polygons -> pixel polygons for a ``width`` x ``height`` frame.

    A zone drawn to the frame's border (or over it) includes the anchors on the border, where the
    boxes of objects cut by the frame end (``region_px``); its area is the part inside the frame.
    """
    out: list[CompiledZone] = []
    for z in zones:
        poly = region_px(z.polygon, width, height)
        out.append(
            CompiledZone(
                config=z,
                polygon_px=poly,
                exclude_px=tuple(region_px(e, width, height) for e in z.exclude),
                class_ids=resolve(z.class_names()),
                area_px=polygon_area(clip_polygon_to_rect(poly, 0, 0, width, height)),
                edges=polygon_edges(poly),
            )
        )
    return out
