"""Load a site YAML into a frozen ``SiteConfig``, with ``${ENV}`` substitution and
one readable line per problem (``cameras[0].zones[2].polygon: needs at least 3 points, got 2``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from edge.config.site import SiteConfig
from edge.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Extra semantic checks that need more than the schema (e.g. "does this model exist?").
# Each takes the parsed config and returns problem lines; registered by the stage that knows.
SemanticCheck = Callable[[SiteConfig], list[str]]
_semantic_checks: list[SemanticCheck] = []


def register_check(check: SemanticCheck) -> SemanticCheck:
    if check not in _semantic_checks:
        _semantic_checks.append(check)
    return check


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _substitute(node: Any, loc: tuple[Any, ...], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, (*loc, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, (*loc, i), problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            val = os.environ.get(name)
            if val is None:
                if default is None:
                    problems.append(
                        f"{format_path(loc)}: environment variable {name} is not set "
                        f"(set it, or write ${{{name}:-default}})"
                    )
                    return ""
                return default
            return val

        new = _ENV.sub(repl, node)
        # A value that is only a placeholder is re-read as YAML so "${PORT}" can become an int.
        if _ENV.fullmatch(node.strip()):
            try:
                return yaml.safe_load(new) if new else new
            except yaml.YAMLError:
                return new
        return new
    return node


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The allowed keys of the model found by walking ``loc`` from ``model``."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        ann = cur.model_fields[part].annotation
        cur = _unwrap(ann)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return None


def _unwrap(ann: Any) -> Any:
    args = getattr(ann, "__args__", None)
    if not args:
        return ann
    for a in args:
        inner = _unwrap(a)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return ann


def _message(err: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    loc = tuple(err.get("loc", ()))
    etype = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if etype == "missing":
        return loc, "is required but missing"
    if etype == "extra_forbidden":
        allowed = _fields_at(SiteConfig, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return loc, f"unknown key {loc[-1]!r}{hint}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    # Model-level validators prefix the sub-path they complain about: "zones[1].id: duplicate ...".
    m = re.match(r"^([A-Za-z_][\w]*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): (.*)$", msg)
    if m and etype == "value_error":
        sub: list[Any] = []
        for name, idx in re.findall(r"([A-Za-z_]\w*)(?:\[(\d+)\])?", m.group(1)):
            sub.append(name)
            if idx:
                sub.append(int(idx))
        return (*loc, *sub), m.group(2)
    if "input" in err and etype not in ("value_error",) and not isinstance(err["input"], dict | list):
        msg = f"{msg} (got {err['input']!r})"
    if etype != "value_error" and msg[:1].isupper() and msg[1:2].islower():
        msg = msg[0].lower() + msg[1:]
    return loc, msg


def problems_from_validation(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc, msg = _message(dict(err))
        # Drop pydantic's union-branch markers like 'str' / 'int' / 'function-after[...]'.
        clean = tuple(p for p in loc if isinstance(p, int) or not re.match(r"^(str|int|float|bool|function-\w+\[.*\]|list\[.*\]|tuple\[.*\])$", str(p)))
        line = f"{format_path(clean)}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def parse_config(data: Any, *, source: str = "<config>") -> SiteConfig:
    """Validate an already-parsed mapping. Raises ConfigError with one line per problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must be a YAML mapping of keys, got {type(data).__name__}")
    data = _substitute(data, (), problems)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as exc:
        lines = problems_from_validation(exc)
        raise ConfigError(f"{source}: {len(lines)} problem(s)", lines) from None
    for check in _semantic_checks:
        problems.extend(check(cfg))
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    return cfg


def load_config(path: str | os.PathLike[str]) -> SiteConfig:
    """Read, substitute and validate a site config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; pass the site config, e.g. configs/dev-sim.yaml") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: YAML syntax error at {where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty; start from one of the examples in configs/")
    return parse_config(data, source=str(p))


def config_hash(cfg: SiteConfig) -> str:
    """Short stable hash of the effective config (goes into every event)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
