"""Livery attribution: background discount, thin frames, per-operator thresholds, learning, and the
bay status that lists every bike with its operator (re-sent when only the operator mix changes).

Synthetic crops here; the real photos are in tests/accuracy/test_bikes.py."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classes import BICYCLE
from edge.config.rules import BikeConfig, OperatorConfig, RulesConfig
from edge.config.site import CameraConfig
from edge.rules import CameraAnalytics
from edge.rules.livery import ColourLivery, learn_operator
from tests.analytics.test_rules import tracks

GRASS = (40, 170, 150)  # BGR: yellow-green, hue ~65: inside the default "yellow" 40-70 range
PAVEMENT = (150, 150, 146)
TEAL = (170, 180, 40)  # BGR: hue ~176, the Qingju teal
YELLOW = (20, 200, 235)
DEFAULTS = BikeConfig()


def bike(
    background: tuple[int, int, int],
    frame: tuple[int, int, int],
    *,
    tube: int = 6,
    size=(120, 200),
    rng_seed: int = 0,
) -> np.ndarray:
    """A side-view bike crop: two dark wheels and a frame of ``tube`` px wide tubes over a background."""
    h, w = size
    rng = np.random.default_rng(rng_seed)
    img = np.clip(np.array(background, np.int16) + rng.normal(0, 4, (h, w, 3)).round(), 0, 255).astype(
        np.int16
    )
    yy, xx = np.mgrid[0:h, 0:w]
    for cx in (0.25 * w, 0.75 * w):  # wheels: dark rings
        r = np.hypot(xx - cx, yy - 0.7 * h)
        img[(r < 0.24 * w) & (r > 0.24 * w - 4)] = (30, 30, 30)

    def tube_line(x0: float, y0: float, x1: float, y1: float) -> None:
        d = np.abs((y1 - y0) * xx - (x1 - x0) * yy + x1 * y0 - y1 * x0) / np.hypot(x1 - x0, y1 - y0)
        inside = (
            (xx >= min(x0, x1) - tube)
            & (xx <= max(x0, x1) + tube)
            & (yy >= min(y0, y1) - tube)
            & (yy <= max(y0, y1) + tube)
        )
        img[(d < tube / 2) & inside] = frame

    tube_line(0.25 * w, 0.7 * h, 0.45 * w, 0.35 * h)  # seat stay
    tube_line(0.45 * w, 0.35 * h, 0.75 * w, 0.35 * h)  # top tube
    tube_line(0.45 * w, 0.35 * h, 0.5 * w, 0.7 * h)  # seat tube
    tube_line(0.5 * w, 0.7 * h, 0.75 * w, 0.35 * h)  # down tube
    tube_line(0.75 * w, 0.35 * h, 0.75 * w, 0.7 * h)  # fork
    return np.clip(img + rng.normal(0, 3, img.shape).round(), 0, 255).astype(np.uint8)  # sensor noise


def on_lawn(crop: np.ndarray) -> np.ndarray:
    """The bike on the pavement in front of a lawn: grass fills the upper half of the box."""
    out = crop.copy()
    h = crop.shape[0]
    top = out[: h // 2]
    pave = np.all(np.abs(top.astype(int) - PAVEMENT) < 20, axis=2)
    top[pave] = GRASS
    return out


def test_grass_behind_a_grey_bike_is_not_a_livery() -> None:
    """The default table's yellow range (40-70) covers sunlit grass: the border ring, full of the
    same grass, discounts it. Without the discount the grey bike on grass is 'yellow'."""
    crop = on_lawn(bike(PAVEMENT, (120, 120, 120)))
    assert ColourLivery(DEFAULTS.operators, DEFAULTS.livery_min_fraction).classify(crop).operator is None
    assert (
        ColourLivery(DEFAULTS.operators, DEFAULTS.livery_min_fraction, 0.0).classify(crop).operator
        == "yellow"
    )


def test_a_thin_yellow_frame_is_read_as_yellow() -> None:
    """Thin tubes cover ~7.5 % of the box: under the old 12 % share, over today's 6 %."""
    crop = bike(PAVEMENT, YELLOW, tube=6)
    v = ColourLivery(DEFAULTS.operators, DEFAULTS.livery_min_fraction).classify(crop)
    assert v.operator == "yellow" and 0.5 <= v.confidence <= 1.0
    assert ColourLivery(DEFAULTS.operators, 0.12).classify(crop).operator is None


def test_the_same_livery_on_grass_still_names_the_operator() -> None:
    crop = on_lawn(bike(PAVEMENT, YELLOW, tube=6))
    assert ColourLivery(DEFAULTS.operators, DEFAULTS.livery_min_fraction).classify(crop).operator == "yellow"


def test_an_operators_own_min_fraction_is_used() -> None:
    crop = bike(PAVEMENT, TEAL, tube=4)
    loose = OperatorConfig(name="qingju", hue_deg=(165, 195), min_fraction=0.03)
    strict = OperatorConfig(name="qingju", hue_deg=(165, 195), min_fraction=0.5)
    assert ColourLivery([loose], 0.9).classify(crop).operator == "qingju"
    assert ColourLivery([strict], 0.01).classify(crop).operator is None


