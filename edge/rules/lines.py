"""Directional line crossings (in/out counts per line), with a dead band against jitter.

Each track has a *settled side* per line: the side its anchor was last seen on while more than
``band`` (a fraction of its box height) away from the line. A crossing is counted when the settled
side flips while the anchor is within the segment's extent, so an object wobbling on the line is
counted once, not on every wobble. 'in' is left -> right as seen from ``a`` looking towards ``b``.
"""

from __future__ import annotations

import numpy as np

from edge.classes import class_name, resolve
from edge.config.zones import LineConfig
from edge.rules.context import StepContext, transition
from edge.types import Transition
from edge.zones.geometry import class_lut


class LineCounter:
    def __init__(
        self, lines: list[LineConfig], emit_events: bool, band: float = 0.03, forget_s: float = 5.0
    ) -> None:
        self.lines = lines
        self.emit = emit_events
        self.band = band
        self.forget_s = forget_s
        self.classes = [class_lut(resolve(ln.classes)) for ln in lines]
        self.total_in = np.zeros(len(lines), np.int64)
        self.total_out = np.zeros(len(lines), np.int64)
        self.ids = np.zeros(0, np.int64)
        self.side = np.zeros((0, len(lines)), np.int8)
        self.seen_t = np.zeros(0)

    def update(self, ctx: StepContext) -> tuple[list[Transition], np.ndarray, np.ndarray]:
        """Transitions, plus (L,) in and out counts of this step."""
        out: list[Transition] = []
        n_lines = len(self.lines)
        step_in = np.zeros(n_lines, np.int64)
        step_out = np.zeros(n_lines, np.int64)
        if n_lines == 0:
            return out, step_in, step_out
        tr = ctx.tracks
        ids = tr.track_id
        all_ids = np.union1d(self.ids, ids)
        side = np.zeros((all_ids.size, n_lines), np.int8)
        seen_t = np.full(all_ids.size, -np.inf)
        if self.ids.size:
            k = np.searchsorted(all_ids, self.ids)
            side[k], seen_t[k] = self.side, self.seen_t
        cur = np.searchsorted(all_ids, ids)
        prev_side = side[cur]
        wh = np.array([ctx.width, ctx.height], np.float64)
        band = (tr.xyxy[:, 3] - tr.xyxy[:, 1]).astype(np.float64) * self.band
        p = ctx.anchors
        new_side = np.zeros((ids.size, n_lines), np.int8)
        for li, ln in enumerate(self.lines):
            a, b = np.asarray(ln.a) * wh, np.asarray(ln.b) * wh
            d = b - a
            length = float(np.hypot(*d))
            # Signed distance (negative = left of a->b on screen, y down) and position along the segment.
            dist = (d[0] * (p[:, 1] - a[1]) - d[1] * (p[:, 0] - a[0])) / length
            u = ((p[:, 0] - a[0]) * d[0] + (p[:, 1] - a[1]) * d[1]) / (length * length)
            now = np.where(dist < -band, -1, np.where(dist > band, 1, 0)).astype(np.int8)
            now[~self.classes[li][tr.class_id + 1]] = 0
            new_side[:, li] = np.where(now != 0, now, prev_side[:, li])
            flip = (now != 0) & (prev_side[:, li] != 0) & (now != prev_side[:, li]) & (u >= 0) & (u <= 1)
            n_in = int((flip & (now > 0)).sum())
            n_out = int((flip & (now < 0)).sum())
            step_in[li], step_out[li] = n_in, n_out
            self.total_in[li] += n_in
            self.total_out[li] += n_out
            if self.emit and (n_in or n_out):
                for j in np.flatnonzero(flip).tolist():
                    direction = "in" if now[j] > 0 else "out"
                    tid = int(ids[j])
                    out.append(
                        transition(
                            ctx,
                            kind="line_crossing",
                            phase="instant",
                            key=f"line_crossing:{ctx.camera_id}:{ln.id}:{tid}:{ctx.t:.3f}",
                            zone_id=ln.id,
                            track_id=tid,
                            payload={
                                "line_id": ln.id,
                                "direction": direction,
                                "track_id": tid,
                                "class": class_name(int(tr.class_id[j])),
                                "in_total": int(self.total_in[li]),
                                "out_total": int(self.total_out[li]),
                            },
                        )
                    )
        side[cur] = new_side
        seen_t[cur] = ctx.t
        keep = ctx.t - seen_t <= self.forget_s
        self.ids, self.side, self.seen_t = all_ids[keep], side[keep], seen_t[keep]
        return out, step_in, step_out
