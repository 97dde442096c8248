"""The ``edge.event/1`` envelope: a pydantic ``Event`` model plus the published JSON Schema.

The JSON Schema (draft 2020-12) ships in ``schemas/``: ``envelope.json`` plus one payload schema
per kind in ``schemas/kinds/<kind>.json``. ``event_schema()`` assembles them into one document in
which the payload of each kind is checked against its own schema; ``validate_event()`` applies it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.errors import EdgeError
from edge.events.validation import Validator
from edge.types import Phase, Severity

SCHEMA_ID: Final = "edge.event/1"
ClockQuality = Literal["ntp", "gps", "unsynced"]
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class EventValidationError(EdgeError, ValueError):
    """An event does not match the published schema (envelope or the payload of its kind)."""


class ModelRef(BaseModel):
    """The detector behind an observation: name and a prefix of its weights' sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    sha256: str


class GeoPoint(BaseModel):
    """A position on the globe: finite degrees (JSON has no NaN), lat -90..90, lon -180..180."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class Signature(BaseModel):
    """The detached Ed25519 signature of an event (see ``edge.events.signing``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alg: Literal["Ed25519"]
    kid: str
    value: str


class Event(BaseModel):
    """One message of the ``edge.event/1`` envelope. ``seq`` is 0 until the outbox assigns it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["edge.event/1"] = Field("edge.event/1", alias="schema")
    event_id: str
    incident_id: str
    seq: int = 0
    device_id: str
    site_id: str
    camera_id: str | None
    zone_id: str | None
    kind: str
    phase: Phase
    severity: Severity
    severity_reason: str
    ts: str
    started_ts: str
    clock: ClockQuality
    model: ModelRef | None
    config_hash: str
    geo: GeoPoint | None
    payload: dict[str, Any]
    sig: Signature | None = None  # set by the outbox when the box signs its events

    def to_dict(self) -> dict[str, Any]:
        if self.sig is None:  # an unsigned event has no sig member at all
            return self.model_dump(by_alias=True, mode="json", exclude={"sig"})
        return self.model_dump(by_alias=True, mode="json")

    def to_json(self) -> bytes:
        """Strict JSON: a NaN or infinity anywhere raises EventValidationError naming the field,
        never ``NaN`` in the output (strict parsers refuse it) nor a silent ``null`` (pydantic's
        JSON mode turns a NaN inside ``payload`` into null)."""
        where = find_non_finite(self.payload, "payload")
        if where is None and self.geo is not None:
            where = find_non_finite({"lat": self.geo.lat, "lon": self.geo.lon}, "geo")
        if where is not None:
            raise EventValidationError(
                f"{self.kind} event: {where} is not a finite number (NaN/Infinity have no JSON form)"
            )
        try:
            text = json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError as exc:
            raise EventValidationError(f"{self.kind} event cannot be written as JSON: {exc}") from None
        return text.encode("utf-8")


def find_non_finite(obj: Any, path: str = "") -> str | None:
    """The path (``payload/sensors/radar.distance_m``, ``geo/lat``) of the first NaN or infinity in a
    JSON-like document, or None when every number is finite."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path or "(value)")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found = find_non_finite(v, f"{path}/{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found = find_non_finite(v, f"{path}/{i}" if path else str(i))
            if found is not None:
                return found
    return None


def check_finite(doc: Any, what: str) -> None:
    """Raise EventValidationError naming the first non-finite number in ``doc``."""
    where = find_non_finite(doc)
    if where is not None:
        raise EventValidationError(
            f"{what} {where} is not a finite number (NaN/Infinity have no JSON form); "
            "the producer of this value must send null or leave it out"
        )


def _schemas_dir() -> Any:
    return resources.files("edge.events").joinpath("schemas")


def _read_json(node: Any) -> dict[str, Any]:
    data = json.loads(node.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise EventValidationError(f"{node}: a schema file must hold a JSON object")
    return data


@lru_cache(maxsize=1)
def kind_schemas() -> dict[str, dict[str, Any]]:
    """Every payload schema in ``schemas/kinds/``, by kind name (the file stem)."""
    out: dict[str, dict[str, Any]] = {}
    kinds = _schemas_dir().joinpath("kinds")
    for node in sorted(kinds.iterdir(), key=lambda n: n.name):
        if not node.name.endswith(".json"):
            continue
        kind = node.name[: -len(".json")]
        if not _KIND.match(kind):
            raise EventValidationError(
                f"{node.name}: kind file names must be snake_case, e.g. bike_bay_overflow.json"
            )
        out[kind] = _read_json(node)
    return out


@lru_cache(maxsize=1)
def event_schema() -> dict[str, Any]:
    """The whole published schema: the envelope, with the payload of each kind checked by its schema."""
    env = _read_json(_schemas_dir().joinpath("envelope.json"))
    kinds = kind_schemas()
    defs = dict(env.get("$defs", {}))
    branches: list[dict[str, Any]] = []
    for kind, schema in kinds.items():
        # Each kind keeps its own "$id", so "#/$defs/..." references inside it resolve within it.
        sub = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
        sub["$id"] = f"kinds/{kind}.json"
        defs[f"kind_{kind}"] = sub
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"properties": {"payload": {"$ref": f"kinds/{kind}.json"}}},
            }
        )
    props = dict(env["properties"])
    props["kind"] = dict(props["kind"], enum=sorted(kinds))
    out = dict(env, properties=props)
    out["$defs"] = defs
    out["allOf"] = branches
    return out


