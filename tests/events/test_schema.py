"""The published schema: valid draft 2020-12, one file per kind, and events validate against it."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from edge.events.builder import EventBuilder
from edge.events.schema import (
    EventValidationError,
    event_schema,
    kind_schemas,
    validate_event,
    validate_payload,
)
from edge.types import EventDraft

KINDS = sorted(kind_schemas())


def _event_for(kind: str, payload: dict, phase: str = "instant") -> dict:
    b = EventBuilder(
        "pole-17",
        "gaoxin-south",
        config_hash="a1b2c3",
        clock_quality=lambda: "gps",
        geo=lambda: (30.5, 104.0),
    )
    tr = EventDraft(
        kind=kind,
        phase=phase,
        key=f"{kind}:k",
        t=1.0,
        ts=1_795_335_303.12,
        camera_id="cam0",
        zone_id="bay-3",
        payload=payload,
    )
    return b.build(tr, model={"name": "yolox_nano_416", "sha256": "695E750A" + "0" * 56}).to_dict()


def test_envelope_is_draft_2020_12_and_lists_every_kind() -> None:
    env = json.loads(resources.files("edge.events").joinpath("schemas", "envelope.json").read_text())
    jsonschema.Draft202012Validator.check_schema(env)
    assert env["$schema"].endswith("/draft/2020-12/schema")
    full = event_schema()
    assert full["properties"]["kind"]["enum"] == KINDS
    assert {"agent_status", "uplink_test"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_schema_is_documented_and_its_examples_validate(kind: str) -> None:
    schema = kind_schemas()[kind]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema.get("type") == "object" and schema.get("additionalProperties") is False
    assert schema.get("description"), f"{kind}.json needs a description"
    examples = schema.get("examples") or []
    assert examples, f"{kind}.json needs at least one example"
    for ex in examples:
        validate_payload(kind, ex)
        doc = _event_for(kind, ex)
        validate_event(doc)  # the whole envelope around it validates too...
        jsonschema.Draft202012Validator(event_schema()).validate(doc)  # ...against the published document


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("seq"), "seq"),
        (lambda d: d.update(event_id="not-a-uuid"), "event_id"),
        (lambda d: d.update(event_id="018bcfe5-6800-4710-89a9-5ab5a5bc5abe"), "event_id"),  # v4, not v7
        (lambda d: d.update(ts="2026-11-22T08:15:03Z"), "ts"),  # no milliseconds
        (lambda d: d.update(clock="local"), "clock"),
        (lambda d: d.update(phase="begin"), "phase"),
        (lambda d: d.update(kind="no_such_kind"), "kind"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(geo={"lat": 91, "lon": 0}), "geo"),
        (lambda d: d.update(schema="edge.event/2"), "schema"),
        (lambda d: d["payload"].update(state="dancing"), "payload"),
    ],
)
def test_envelope_rejects(mutate, fragment: str) -> None:
    doc = _event_for("agent_status", {"state": "started", "version": "0.1.0"})
    validate_event(doc)
    mutate(doc)
    with pytest.raises(EventValidationError, match=fragment):
        validate_event(doc)


def test_payload_of_each_kind_is_checked_by_its_own_schema() -> None:
    # A valid uplink_test payload is not a valid agent_status payload and vice versa.
    doc = _event_for("uplink_test", {"n": 1})
    doc["kind"] = "agent_status"
    with pytest.raises(EventValidationError, match="payload"):
        validate_event(doc)


def test_unknown_kind_names_the_missing_schema_file() -> None:
    with pytest.raises(EventValidationError, match=r"kinds/parking_vibes\.json"):
        validate_payload("parking_vibes", {})


def test_generated_reference_documents_every_kind_with_an_example() -> None:
    from edge.events.docs import render

    text = render()
    for kind, schema in kind_schemas().items():
        section = text.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0]
        assert "Example payload:" in section, kind
        first_field = next(iter(schema["properties"]))
        assert f"`{first_field}`" in section, kind
