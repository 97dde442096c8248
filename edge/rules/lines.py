"""Directional line crossings (in/out counts per line) from consecutive track anchors."""

from __future__ import annotations

import numpy as np

from edge.classes import class_name, resolve
from edge.config.zones import LineConfig
from edge.rules.context import StepContext, transition
from edge.types import Transition
from edge.zones.geometry import class_lut, segments_cross


class LineCounter:
    def __init__(self, lines: list[LineConfig], emit_events: bool) -> None:
        self.lines = lines
        self.emit = emit_events
        self.classes = [class_lut(resolve(ln.classes)) for ln in lines]
        self.total_in = np.zeros(len(lines), np.int64)
        self.total_out = np.zeros(len(lines), np.int64)
        self.ids = np.zeros(0, np.int64)
        self.prev = np.zeros((0, 2))
        self.prev_t = np.zeros(0)

    def update(self, ctx: StepContext, forget_s: float = 5.0) -> tuple[list[Transition], np.ndarray, np.ndarray]:
        """Transitions, plus (L,) in and out counts of this step."""
        out: list[Transition] = []
        step_in = np.zeros(len(self.lines), np.int64)
        step_out = np.zeros(len(self.lines), np.int64)
        tr = ctx.tracks
        ids = tr.track_id
        cur = ctx.anchors
        if self.ids.size and ids.size:
            pos = np.clip(np.searchsorted(self.ids, ids), 0, self.ids.size - 1)
            has = self.ids[pos] == ids
            p0 = np.where(has[:, None], self.prev[pos], cur)
        else:
            has = np.zeros(ids.size, bool)
            p0 = cur
        wh = np.array([ctx.width, ctx.height], np.float64)
        for li, ln in enumerate(self.lines):
            if not has.any():
                break
            a, b = np.asarray(ln.a) * wh, np.asarray(ln.b) * wh
            sign = segments_cross(p0, cur, a, b)
            sign[~has | ~self.classes[li][tr.class_id + 1]] = 0
            n_in, n_out = int((sign > 0).sum()), int((sign < 0).sum())
            step_in[li], step_out[li] = n_in, n_out
            self.total_in[li] += n_in
            self.total_out[li] += n_out
            if self.emit:
                for j in np.flatnonzero(sign).tolist():
                    d = "in" if sign[j] > 0 else "out"
                    tid = int(ids[j])
                    out.append(
                        transition(
                            ctx, kind="line_crossing", phase="instant", key=f"line_crossing:{ctx.camera_id}:{ln.id}:{tid}:{ctx.t:.3f}",
                            zone_id=ln.id, track_id=tid,
                            payload={"line_id": ln.id, "direction": d, "track_id": tid, "class": class_name(int(tr.class_id[j])),
                                     "in_total": int(self.total_in[li]), "out_total": int(self.total_out[li])},
                        )
                    )
        # Remember the latest anchor of every track; forget tracks unseen for forget_s.
        all_ids = np.union1d(self.ids, ids)
        prev = np.zeros((all_ids.size, 2))
        prev_t = np.full(all_ids.size, -np.inf)
        if self.ids.size:
            k = np.searchsorted(all_ids, self.ids)
            prev[k], prev_t[k] = self.prev, self.prev_t
        if ids.size:
            k = np.searchsorted(all_ids, ids)
            prev[k], prev_t[k] = cur, ctx.t
        keep = ctx.t - prev_t <= forget_s
        self.ids, self.prev, self.prev_t = all_ids[keep], prev[keep], prev_t[keep]
        return out, step_in, step_out
