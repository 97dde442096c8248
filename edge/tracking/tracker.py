"""ByteTrack-style tracker with lifetimes in seconds and a memory of stationary objects' places.

Association, per frame (all steps vectorised; matching is greedy by descending IoU, done as rounds
of mutual best pairs, each round one N×M numpy operation):

1. high-score detections against every live track (visible, or lost for less than ``lost_s``),
   using a constant-velocity prediction of each box;
2. low-score detections against the still-unmatched visible tracks (ByteTrack's second stage);
3. remaining high-score detections against the *place memory*: stationary tracks that vanished
   (a parked car behind a passing bus) are kept at their place for ``place_memory_s``, and a
   detection on that place continues the same track id and its stationary time;
4. anything left above ``new_track_score`` starts a tentative track, confirmed after ``confirm_s``;
   anything left between ``low_birth_score`` and ``new_track_score`` starts one too, extended by
   low-score detections and confirmed only after ``low_confirm_s`` (a small model scores a parked
   bike 0.3 in every frame: the detector reports it, so the rules must see it; a one-off low box dies).

Stationarity: the smoothed anchor (bottom-centre) is compared with the point where the object
came to rest; it is still while it stays within ``stationary_ratio`` × box size of that point
(robust to detector jitter, which does not accumulate), and stationary after ``stationary_after_s``.
"""

from __future__ import annotations

import logging

import numpy as np

from edge.classes import BUS, CAR, CLASSES, TRUCK
from edge.config.rules import TrackerConfig
from edge.geometry import greedy_pairs, iou_matrix
from edge.types import Detections, Tracks
from edge.zones.calibration import GroundPlane

log = logging.getLogger(__name__)

_NCLS = len(CLASSES) + 1  # votes: column 0 is OTHER, column c+1 is class c
# Classes a model confuses with each other from above (car/bus/truck): one track may carry any of them.
_FAMILY = np.arange(-1, len(CLASSES))
_FAMILY[[BUS + 1, TRUCK + 1]] = CAR
_MAX_AREA_RATIO = 2.5


