"""Operator attribution by livery: the colour of a bike crop (numpy HSV, no cv2), and learning it.

A bike's box holds far more background than bike: a thin frame and two wheels over pavement,
grass, poles and the next bike. Colour evidence is therefore counted on the pixels that are the
bike's more than the background's:

* **Background discount.** The box's border ring (its outer tenth) is mostly background. Each
  colour (hue x saturation bin) inside the box keeps the part of its density that the border does
  not explain: ``weight = max(0, inside - k * border) / inside``. Grass, sky or a wall behind the
  bike fills the border (a hue taking 30 % of it or more): ``k = 1``, it drops out. A hue only
  scattered over the border (15 % or less) gets ``k = background_discount`` (0.5): the bike itself
  reaches its border (wheels, handlebars) and, in a row of same-livery bikes, so do its
  neighbours; a full subtraction would erase the very colour it looks for. A hue that fills 60 %
  of the inside as well is the object (a tight box on a painted body), not background: ``k = 0.5``.
* **Coverage.** An operator's evidence is the discounted share of the crop's pixels in its livery
  colour (hue range, minimum saturation and value): a share of the whole crop, not of its coloured
  pixels, so a private bike whose box catches a corner of a shared bike stays under the threshold.
  The threshold is per operator (``min_fraction``, else ``rules.bike.livery_min_fraction``):
  ``edge-agent livery learn`` measures it on the site's own bikes, so thin frames are not held to
  the coverage of fat ones.

``learn_operator`` turns a few example crops of one operator (and, better, crops of other bikes
seen at the site) into an ``OperatorConfig``: the livery hue peak that stands out of the crops'
borders, its extent, saturation and value floors, and the coverage threshold between the examples
and the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.config.rules import OperatorConfig

MAX_SIDE = 128  # crops are sub-sampled to at most this many pixels a side (thin tubes survive: 2-4 px)
BORDER = 0.1  # the border ring is this fraction of the crop's shorter side
SCATTERED, FILLS_BORDER = 0.15, 0.30  # share of the border one hue takes: scattered .. fills it
OBJECT_FILL = 0.6  # a hue taking this much of the inside too is the object itself (never seen for a bike)
_HUE_BINS = 24  # background statistics: 15-degree hue bins ...
_SAT_EDGES = (0.2, 0.47, 0.74)  # ... x 3 saturation bands (below 0.2 is grey: never livery)


@dataclass(frozen=True, slots=True)
class LiveryVerdict:
    """Whose bike a crop shows: the operator (None: no known livery) and how sure (0..1)."""

    operator: str | None
    confidence: float


class LiveryClassifier(Protocol):
    """Names the operator of a bike crop (BGR). A vendor ONNX classifier can implement this."""

    def classify(self, crop_bgr: np.ndarray) -> LiveryVerdict: ...


def bgr_to_hsv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees 0..360, saturation and value 0..1, for a uint8 BGR array."""
    f = img.astype(np.float32) / 255.0
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    h = np.where(d > 0, h * 60.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx


def _subsample(crop_bgr: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    h, w = crop_bgr.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / max_side)))
    return crop_bgr[::step, ::step]


