"""MotionGate decisions, table-driven, with frame times as the only clock."""

from __future__ import annotations

import itertools

import pytest

from edge.config.health import GatingConfig
from edge.vision.gating import MotionGate

CFG = GatingConfig(enabled=True, energy_threshold=0.01, recheck_s=5.0, max_skip_s=20.0)

# (t, energy, has_stationary, expected)
SCRIPTS: dict[str, list[tuple[float, float | None, bool, bool]]] = {
    "first frame always infers": [(0.0, 0.0, False, True)],
    "still scene skips until max_skip_s": [
        (0.0, 0.0, False, True),
        (1.0, 0.0, False, False),
        (19.9, 0.0, False, False),
        (20.0, 0.0, False, True),
        (21.0, 0.0, False, False),
    ],
    "motion infers at once": [(0.0, 0.0, False, True), (0.2, 0.5, False, True), (0.4, 0.009, False, False)],
    "energy exactly at threshold infers": [(0.0, 0.0, False, True), (0.2, 0.01, False, True)],
    "stationary tracks re-checked every recheck_s": [
        (0.0, 0.0, True, True),
        (4.9, 0.0, True, False),
        (5.0, 0.0, True, True),
        (9.9, 0.0, True, False),
        (10.0, 0.0, True, True),
    ],
    "unknown energy infers": [(0.0, 0.0, False, True), (0.2, None, False, True)],
    "clock going backwards infers": [(10.0, 0.0, False, True), (2.0, 0.0, False, True)],
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_gate_script(name: str) -> None:
    gate = MotionGate(CFG)
    for t, energy, stationary, expected in SCRIPTS[name]:
        assert gate.should_infer(t, energy, stationary) is expected, f"{name}: t={t}"


def test_disabled_gate_never_skips() -> None:
    gate = MotionGate(GatingConfig(enabled=False))
    assert all(gate.should_infer(i * 0.2, 0.0, False) for i in range(100))
    assert gate.skipped_fraction == 0.0


def test_skipped_fraction_on_a_still_with_a_parked_car() -> None:
    """10 minutes of a still at 5 fps with a stationary track: >= 90 % skipped, and the parked
    car is still looked at every recheck_s (so its violation stays confirmed)."""
    gate = MotionGate(CFG)
    inferred = [i * 0.2 for i in range(3000) if gate.should_infer(i * 0.2, 0.0, True)]
    assert gate.skipped_fraction >= 0.9
    gaps = [b - a for a, b in itertools.pairwise(inferred)]
    assert max(gaps) <= CFG.recheck_s + 1e-9
    assert gate.frames == 3000 and gate.skipped == 3000 - len(inferred)


def test_config_rejects_recheck_longer_than_max_skip() -> None:
    with pytest.raises(ValueError, match="recheck_s"):
        GatingConfig(recheck_s=60.0, max_skip_s=30.0)
