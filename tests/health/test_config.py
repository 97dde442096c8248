from __future__ import annotations

import pytest
from pydantic import BaseModel

from edge.config.health import GatingConfig, HealthConfig, MetricsConfig, TamperConfig, WatchdogConfig


@pytest.mark.parametrize("model", [HealthConfig, TamperConfig, GatingConfig, MetricsConfig, WatchdogConfig])
def test_every_field_described_and_defaults_valid(model: type[BaseModel]) -> None:
    model()
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


def test_health_config_nests_the_parts() -> None:
    cfg = HealthConfig.model_validate(
        {"health_interval_s": 30, "gating": {"enabled": True, "recheck_s": 2}, "watchdog": {"stall_s": 5}}
    )
    assert cfg.gating.enabled and cfg.gating.recheck_s == 2 and cfg.watchdog.stall_s == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"disabled_faults": ["smudged"]},
        {"covered_contrast_ratio": 1.5},
        {"baseline_s": 0},
        {"unknown_key": 1},
    ],
)
def test_tamper_config_rejects(bad: dict) -> None:
    with pytest.raises(ValueError):
        TamperConfig.model_validate(bad)
