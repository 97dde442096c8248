"""Every payload the analytics emit validates against its published kind schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.analytics.scenario import HERE, run_cached

KINDS_DIR = Path(__file__).resolve().parents[2] / "edge" / "events" / "schemas" / "kinds"
MY_KINDS = [
    "parking_violation",
    "bike_bay_status",
    "bike_bay_overflow",
    "bike_outside_bay",
    "dispatch_task",
    "blacklisted_bike",
    "crowd_density",
    "crowd_surge",
    "line_crossing",
    "features",
]


def _schema(kind: str) -> dict:
    return json.loads((KINDS_DIR / f"{kind}.json").read_text())


@pytest.mark.parametrize("kind", MY_KINDS)
def test_schema_file_is_valid_and_example_validates(kind: str) -> None:
    s = _schema(kind)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["type"] == "object" and s["additionalProperties"] is False and s["description"]
    assert s["examples"]
    for ex in s["examples"]:
        jsonschema.validate(ex, s, cls=jsonschema.Draft202012Validator)


def test_every_emitted_payload_validates() -> None:
    validators = {k: jsonschema.Draft202012Validator(_schema(k)) for k in MY_KINDS}
    seen: set[str] = set()
    for path in sorted(HERE.glob("*.yaml")):
        _, res = run_cached(path.name)
        for tr in [*res.transitions, *res.features]:
            assert tr.kind in validators, f"{tr.kind} has no schema"
            payload = json.loads(json.dumps(dict(tr.payload)))
            errors = sorted(validators[tr.kind].iter_errors(payload), key=str)
            assert not errors, f"{path.name}: {tr.kind}/{tr.phase}: {errors[0].message} in {payload}"
            seen.add(tr.kind)
    assert seen == set(MY_KINDS), f"scenarios never emitted {set(MY_KINDS) - seen}"