def test_confidence_falls_when_two_liveries_pass() -> None:
    crop = bike(PAVEMENT, TEAL, tube=8)
    one = ColourLivery([OperatorConfig(name="a", hue_deg=(165, 195))], 0.03).classify(crop)
    two = ColourLivery(
        [OperatorConfig(name="a", hue_deg=(165, 195)), OperatorConfig(name="b", hue_deg=(150, 185))], 0.03
    ).classify(crop)
    assert one.confidence > two.confidence


def test_learn_finds_the_livery_not_the_grass_and_sets_a_threshold_between() -> None:
    lawn = [on_lawn, lambda c: c]
    examples = [lawn[i % 2](bike(PAVEMENT, TEAL, tube=5 + i % 3, rng_seed=i)) for i in range(4)]
    others = [lawn[i % 2](bike(PAVEMENT, (40, 40, 40), rng_seed=10 + i)) for i in range(4)]
    rep = learn_operator("qingju", examples, others)
    op = rep.operator
    lo, hi = op.hue_deg
    assert lo <= 176 <= hi and hi - lo <= 80  # the teal, not the grass (~65) or everything
    assert not lo <= 65 <= hi
    assert op.min_fraction is not None
    assert max(rep.other_coverage) < op.min_fraction <= min(rep.example_coverage)
    assert rep.missed == 0 and rep.taken == 0
    table = ColourLivery([op], 0.5)  # the learned threshold is what counts, not the table's
    assert all(table.classify(c).operator == "qingju" for c in examples)
    assert all(table.classify(c).operator is None for c in others)


def test_learning_a_grey_livery_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no colour that stands out"):
        learn_operator("grey", [bike(PAVEMENT, (128, 128, 128), rng_seed=i) for i in range(3)])
    with pytest.raises(ValueError, match="no example crops"):
        learn_operator("none", [])


# ------------------------------------------------------------------------------ the bay status
def _bay_analytics(**bike: object) -> CameraAnalytics:
    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "x.mp4",
            "zones": [
                {
                    "id": "bay",
                    "kind": "bike_bay",
                    "capacity": 4,
                    "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 0.95], [0.0, 0.95]],
                }
            ],
        }
    )
    rules = RulesConfig.model_validate(
        {"membership": {"enter_s": 0}, "bike": {"status_debounce_s": 1, "livery_votes": 2, **bike}}
    )
    return CameraAnalytics(cam, rules, "UTC")


def test_bay_status_lists_each_bike_and_is_resent_when_only_the_operators_change() -> None:
    """The count (1) is sent first with the bike not yet attributed; once its livery settles the
    count is unchanged but the operator mix is: a second status names it, with box and confidence."""
    an = _bay_analytics()
    img = np.full((200, 400, 3), PAVEMENT, np.uint8)
    img[40:160, 100:300] = bike(PAVEMENT, YELLOW, tube=6)
    tr = tracks([(7, BICYCLE, [100, 40, 300, 160], 5.0)])
    statuses = []
    for k in range(12):
        t = 0.5 * k
        # the livery is only visible from 2 s on (the bike was behind a passer-by before)
        frame = img if t >= 2.0 else np.full_like(img, PAVEMENT)
        statuses += [
            d for d in an.update_at(t, 1e9 + t, tr, (400, 200), frame) if d.kind == "bike_bay_status"
        ]
    assert [s.payload["count"] for s in statuses] == [1, 1]
    assert statuses[0].payload["by_operator"] == {} and statuses[1].payload["by_operator"] == {"yellow": 1}
    first, last = statuses[0].payload["bikes"], statuses[1].payload["bikes"]
    assert first == [{"track_id": 7, "box": [0.25, 0.2, 0.75, 0.8], "operator": None, "confidence": None}]
    # 4 samples saw no livery (hidden), 2 saw yellow: settled, with the agreement in the confidence
    assert last[0]["operator"] == "yellow" and 0.2 < last[0]["confidence"] < 0.5
    state = an.zone_states()["bay"]
    assert state["bikes"] == last  # what replay and eval read is what the status said


def test_bay_status_payload_validates_against_its_schema() -> None:
    from edge.events.schema import validate_payload

    an = _bay_analytics()
    img = np.full((200, 400, 3), PAVEMENT, np.uint8)
    img[40:160, 100:300] = bike(PAVEMENT, YELLOW, tube=6)
    tr = tracks([(7, BICYCLE, [100, 40, 300, 160], 5.0)])
    out = [
        d
        for k in range(8)
        for d in an.update_at(0.5 * k, 1e9, tr, (400, 200), img)
        if d.kind == "bike_bay_status"
    ]
    assert out
    for d in out:
        validate_payload("bike_bay_status", dict(d.payload))


def test_a_box_filled_by_its_livery_is_not_taken_for_background() -> None:
    """A tight box on a painted body: the colour fills the border and the inside: the object."""
    crop = np.full((60, 40, 3), YELLOW, np.uint8)
    assert ColourLivery(DEFAULTS.operators, DEFAULTS.livery_min_fraction).classify(crop).operator == "yellow"
