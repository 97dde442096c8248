"""The box validates with compiled validators (fastjsonschema); the schema files stay the truth.

Two guards keep that honest: every keyword the files use means the same in draft 2020-12 (what they
declare) and draft-07 (what they are compiled as), and the compiled validators agree with the
reference implementation (jsonschema, a dev extra) on valid documents and on systematically broken
ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest

from edge.events.commands import command_schema
from edge.events.schema import EventValidationError, event_schema, kind_schemas, validate_event
from edge.events.topics import COMMANDS
from edge.events.validation import Validator

from .test_schema import _event_for

SCHEMAS = resources.files("edge.events").joinpath("schemas")

# Keywords whose validation meaning is identical in draft-07 and draft 2020-12, as long as "items" is
# one schema (not a list) and "$ref" has only annotations beside it (draft-07 ignores siblings).
SAME_IN_BOTH = {
    "type",
    "properties",
    "additionalProperties",
    "required",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "$defs",
    "$schema",
    "$id",
}
ANNOTATIONS = {"title", "description", "examples", "default", "$comment"}


def _schema_files() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "envelope.json", json.loads(SCHEMAS.joinpath("envelope.json").read_text(encoding="utf-8"))
    for sub in ("kinds", "commands"):
        for node in sorted(SCHEMAS.joinpath(sub).iterdir(), key=lambda n: n.name):
            if node.name.endswith(".json"):
                yield f"{sub}/{node.name}", json.loads(node.read_text(encoding="utf-8"))


def _subschemas(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key in ("properties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            yield from _subschemas(sub, f"{path}/{key}/{name}")
    for key in ("items", "additionalProperties", "not"):
        yield from _subschemas(schema.get(key), f"{path}/{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _subschemas(sub, f"{path}/{key}/{i}")


@pytest.mark.parametrize(
    ("name", "schema"), list(_schema_files()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_schema_files_use_only_keywords_that_mean_the_same_in_both_drafts(name: str, schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    for where, sub in _subschemas(schema, name):
        unknown = set(sub) - SAME_IN_BOTH - ANNOTATIONS
        assert not unknown, f"{where}: {sorted(unknown)} not in the draft-07/2020-12 common subset"
        assert not isinstance(sub.get("items"), list), (
            f"{where}: 'items' as a list changed meaning in 2020-12"
        )
        if "$ref" in sub:
            beside = set(sub) - {"$ref"} - ANNOTATIONS
            assert not beside, f"{where}: {sorted(beside)} beside $ref is ignored by draft-07"


def _broken(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every top-level field dropped, and set to values of each JSON type; one extra field."""
    odd: list[Any] = [None, True, -1, 10**12, 0.5, "", "x" * 600, [], [1, "a"], {}, {"k": 1}]
    for key in doc:
        d = copy.deepcopy(doc)
        del d[key]
        yield d
        for v in odd:
            d = copy.deepcopy(doc)
            d[key] = v
            yield d
        if isinstance(doc[key], dict):
            for inner in _broken(doc[key]):
                d = copy.deepcopy(doc)
                d[key] = inner
                yield d
    yield {**copy.deepcopy(doc), "unexpected_field": 1}


def _agree(schema: dict[str, Any], name: str, docs: list[Any]) -> tuple[int, int]:
    ref = jsonschema.Draft202012Validator(schema)
    fast = Validator(schema, name)
    valid = invalid = 0
    for d in docs:
        expected = ref.is_valid(d)
        problem = fast.problem(d)
        assert (problem is None) == expected, (
            f"{name}: jsonschema says {expected}, compiled says {problem} for {d!r}"
        )
        if expected:
            valid += 1
        else:
            invalid += 1
            assert problem is not None and problem[1], f"{name}: a refusal must say what is wrong"
    return valid, invalid


@pytest.mark.parametrize("kind", sorted(kind_schemas()))
def test_compiled_payload_validator_agrees_with_the_reference(kind: str) -> None:
    schema = kind_schemas()[kind]
    docs: list[Any] = []
    for ex in schema["examples"]:
        docs.append(ex)
        docs.extend(_broken(ex))
    docs += [[], "x", 1, None]
    valid, invalid = _agree(schema, f"kinds/{kind}.json", docs)
    assert valid >= len(schema["examples"]) and invalid > 10


def _events_and_broken_events() -> list[Any]:
    docs: list[Any] = []
    for kind in ("agent_status", "parking_violation", "device_health"):
        doc = _event_for(kind, kind_schemas()[kind]["examples"][0])
        docs.append(doc)
        docs.extend(_broken(doc))  # the envelope's fields, and the payload's fields one level in
    return docs


def test_compiled_envelope_validator_agrees_with_the_reference() -> None:
    full = event_schema()
    env = {k: v for k, v in full.items() if k != "allOf"}
    docs = [d for d in _events_and_broken_events() if isinstance(d.get("payload"), dict)]
    valid, invalid = _agree(env, "envelope.json", docs)
    assert valid >= 3 and invalid > 100


def test_validate_event_agrees_with_the_whole_published_document() -> None:
    ref = jsonschema.Draft202012Validator(event_schema())  # the envelope and every kind's if/then branch
    docs = _events_and_broken_events()
    refused = 0
    for d in docs:
        try:
            validate_event(d)
            ok = True
        except EventValidationError:
            ok = False
            refused += 1
        assert ok == ref.is_valid(d), d
    assert refused > 200


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_compiled_command_validator_agrees_with_the_reference(name: str) -> None:
    schema = command_schema(name)
    base = {"id": "r1"} | {k: "x" for k in schema.get("required", []) if k != "id"}
    docs = [base, *list(_broken(base)), {"id": "r" * 65}, {"id": ""}]
    valid, invalid = _agree(schema, f"commands/{name}.json", docs)
    assert valid >= 1 and invalid > 10


def test_validation_changes_neither_the_schema_nor_the_document() -> None:
    schema = kind_schemas()["device_health"]  # has "$ref"s, which fastjsonschema rewrites in its input
    before = copy.deepcopy(schema)
    v = Validator(schema, "kinds/device_health.json")
    assert schema == before
    doc = copy.deepcopy(schema["examples"][0])
    assert v.problem(doc) is None and doc == schema["examples"][0]
    with_default = Validator(
        {"type": "object", "properties": {"a": {"type": "integer", "default": 5}}}, "default.json"
    )
    empty: dict[str, Any] = {}
    assert with_default.problem(empty) is None and empty == {}  # no default written into a document


def test_a_schema_that_reaches_outside_its_file_is_refused_without_a_fetch() -> None:
    with pytest.raises(ValueError, match=r"x\.json cannot be compiled: .*self-contained"):
        Validator({"$ref": "https://schemas.example.invalid/other.json#/x"}, "x.json")


def test_messages_name_the_field_and_the_problem() -> None:
    v = Validator(kind_schemas()["parking_violation"], "kinds/parking_violation.json")
    ex = kind_schemas()["parking_violation"]["examples"][0]
    assert v.problem({**ex, "dwell_s": -1}) == ("dwell_s", "must be bigger than or equal to 0")
    where, what = v.problem({k: val for k, val in ex.items() if k != "track_id"}) or ("", "")
    assert (where, what) == ("", "'track_id' is a required property")
    where, what = v.problem({**ex, "colour": "red"}) or ("", "")
    assert where == "" and "colour" in what
    where, what = v.problem({**ex, "zone_type": "bus_lane"}) or ("", "")
    assert where == "zone_type" and "'bus_lane' is not one of" in what
