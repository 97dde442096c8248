"""What every rule sees in one step: the frame's time, the tracks and their zone membership."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.types import Detections, EventDraft, Tracks
from edge.zones.geometry import CompiledZone
from edge.zones.membership import MembershipView


@dataclass(frozen=True, slots=True)
class StepContext:
    camera_id: str
    t: float
    ts: float
    width: int
    height: int
    image: np.ndarray | None  # HxWx3 BGR, None when rules run on tracks alone
    tracks: Tracks
    anchors: np.ndarray  # (N,2) px
    zones: tuple[CompiledZone, ...]
    active: np.ndarray  # (Z,) bool: zone schedule in force now
    member: MembershipView
    all_class: np.ndarray  # (K,) int32: last known class of every id in member.all_ids
    # (Z, 1 + len(CLASSES)) int: per zone, the objects in it that are visible now, by class (column 0 is
    # 'other', column c + 1 class c): the confirmed tracks seen in this frame whose anchor is inside, plus
    # this frame's detections no track has taken yet (tentative tracks). None when not computed.
    visible: np.ndarray | None = None
    detections: Detections | None = None  # this frame's detections, when the pipeline passed them

    def class_of(self, track_id: int) -> int:
        ids = self.member.all_ids
        k = int(np.searchsorted(ids, track_id))
        if k < ids.size and ids[k] == track_id:
            return int(self.all_class[k])
        hit = np.flatnonzero(self.tracks.track_id == track_id)
        return int(self.tracks.class_id[hit[0]]) if hit.size else -1


def fmt_duration(s: float) -> str:
    """Duration in words an operator reads: '45 s', '14 min', '2 h 05 min'."""
    s = max(0.0, float(s))
    if s < 120:
        return f"{round(s)} s"
    m = round(s / 60)
    if m < 120:
        return f"{m} min"
    return f"{m // 60} h {m % 60:02d} min"


def draft(ctx: StepContext, **kw: object) -> EventDraft:
    return EventDraft(t=ctx.t, ts=ctx.ts, camera_id=ctx.camera_id, **kw)  # type: ignore[arg-type]


class Rule(Protocol):
    """A street rule of one camera: one step of its zones' state, the drafts of what changed."""

    def update(self, ctx: StepContext) -> list[EventDraft]: ...
