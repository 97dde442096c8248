"""Directional line crossings (in/out counts per line), with a dead band against jitter.

Each track has a *settled side* per line: the side its anchor was last seen on while more than
``band`` (a fraction of its box height) away from the line. A crossing is counted when the anchor
has stayed on the other side for ``hold_s`` (a pending flip) while within the segment's extent, so
an object wobbling on the line -- or a box clipped by the frame edge whose bottom jitters -- is
counted once, not on every wobble. 'in' is left -> right as seen from ``a`` looking towards ``b``.
"""

from __future__ import annotations

import numpy as np

from edge.classes import class_name, resolve
from edge.config.zones import LineConfig
from edge.rules.context import StepContext, draft
from edge.types import EventDraft
from edge.zones.geometry import class_lut


class LineCounter:
    def __init__(
        self,
        lines: list[LineConfig],
        emit_events: bool,
        band: float = 0.03,
        forget_s: float = 5.0,
        hold_s: float = 0.0,
    ) -> None:
        self.lines = lines
        self.hold_s = hold_s
        self.emit = emit_events
        self.band = band
        self.forget_s = forget_s
        self.classes = [class_lut(resolve(ln.classes)) for ln in lines]
        self.total_in = np.zeros(len(lines), np.int64)
        self.total_out = np.zeros(len(lines), np.int64)
        self.ids = np.zeros(0, np.int64)
        self.side = np.zeros((0, len(lines)), np.int8)
        self.pend = np.zeros((0, len(lines)), np.int8)  # the side a pending flip goes to (0: none)
        self.pend_t = np.zeros((0, len(lines)))  # since when
        self.seen_t = np.zeros(0)

    def update(self, ctx: StepContext) -> tuple[list[EventDraft], np.ndarray, np.ndarray]:
        """Transitions, plus (L,) in and out counts of this step."""
        out: list[EventDraft] = []
        n_lines = len(self.lines)
        step_in = np.zeros(n_lines, np.int64)
        step_out = np.zeros(n_lines, np.int64)
        if n_lines == 0:
            return out, step_in, step_out
        tr = ctx.tracks
        ids = tr.track_id
        all_ids = np.union1d(self.ids, ids)
        side = np.zeros((all_ids.size, n_lines), np.int8)
        pend = np.zeros((all_ids.size, n_lines), np.int8)
        pend_t = np.zeros((all_ids.size, n_lines))
        seen_t = np.full(all_ids.size, -np.inf)
        if self.ids.size:
            k = np.searchsorted(all_ids, self.ids)
            side[k], seen_t[k], pend[k], pend_t[k] = self.side, self.seen_t, self.pend, self.pend_t
        cur = np.searchsorted(all_ids, ids)
        prev_side = side[cur]
        prev_pend, prev_pend_t = pend[cur], pend_t[cur]
        new_pend = np.zeros((ids.size, n_lines), np.int8)
        new_pend_t = np.zeros((ids.size, n_lines))
        wh = np.array([ctx.width, ctx.height], np.float64)
        band = (tr.xyxy[:, 3] - tr.xyxy[:, 1]).astype(np.float64) * self.band
        p = ctx.anchors.astype(np.float64, copy=True)
        # A box cut off by the bottom of the frame has its ground point below the frame, not on the
        # edge: put it there, so an object walking in from the camera side has a settled side at once.
        clipped = tr.xyxy[:, 3] >= ctx.height - 2
        p[clipped, 1] = ctx.height + band[clipped] + 1.0
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
            settled = prev_side[:, li]
            other = (now != 0) & (settled != 0) & (now != settled)
            # A flip is pending from the first step on the other side; it counts once held hold_s.
            since = np.where(other & (prev_pend[:, li] == now), prev_pend_t[:, li], ctx.t)
            flip = other & (ctx.t - since >= self.hold_s) & (u >= 0) & (u <= 1)
            new_pend[:, li] = np.where(other & ~flip, now, 0)
            new_pend_t[:, li] = np.where(other & ~flip, since, 0.0)
            # Back on the settled side cancels a pending flip; the first settled side needs no hold.
            new_side[:, li] = np.where(flip | (settled == 0), np.where(now != 0, now, settled), settled)
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
                        draft(
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
        pend[cur], pend_t[cur] = new_pend, new_pend_t
        seen_t[cur] = ctx.t
        keep = ctx.t - seen_t <= self.forget_s
        self.ids, self.side, self.seen_t = all_ids[keep], side[keep], seen_t[keep]
        self.pend, self.pend_t = pend[keep], pend_t[keep]
        return out, step_in, step_out
