"""Zone membership with inertia: an object joins a zone after ``enter_s`` inside and leaves after
``exit_s`` outside (``hold_unseen_s`` when it is not seen at all), so edge jitter never flickers.

State is kept as arrays aligned on sorted track ids (no per-object Python loops)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MembershipView:
    """Membership after one update.

    ``inside``/``entered_t`` are rows aligned with the tracks passed in; ``all_*`` cover every id
    still held (including objects briefly unseen), for counts that must not flicker.
    """

    inside: np.ndarray  # (N,Z) bool
    entered_t: np.ndarray  # (N,Z) float64, NaN where not inside
    all_ids: np.ndarray  # (K,) int64
    all_inside: np.ndarray  # (K,Z) bool
    all_entered_t: np.ndarray  # (K,Z) float64
    all_seen: np.ndarray  # (K,) bool: in the current tracks
    entries: np.ndarray  # (Z,) int: objects that joined each zone in this update
    exits: np.ndarray  # (Z,) int: objects that left


class ZoneMembership:
    def __init__(self, n_zones: int, enter_s: float, exit_s: float, hold_unseen_s: float) -> None:
        self.z = n_zones
        self.enter_s = enter_s
        self.exit_s = exit_s
        # Honoured as given, even below exit_s: an object nobody sees leaves after hold_unseen_s (it used to
        # be raised to exit_s silently, so "hold_unseen_s: 0" still held vanished objects for exit_s).
        self.hold_unseen_s = hold_unseen_s
        self.ids = np.zeros(0, np.int64)
        self.inside = np.zeros((0, n_zones), bool)
        self.pending = np.zeros((0, n_zones), np.float64)
        self.entered = np.zeros((0, n_zones), np.float64)

    def members(self, track_ids: np.ndarray) -> np.ndarray:
        """(N,Z) bool: which of ``track_ids`` are members now (before the next update)."""
        track_ids = np.asarray(track_ids, np.int64).reshape(-1)
        out = np.zeros((track_ids.size, self.z), bool)
        if self.ids.size and track_ids.size:
            pos = np.minimum(np.searchsorted(self.ids, track_ids), self.ids.size - 1)
            hit = self.ids[pos] == track_ids
            out[hit] = self.inside[pos[hit]]
        return out

    def update(
        self, track_ids: np.ndarray, raw: np.ndarray, t: float, raw_stay: np.ndarray | None = None
    ) -> MembershipView:
        """``raw``: (N,Z) inside each zone now; ``raw_stay``: the same with the edge margin (for members)."""
        track_ids = np.asarray(track_ids, np.int64).reshape(-1)
        raw = np.asarray(raw, bool).reshape(track_ids.shape[0], self.z)
        stay = raw if raw_stay is None else np.asarray(raw_stay, bool).reshape(raw.shape)
        all_ids = np.union1d(self.ids, track_ids)
        k = all_ids.shape[0]
        inside = np.zeros((k, self.z), bool)
        pending = np.full((k, self.z), np.nan)
        entered = np.full((k, self.z), np.nan)
        if self.ids.size:
            old = np.searchsorted(all_ids, self.ids)
            inside[old] = self.inside
            pending[old] = self.pending
            entered[old] = self.entered
        cur = np.searchsorted(all_ids, track_ids)
        seen = np.zeros(k, bool)
        seen[cur] = True
        want = np.zeros((k, self.z), bool)
        want[cur] = np.where(inside[cur], stay, raw)
        differ = want != inside
        pending = np.where(differ, np.where(np.isnan(pending), t, pending), np.nan)
        need = np.where(want, self.enter_s, np.where(seen[:, None], self.exit_s, self.hold_unseen_s))
        flip = differ & (t - pending >= need - 1e-9)
        joins = flip & want
        leaves = flip & ~want
        entered = np.where(joins, pending, entered)
        entered = np.where(leaves, np.nan, entered)
        inside = inside ^ flip
        pending = np.where(flip, np.nan, pending)
        keep = seen | inside.any(axis=1) | ~np.isnan(pending).all(axis=1)
        # An unseen object that never made it into a zone is forgotten at once.
        keep &= seen | inside.any(axis=1)
        self.ids, self.inside, self.pending, self.entered = (
            all_ids[keep],
            inside[keep],
            pending[keep],
            entered[keep],
        )
        return MembershipView(
            inside=inside[cur],
            entered_t=entered[cur],
            all_ids=self.ids,
            all_inside=self.inside,
            all_entered_t=self.entered,
            all_seen=seen[keep],
            entries=joins.sum(axis=0),
            exits=leaves.sum(axis=0),
        )
