"""Upstream commands (``.../cmd/{name}``): schemas in ``schemas/commands/``, parsing and validation.

A command is accepted only if its name is known, it fits the size cap, its JSON nests no deeper than
``MAX_JSON_DEPTH`` (checked on the bytes before parsing: a deeply nested document would otherwise
raise RecursionError), it is a JSON object and it matches its schema (a ``reload_config`` YAML is
read by the agent with the config loader's own limits: ``edge.config.loader.parse_config_text``).
Anything else raises ``CommandError`` with a reason that goes into the reply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from edge.errors import CommandError
from edge.events.topics import COMMANDS
from edge.events.validation import Validator

_ID_FIRST = re.compile(rb'\s*\{\s*"id"\s*:\s*"([A-Za-z0-9._:-]{1,64})"')
MAX_JSON_DEPTH = 32  # commands are flat objects; nothing legitimate nests this deep
_OPEN, _CLOSE, _QUOTE, _BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command for the runner to execute (then ``Uplink.reply(cmd, ...)``)."""

    name: str
    id: str
    args: dict[str, Any] = field(default_factory=dict)
    received_ts: float = 0.0


@cache
def command_schema(name: str) -> dict[str, Any]:
    node = resources.files("edge.events").joinpath("schemas", "commands", f"{name}.json")
    data: dict[str, Any] = json.loads(node.read_text(encoding="utf-8"))
    return data


@cache
def _validator(name: str) -> Validator:
    return Validator(command_schema(name), f"commands/{name}.json")


def json_too_deep(payload: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if the arrays/objects of a JSON text nest deeper than ``limit`` (brackets inside strings
    do not count). Linear, no recursion; stops as soon as the limit is passed."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False  # not enough brackets to be that deep
    depth = 0
    in_str = escaped = False
    for c in payload:
        if in_str:
            if escaped:
                escaped = False
            elif c == _BACKSLASH:
                escaped = True
            elif c == _QUOTE:
                in_str = False
        elif c == _QUOTE:
            in_str = True
        elif c in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif c in _CLOSE:
            depth -= 1
    return False


def _load_json(payload: bytes) -> Any:
    """json.loads with the nesting checked first. Raises CommandError."""
    if json_too_deep(payload):
        raise CommandError(
            f"payload nests deeper than {MAX_JSON_DEPTH} levels; a command is a flat JSON object"
        )
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CommandError(f"payload is not valid UTF-8 JSON ({str(exc)[:200]})") from None


def request_id(payload: bytes, max_bytes: int) -> str | None:
    """Best effort: the ``id`` of a (possibly invalid) command, to echo in an error reply. For a
    payload that cannot be parsed (too big, too deep, malformed), a plain id written first is used."""
    if len(payload) <= max_bytes:
        try:
            doc = _load_json(payload)
        except CommandError:
            doc = None
        if isinstance(doc, dict):
            rid = doc.get("id")
            return rid[:64] if isinstance(rid, str) else None
    m = _ID_FIRST.match(payload[:256])
    return m.group(1).decode() if m else None


def parse_command(name: str, payload: bytes, *, max_bytes: int, received_ts: float = 0.0) -> Command:
    """Validate one command. Raises CommandError (unknown, oversized, too deep, malformed, schema mismatch)."""
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name[:64]!r}; known commands: {', '.join(COMMANDS)}")
    if len(payload) > max_bytes:
        raise CommandError(
            f"command is {len(payload)} bytes, over the {max_bytes}-byte limit (uplink.mqtt.command_max_bytes)"
        )
    doc = _load_json(payload)
    if not isinstance(doc, dict):
        raise CommandError(f"payload must be a JSON object, got {type(doc).__name__}")
    problem = _validator(name).problem(doc)
    if problem is not None:
        where, what = problem
        raise CommandError(f"{name} {where or '(command)'}: {what[:300]}")
    args = {k: v for k, v in doc.items() if k != "id"}
    return Command(name=name, id=str(doc["id"]), args=args, received_ts=received_ts)