def _compiled(schema: dict[str, Any], name: str) -> Validator:
    try:
        return Validator(schema, name)
    except ValueError as exc:
        raise EventValidationError(f"{exc}; fix edge/events/schemas/{name}") from None


@lru_cache(maxsize=1)
def _envelope_validator() -> Validator:
    """The assembled schema without its per-kind branches (the payload is checked separately)."""
    full = event_schema()
    return _compiled({k: v for k, v in full.items() if k not in ("allOf", "$defs")} | {
        "$defs": {k: v for k, v in full["$defs"].items() if not k.startswith("kind_")}
    }, "envelope.json")


@lru_cache(maxsize=64)
def _payload_validator(kind: str) -> Validator:
    return _compiled(kind_schemas()[kind], f"kinds/{kind}.json")


def known_kinds() -> list[str]:
    return sorted(kind_schemas())


def validate_payload(kind: str, payload: Mapping[str, Any]) -> None:
    """Check one payload against its kind's schema; raises EventValidationError naming the problem.
    Every number must be finite: JSON Schema's ``number`` does not exclude NaN, this check does."""
    if kind not in kind_schemas():
        raise EventValidationError(
            f"unknown event kind {kind!r}: add edge/events/schemas/kinds/{kind}.json "
            f"(known: {', '.join(known_kinds()) or 'none'})"
        )
    doc = dict(payload)
    check_finite(doc, f"{kind} payload")
    problem = _payload_validator(kind).problem(doc)
    if problem is not None:
        where, what = problem
        raise EventValidationError(f"{kind} payload {where or '(payload)'}: {what}")


def validate_event(doc: Mapping[str, Any]) -> None:
    """Check a whole event document (as published): the envelope, then the payload against its kind.

    Equivalent to validating against ``event_schema()`` (the tests check both ways agree), with
    the payload checked by its own kind's compiled validator rather than every kind's if/then branch.
    """
    d = dict(doc)
    check_finite({k: v for k, v in d.items() if k != "payload"}, f"event {d.get('kind')!r}")
    problem = _envelope_validator().problem(d)
    if problem is not None:
        where, what = problem
        raise EventValidationError(f"event {d.get('kind')!r} {where or '(envelope)'}: {what}")
    payload = d.get("payload")
    try:
        validate_payload(str(d["kind"]), payload if isinstance(payload, Mapping) else {})
    except EventValidationError as exc:
        raise EventValidationError(f"event {d.get('kind')!r} payload: {exc}") from None
