"""Compiled validators for the published JSON Schema files (the only fastjsonschema import).

The schema files in ``schemas/`` are the source of truth; this module turns each one into a Python
function once per process (fastjsonschema generates and compiles the checking code), which checks
an event payload about ten times faster than an interpreting validator (``scripts/bench_schema.py``).

The files declare draft 2020-12. They use only keywords whose meaning is the same in draft-07, which
fastjsonschema implements in every 2.x release, so they are compiled as draft-07 for a behaviour that
does not move with the library's default; ``tests/events/test_validation.py`` holds both ends of
that bargain (the keyword list, and agreement with the reference ``jsonschema`` validator on valid
and broken documents).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import fastjsonschema

__all__ = ["Problem", "Validator"]

_COMPILE_AS: Final = "http://json-schema.org/draft-07/schema#"
Problem = tuple[str, str]
"""Where (a ``/``-joined path inside the document, ``""`` for the top) and what is wrong."""


def _no_remote(uri: str) -> NoReturn:
    raise ValueError(f"refers to {uri}, outside the file; the shipped schemas must be self-contained")


_HANDLERS: Final = {"http": _no_remote, "https": _no_remote, "file": _no_remote, "ftp": _no_remote}


class Validator:
    """One compiled schema. ``problem(doc)`` is None for a valid document, else (where, what)."""

    __slots__ = ("_check", "name")

    def __init__(self, schema: Mapping[str, Any], name: str) -> None:
        doc = copy.deepcopy(dict(schema))  # fastjsonschema rewrites "$ref"s of its input in place
        doc["$schema"] = _COMPILE_AS
        self.name = name
        try:
            # use_default=False: never write a schema's "default" into the document being checked.
            self._check: Callable[[Any], Any] = fastjsonschema.compile(
                doc, handlers=_HANDLERS, use_default=False
            )
        except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError) as exc:
            raise ValueError(f"schema {name} cannot be compiled: {exc}") from None

    def problem(self, doc: Any) -> Problem | None:
        try:
            self._check(doc)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _explain(exc)
        return None


def _explain(exc: fastjsonschema.JsonSchemaValueException) -> Problem:
    path = [str(p) for p in (exc.path or [])[1:]]  # path[0] is the root's name, "data"
    where = "/".join(path)
    rule, rule_def, value = exc.rule, exc.rule_definition, exc.value
    if rule == "required" and isinstance(value, Mapping) and isinstance(rule_def, list):
        missing = [k for k in rule_def if k not in value]
        return where, ", ".join(f"{k!r} is a required property" for k in missing)
    if rule == "minLength" and rule_def == 1:
        return where, "should be non-empty"
    if rule == "additionalProperties":
        return where, str(exc.message).replace(str(exc.name), "", 1).strip().replace(
            "must not contain", "has unexpected field(s)"
        ).replace(" properties", "")[:300]
    if rule in ("enum", "const"):
        shown = repr(value)[:80]
        allowed = rule_def if rule == "enum" else [rule_def]
        return where, f"{shown} is not one of {allowed!r}"[:300]
    text = str(exc.message)
    if exc.name and text.startswith(str(exc.name)):
        text = text[len(str(exc.name)) :].strip()
    return where, text[:300]