class ByteTracker:
    """``update(detections, t, frame_size) -> Tracks`` (confirmed tracks seen in this frame, sorted by id).

    Built with the camera's ``GroundPlane`` when it is calibrated: then ``Tracks.speed_mps`` is the
    ground speed for the frame size given to ``update`` (NaN without a ground plane or a size).
    """

    def __init__(self, cfg: TrackerConfig | None = None, ground: GroundPlane | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.ground = ground
        self._next_id = 1
        self._last_t: float | None = None
        n = 0
        self.ids = np.zeros(n, np.int64)  # -1 while tentative
        self.box = np.zeros((n, 4))
        self.vel = np.zeros((n, 4))  # box-corner velocity px/s
        self.last_t = np.zeros(n)  # last matched
        self.born_t = np.zeros(n)
        self.low_born = np.zeros(n, bool)  # started by a low-score detection (longer confirmation)
        self.first_t = np.zeros(n)  # confirmation time (NaN while tentative)
        self.lost_since = np.zeros(n)  # NaN while visible
        self.votes = np.zeros((n, _NCLS))
        self.conf = np.zeros(n, np.float32)
        self.anchor = np.zeros((n, 2))  # smoothed anchor
        self.still_ref = np.zeros((n, 2))
        self.still_since = np.zeros(n)

    # -- public views --------------------------------------------------------------------
    @property
    def stationary_mask(self) -> np.ndarray:
        if self._last_t is None:
            return np.zeros(self.ids.shape[0], bool)
        return (self._last_t - self.still_since) >= self.cfg.stationary_after_s

    def has_stationary(self) -> bool:
        """True if any confirmed track (visible or remembered) is stationary (for motion gating)."""
        return bool(np.any(self.stationary_mask & (self.ids >= 0)))

    def remembered_ids(self) -> np.ndarray:
        """Confirmed tracks not seen now but still remembered (occluded)."""
        return self.ids[(self.ids >= 0) & ~np.isnan(self.lost_since)]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # -- the step --------------------------------------------------------------------------
    def update(self, detections: Detections, t: float, frame_size: tuple[int, int] | None = None) -> Tracks:
        cfg = self.cfg
        if self._last_t is not None and t < self._last_t:
            log.warning(
                "tracker time went backwards (%.3f < %.3f); ignoring the frame's age", t, self._last_t
            )
            t = self._last_t
        self._last_t = t
        self._expire(t)
        dets = detections[detections.confidence >= cfg.low_score] if len(detections) else detections
        pred = self._predict(t)
        det_box = dets.xyxy.astype(np.float64)
        det_fam = _FAMILY[np.clip(dets.class_id, -1, len(CLASSES) - 1) + 1]
        trk_fam = _FAMILY[np.argmax(self.votes, axis=1)] if len(self) else np.zeros(0, np.int64)
        lost = ~np.isnan(self.lost_since)
        stationary = self.stationary_mask
        live = ~lost | (t - np.where(lost, self.lost_since, t) <= cfg.lost_s)
        memory = lost & stationary & (self.ids >= 0) & ~live

        # IoU, then the class-family and size gates on the overlapping pairs only (sparse).
        iou = iou_matrix(det_box, pred)
        pr, pc = np.nonzero(iou > 0)
        ps = iou[pr, pc]
        if pr.size:
            ad = np.prod(np.clip(det_box[pr, 2:] - det_box[pr, :2], 1, None), axis=1)
            at = np.prod(np.clip(pred[pc, 2:] - pred[pc, :2], 1, None), axis=1)
            ratio = ad / at
            ok = (det_fam[pr] == trk_fam[pc]) & (ratio < _MAX_AREA_RATIO) & (ratio > 1.0 / _MAX_AREA_RATIO)
            pr, pc, ps = pr[ok], pc[ok], ps[ok]

        det_free = np.ones(len(dets), bool)
        trk_free = np.ones(len(self), bool)
        pairs_d: list[np.ndarray] = []
        pairs_t: list[np.ndarray] = []

        def stage(dmask: np.ndarray, tmask: np.ndarray, thr: float) -> None:
            sel = np.flatnonzero((ps >= thr) & dmask[pr] & det_free[pr] & tmask[pc] & trk_free[pc])
            if sel.size == 0:
                return
            pick = sel[greedy_pairs(pr[sel], pc[sel], ps[sel])]
            pairs_d.append(pr[pick])
            pairs_t.append(pc[pick])
            det_free[pr[pick]] = False
            trk_free[pc[pick]] = False

        high = dets.confidence >= cfg.high_score
        stage(high, live, cfg.match_iou)
        stage(~high, live & ~lost & ((self.ids >= 0) | self.low_born), cfg.low_match_iou)
        stage(high, memory, cfg.place_iou)

        md = np.concatenate(pairs_d) if pairs_d else np.zeros(0, np.intp)
        mt = np.concatenate(pairs_t) if pairs_t else np.zeros(0, np.intp)
        self._apply_matches(dets, md, mt, t)

        # Unmatched tracks: tentative ones die, visible ones become lost.
        unmatched = trk_free
        tentative = self.ids < 0
        newly_lost = unmatched & np.isnan(self.lost_since)
        self.lost_since[newly_lost] = t
        self.vel[unmatched & stationary] = 0.0
        keep = ~(unmatched & tentative)
        seen_now = ~unmatched
        new_mask = det_free & high & (dets.confidence >= cfg.new_track_score)
        low_mask = det_free & ~new_mask & (dets.confidence >= cfg.low_birth_score)
        self._select(keep)
        seen_now = seen_now[keep]
        self._spawn(dets[new_mask], t)
        self._spawn(dets[low_mask], t, low=True)
        seen_now = np.concatenate([seen_now, np.zeros(int(new_mask.sum() + low_mask.sum()), bool)])
        self._confirm(t, seen_now)
        return self._output(t, seen_now & (self.ids >= 0), frame_size)

    # -- internals -------------------------------------------------------------------------
    def _predict(self, t: float) -> np.ndarray:
        if not len(self):
            return np.zeros((0, 4))
        dt = np.clip(t - self.last_t, 0.0, self.cfg.lost_s)[:, None]
        return self.box + self.vel * dt

    def _expire(self, t: float) -> None:
        if not len(self):
            return
        lost = ~np.isnan(self.lost_since)
        gone_for = np.where(lost, t - self.lost_since, 0.0)
        limit = np.where(self.stationary_mask & (self.ids >= 0), self.cfg.place_memory_s, self.cfg.lost_s)
        self._select(~(lost & (gone_for > limit)))

    def _select(self, keep: np.ndarray) -> None:
        for name in (
            "ids",
            "box",
            "vel",
            "last_t",
            "born_t",
            "low_born",
            "first_t",
            "lost_since",
            "votes",
            "conf",
            "anchor",
            "still_ref",
            "still_since",
        ):
            setattr(self, name, getattr(self, name)[keep])

    def _apply_matches(self, dets: Detections, md: np.ndarray, mt: np.ndarray, t: float) -> None:
        if md.size == 0:
            return
        cfg = self.cfg
        new_box = dets.xyxy[md].astype(np.float64)
        dt = np.maximum(t - self.last_t[mt], 1e-3)
        k = (1.0 - np.exp(-dt / cfg.smoothing_s))[:, None]
        meas_vel = (new_box - self.box[mt]) / dt[:, None]
        self.vel[mt] += k * (meas_vel - self.vel[mt])
        self.box[mt] = new_box
        a = np.stack([(new_box[:, 0] + new_box[:, 2]) * 0.5, new_box[:, 3]], axis=1)
        self.anchor[mt] += k * (a - self.anchor[mt])
        size = np.sqrt(np.prod(np.clip(new_box[:, 2:] - new_box[:, :2], 1, None), axis=1))
        moved = np.linalg.norm(self.anchor[mt] - self.still_ref[mt], axis=1) > cfg.stationary_ratio * size
        mv = mt[moved]
        self.still_ref[mv] = self.anchor[mv]
        self.still_since[mv] = t
        self.last_t[mt] = t
        self.lost_since[mt] = np.nan
        self.conf[mt] = dets.confidence[md]
        # A low-born track that gets a detection good enough to start a track is an ordinary one now:
        # it is confirmed as early as it would have been without the low-score start.
        self.low_born[mt[dets.confidence[md] >= cfg.new_track_score]] = False
        cls = np.clip(dets.class_id[md], -1, len(CLASSES) - 1) + 1
        np.add.at(self.votes, (mt, cls), dets.confidence[md].astype(np.float64))

    def _spawn(self, dets: Detections, t: float, low: bool = False) -> None:
        n = len(dets)
        if n == 0:
            return
        box = dets.xyxy.astype(np.float64)
        anchor = np.stack([(box[:, 0] + box[:, 2]) * 0.5, box[:, 3]], axis=1)
        votes = np.zeros((n, _NCLS))
        votes[np.arange(n), np.clip(dets.class_id, -1, len(CLASSES) - 1) + 1] = dets.confidence
        add = {
            "ids": np.full(n, -1, np.int64),
            "box": box,
            "vel": np.zeros((n, 4)),
            "last_t": np.full(n, t),
            "born_t": np.full(n, t),
            "low_born": np.full(n, low),
            "first_t": np.full(n, np.nan),
            "lost_since": np.full(n, np.nan),
            "votes": votes,
            "conf": dets.confidence.astype(np.float32),
            "anchor": anchor,
            "still_ref": anchor.copy(),
            "still_since": np.full(n, t),
        }
        for name, arr in add.items():
            setattr(self, name, np.concatenate([getattr(self, name), arr]))

    def _confirm(self, t: float, seen: np.ndarray) -> None:
        need = np.where(self.low_born, self.cfg.low_confirm_s, self.cfg.confirm_s)
        ready = (self.ids < 0) & seen & (t - self.born_t >= need - 1e-9)
        n = int(ready.sum())
        if n:
            self.ids[ready] = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
            self.first_t[ready] = t

    def _output(self, t: float, mask: np.ndarray, frame_size: tuple[int, int] | None) -> Tracks:
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(self.ids[idx], kind="stable")]
        if idx.size == 0:
            return Tracks.empty()
        vel4 = self.vel[idx]
        velocity = np.stack([(vel4[:, 0] + vel4[:, 2]) * 0.5, vel4[:, 3]], axis=1)
        still_for = t - self.still_since[idx]
        stationary = still_for >= self.cfg.stationary_after_s
        velocity = np.where(stationary[:, None], 0.0, velocity)
        if self.ground is not None and frame_size is not None:
            speed = self.ground.at(*frame_size).speed_mps(self.anchor[idx], velocity).astype(np.float32)
        else:
            speed = np.full(idx.size, np.nan, np.float32)
        cls = np.argmax(self.votes[idx], axis=1) - 1
        return Tracks(
            xyxy=self.box[idx].astype(np.float32),
            confidence=self.conf[idx].astype(np.float32),
            class_id=cls.astype(np.int32),
            track_id=self.ids[idx].astype(np.int64),
            first_t=self.first_t[idx].astype(np.float64),
            velocity=velocity.astype(np.float32),
            speed_mps=speed,
            stationary=stationary,
            stationary_s=np.where(stationary, still_for, 0.0).astype(np.float32),
        )