def _in_hue(hue: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (hue >= lo) & (hue <= hi) if lo <= hi else (hue >= lo) | (hue <= hi)


@dataclass(frozen=True, slots=True)
class CropColours:
    """A crop's pixels in HSV with the weight of each as bike (1) rather than background (0)."""

    hue: np.ndarray
    sat: np.ndarray
    val: np.ndarray
    weight: np.ndarray

    @property
    def size(self) -> int:
        return int(self.hue.size)


def crop_colours(crop_bgr: np.ndarray, background_discount: float = 0.5) -> CropColours:
    """HSV of the (sub-sampled) crop and each pixel's foreground weight from the border's statistics."""
    hue, sat, val = bgr_to_hsv(_subsample(crop_bgr))
    hh, ww = hue.shape
    weight = np.ones(hue.shape)
    bw = max(1, round(BORDER * min(hh, ww)))
    if background_discount > 0 and hh > 2 * bw and ww > 2 * bw:
        ring = np.zeros(hue.shape, bool)
        ring[:bw] = ring[-bw:] = True
        ring[:, :bw] = ring[:, -bw:] = True
        coloured = (sat >= _SAT_EDGES[0]) & (val >= 0.15)
        bins = (np.floor(hue / (360.0 / _HUE_BINS)).astype(np.int64) % _HUE_BINS) * len(_SAT_EDGES) + (
            np.searchsorted(np.asarray(_SAT_EDGES), sat, side="right") - 1
        ).clip(0, len(_SAT_EDGES) - 1)
        nb = _HUE_BINS * len(_SAT_EDGES)
        inner = ~ring
        d_in = np.bincount(bins[inner & coloured], minlength=nb) / max(1, int(inner.sum()))
        d_ring = np.bincount(bins[ring & coloured], minlength=nb) / max(1, int(ring.sum()))
        # A colour that fills the border (grass, sky, a wall: FILLS_BORDER of it) is background and
        # is subtracted whole; one only scattered over the border (the bike's own wheels touching
        # it, the next bike of a row) only by ``background_discount``.
        filled = d_ring.reshape(_HUE_BINS, -1).sum(axis=1)
        ramp = np.clip((filled - SCATTERED) / (FILLS_BORDER - SCATTERED), 0.0, 1.0)
        # ...unless it also fills most of the inside: then the box is on the object (a tight box on
        # a painted body), not on a background seen through a thin frame.
        ramp[d_in.reshape(_HUE_BINS, -1).sum(axis=1) >= OBJECT_FILL] = 0.0
        k = np.repeat(background_discount + (1.0 - background_discount) * ramp, len(_SAT_EDGES))
        keep = np.clip((d_in - k * d_ring) / np.maximum(d_in, 1e-12), 0.0, 1.0)
        weight = np.where(inner, keep[bins], 0.0)
    return CropColours(hue, sat, val, weight)


def coverage(colours: CropColours, op: OperatorConfig) -> float:
    """The background-discounted share of the crop's pixels in ``op``'s livery colour."""
    if colours.size == 0:
        return 0.0
    lo, hi = op.hue_deg
    hit = _in_hue(colours.hue, lo, hi) & (colours.sat >= op.min_saturation) & (colours.val >= op.min_value)
    return float((colours.weight * hit).sum() / colours.size)


class ColourLivery:
    """The operator whose livery colour covers the most of the bike crop (background discounted),
    if it covers at least that operator's ``min_fraction`` (else ``min_fraction`` of the rules)."""

    def __init__(
        self, operators: Sequence[OperatorConfig], min_fraction: float, background_discount: float = 0.5
    ) -> None:
        self.operators = list(operators)
        self.min_fraction = min_fraction
        self.background_discount = background_discount
        self.thresholds = np.array(
            [o.min_fraction if o.min_fraction is not None else min_fraction for o in self.operators]
        )

    def evidence(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Per operator (in table order): the share of the crop in its livery colour."""
        if crop_bgr.size == 0 or not self.operators:
            return np.zeros(len(self.operators))
        colours = crop_colours(crop_bgr, self.background_discount)
        return np.array([coverage(colours, o) for o in self.operators])

    def classify(self, crop_bgr: np.ndarray) -> LiveryVerdict:
        ev = self.evidence(crop_bgr)
        if ev.size == 0:
            return LiveryVerdict(None, 0.0)
        ratio = ev / self.thresholds
        best = int(np.argmax(ratio))
        if ratio[best] < 1.0:
            return LiveryVerdict(None, 0.0)
        # Sure at 1.5x the threshold; less so when another livery also passes its threshold.
        second = float(np.sort(ratio)[-2]) if ratio.size > 1 else 0.0
        sure = min(1.0, 0.5 + (ratio[best] - 1.0))
        if second >= 1.0:
            sure *= 1.0 - second / ratio[best]
        return LiveryVerdict(self.operators[best].name, round(float(sure), 3))


# ---------------------------------------------------------------------------------------- learning
@dataclass(frozen=True)
class LearnReport:
    """What ``learn_operator`` measured, for the technician to judge the result."""

    operator: OperatorConfig
    examples: int
    others: int
    example_coverage: list[float]  # per example crop, with the learned colour
    other_coverage: list[float]  # per other crop
    missed: int  # examples under the learned threshold
    taken: int  # others over it (would be attributed to this operator)
    notes: list[str] = field(default_factory=list)


def _hue_histogram(crops: Sequence[CropColours], min_sat: float = 0.25, min_val: float = 0.2) -> np.ndarray:
    """Mean foreground-weighted hue histogram (2-degree bins) of coloured pixels, per crop pixel."""
    hist = np.zeros(180)
    for c in crops:
        m = (c.sat >= min_sat) & (c.val >= min_val)
        hist += np.bincount(
            (c.hue[m] / 2.0).astype(np.int64) % 180, weights=c.weight[m], minlength=180
        ) / max(1, c.size)
    return hist / max(1, len(crops))


def learn_operator(
    name: str,
    examples: Sequence[np.ndarray],
    others: Sequence[np.ndarray] = (),
    *,
    background_discount: float = 0.5,
    max_half_width_deg: float = 40.0,
) -> LearnReport:
    """Learn ``name``'s livery from example crops (BGR) of its bikes; ``others`` are crops of other
    bikes at the site (private bikes, other operators) the colour must not take.

    The livery hue is the peak of the examples' foreground hue histogram after the others' is
    subtracted; the range grows from the peak while a 2-degree bin still holds 15 % of the peak and
    more example than other mass. Saturation and value floors are low percentiles of the examples'
    livery pixels (with others: the ones that separate examples and others best); the coverage
    threshold lies midway between the lowest example and the highest other (where they overlap: the
    value with the fewest errors; without others: half the examples' 10th percentile).
    Raises ValueError when the examples show no colour (a grey or black livery cannot be learned).
    """
    if not examples:
        raise ValueError(f"operator {name}: no example crops to learn from")
    pos = [crop_colours(c, background_discount) for c in examples if c.size]
    neg = [crop_colours(c, background_discount) for c in others if c.size]
    notes: list[str] = []
    h_pos = _hue_histogram(pos)
    h_neg = _hue_histogram(neg) if neg else np.zeros(180)
    k = np.ones(5) / 5.0
    smooth = lambda h: np.convolve(np.concatenate([h[-2:], h, h[:2]]), k, "valid")  # noqa: E731 (circular)
    sp, sn = smooth(h_pos), smooth(h_neg)
    contrast = sp - sn
    peak = int(np.argmax(contrast))
    if contrast[peak] <= 1e-4:
        raise ValueError(
            f"operator {name}: the example bikes show no colour that stands out of their background "
            "(grey, black or white liveries cannot be told apart by colour); use a livery_model instead"
        )
    floor = 0.15 * sp[peak]
    half = int(max_half_width_deg / 2)
    lo = hi = peak
    while peak - lo < half and sp[(lo - 1) % 180] >= floor and sp[(lo - 1) % 180] > sn[(lo - 1) % 180]:
        lo -= 1
    while hi - peak < half and sp[(hi + 1) % 180] >= floor and sp[(hi + 1) % 180] > sn[(hi + 1) % 180]:
        hi += 1
    hue = (float((lo * 2) % 360), float((hi * 2 + 2) % 360 or 360))
    sats, vals = [], []
    for c in pos:
        m = _in_hue(c.hue, *hue) & (c.sat >= 0.2) & (c.val >= 0.15) & (c.weight > 0.5)
        sats.append(c.sat[m])
        vals.append(c.val[m])
    s_all, v_all = np.concatenate(sats), np.concatenate(vals)
    if s_all.size < 20:
        raise ValueError(
            f"operator {name}: too few livery pixels in the examples ({s_all.size}); give larger crops"
        )

    def floor3(x: float, low: float) -> float:
        return float(np.floor(max(low, x) * 1000) / 1000)

    # Saturation and value floors: without others, 10 % below the examples' 10th / 5th percentiles
    # (another light is a little paler); with others, the percentiles that best separate the two.
    choices = [(10, 5, 0.9)]
    if neg:
        choices += [(ps, pv, 1.0) for ps in (5, 10, 20, 30, 40) for pv in (5, 10, 20)]
    best: tuple[float, OperatorConfig, np.ndarray, np.ndarray] | None = None
    for ps, pv, f in choices:
        probe = OperatorConfig(
            name=name,
            hue_deg=hue,
            min_saturation=floor3(f * float(np.percentile(s_all, ps)), 0.2),
            min_value=floor3(f * float(np.percentile(v_all, pv)), 0.15),
        )
        pc = np.array([coverage(c, probe) for c in pos])
        nc = np.array([coverage(c, probe) for c in neg]) if neg else np.zeros(0)
        # the margin between the lowest example and the highest other, relative to their size
        margin = (pc.min() - nc.max()) / max(pc.min() + nc.max(), 1e-9) if nc.size else 0.0
        if best is None or margin > best[0] + 1e-9:
            best = (margin, probe, pc, nc)
    assert best is not None
    _, probe, pc, nc = best
    min_sat, min_val = probe.min_saturation, probe.min_value
    if nc.size and pc.min() > nc.max():
        thr = (float(pc.min()) + float(nc.max())) / 2.0  # the widest margin between the two groups
    elif nc.size:
        # they overlap: the threshold that leaves the fewest examples missed plus others taken
        cands = np.unique(np.concatenate([pc, nc]))
        errors = [(pc < c).sum() + (nc >= c).sum() for c in cands]
        thr = float(cands[int(np.argmin(errors))])
        notes.append(
            f"{int((nc >= thr).sum())} of the other bikes show as much of this colour as the examples and "
            f"{int((pc < thr).sum())} example(s) fall under the threshold: colour alone cannot tell them all apart"
        )
    else:
        thr = float(np.percentile(pc, 10)) / 2.0
        notes.append(
            "no other bikes given: the threshold is half the examples' coverage; give --others to set it"
        )
    if len(pos) < 3:
        notes.append(f"only {len(pos)} example(s): learn from at least 3 bikes, in the light the camera sees")
    op = OperatorConfig(
        name=name,
        hue_deg=hue,
        min_saturation=min_sat,
        min_value=min_val,
        min_fraction=round(max(thr, 1e-3), 4),
    )
    return LearnReport(
        operator=op,
        examples=len(pos),
        others=len(neg),
        example_coverage=[round(float(x), 4) for x in pc],
        other_coverage=[round(float(x), 4) for x in nc],
        missed=int((pc < op.min_fraction).sum()) if op.min_fraction is not None else 0,
        taken=int((nc >= op.min_fraction).sum()) if op.min_fraction is not None else 0,
        notes=notes,
    )
