"""Analytics config: validation messages a technician can act on; every field described."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from edge.config import rules as rc
from edge.config import zones as zc
from edge.config.loader import parse_config
from edge.errors import ConfigError

SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]


def site(zones: list[dict] | None = None, rules: dict | None = None, **cam: object) -> dict:
    return {
        "config_version": 1,
        "device_id": "pole-1",
        "site_id": "s",
        "cameras": [{"id": "cam0", "source": 0, "zones": zones or [], **cam}],
        "rules": rules or {},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (site([{"id": "b", "kind": "bike_bay", "polygon": SQUARE}]), "a bike_bay zone needs a capacity"),
        (
            site([{"id": "n", "kind": "no_parking", "polygon": SQUARE, "capacity": 3}]),
            "only bike_bay and count zones have a capacity",
        ),
        (
            site([{"id": "n", "kind": "no_parking", "polygon": SQUARE, "classes": ["lorry"]}]),
            "unknown class or group 'lorry'",
        ),
        (
            site(
                [
                    {
                        "id": "n",
                        "kind": "no_parking",
                        "polygon": SQUARE,
                        "schedule": {"windows": [{"start": "7:00", "end": "09:00"}]},
                    }
                ]
            ),
            "write HH:MM",
        ),
        (
            site(
                [
                    {
                        "id": "n",
                        "kind": "no_parking",
                        "polygon": SQUARE,
                        "schedule": {"windows": [{"start": "07:00", "end": "07:00"}]},
                    }
                ]
            ),
            "window is empty",
        ),
        (site(rules={"bike": {"blacklist": ["purple"]}}), "'purple' is not an operator"),
        (site(rules={"crowd": {"los_thresholds": [0.5, 0.4, 1, 2, 3]}}), "5 rising positive densities"),
        (site(rules={"tracker": {"low_score": 0.8, "high_score": 0.5}}), "low_score: must be <= high_score"),
        (site(calibration={"image_points": SQUARE, "ground_points_m": SQUARE}), "needs at least 4 points"),
        (
            site(calibration={"image_points": [*SQUARE, [0.2, 0.4]], "ground_points_m": SQUARE}),
            "give one ground position per image point",
        ),
        (site(lines=[{"id": "l", "a": [0.1, 0.1], "b": [0.1, 0.1]}]), "the line has no length"),
        (site(rules={"features": {"grid": [0, 9]}}), "columns and rows must be 1..64"),
    ],
)
def test_invalid_configs_name_the_problem(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_a_full_analytics_config_loads() -> None:
    cfg = parse_config(
        site(
            [
                {
                    "id": "kerb",
                    "kind": "no_parking",
                    "zone_type": "no_stopping",
                    "limit_s": 120,
                    "polygon": SQUARE,
                    "schedule": {
                        "windows": [{"days": ["mon", "fri"], "start": "07:00", "end": "09:00"}],
                        "except_dates": ["2026-12-25"],
                    },
                    "exclude": [[[0.2, 0.2], [0.3, 0.2], [0.3, 0.3]]],
                },
                {"id": "bay-3", "kind": "bike_bay", "capacity": 15, "polygon": SQUARE, "operator": "yellow"},
                {"id": "plaza", "kind": "crowd", "area_m2": 300, "los_table": "queuing", "polygon": SQUARE},
            ],
            rules={"parking": {"grace_s": 60}, "bike": {"blacklist": ["blue"]}, "crowd": {"surge_los": "D"}},
        )
    )
    z = cfg.cameras[0].zones
    assert z[0].limit_s == 120 and z[1].capacity == 15 and cfg.rules.bike.blacklist == ["blue"]
    assert z[2].class_names() == ["person"] and z[1].class_names() == ["bicycle"]


def _models(mod: object) -> list[type[BaseModel]]:
    return [
        v
        for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == mod.__name__
    ]  # type: ignore[attr-defined]


def test_every_field_has_a_description_and_durations_are_seconds() -> None:
    models = _models(zc) + _models(rc)
    assert len(models) >= 12
    for m in models:
        for name, f in m.model_fields.items():
            assert f.description, f"{m.__name__}.{name} has no description"
    with pytest.raises(ValidationError):
        rc.RulesConfig.model_validate({"parking": {"grace_frames": 10}})
