"""Load a site YAML into a frozen ``SiteConfig``, with ``${ENV}`` substitution and
one readable line per problem (``cameras[0].zones[2].polygon: needs at least 3 points, got 2``).

Hostile or broken files are refused before anything is built from them, each with one line: a
binary or non-UTF-8 file, a file over ``MAX_CONFIG_BYTES``, YAML nested deeper than
``MAX_YAML_DEPTH``, a recursive alias, aliases that expand to more than ``MAX_YAML_NODES`` nodes (a
"billion laughs" of a few hundred bytes otherwise grows the agent by hundreds of MB), and duplicate
keys (YAML would silently keep the second). The same guard reads ``reload_config`` payloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from edge.config.site import SiteConfig
from edge.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MAX_CONFIG_BYTES = 1024 * 1024  # the largest example is a few KiB
MAX_YAML_DEPTH = 64  # a site config nests about 8 levels
MAX_YAML_NODES = 200_000  # nodes after expanding aliases (8 cameras x 50 zones x 20 points is ~25,000)
_MERGE_TAG = "tag:yaml.org,2002:merge"

# Extra semantic checks that need more than the schema ("does this model exist?", "are the TLS
# files on this box?"). Each takes the parsed config and returns problem lines; the caller passes the
# ones that apply (the CLI's run and check-config pass the model and box-file checks).
SemanticCheck = Callable[[SiteConfig], list[str]]


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


def parse_config(data: Any, *, source: str = "<config>", checks: Sequence[SemanticCheck] = ()) -> SiteConfig:
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
    for check in checks:
        problems.extend(check(cfg))
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    return cfg


def _line(mark: Any) -> int | str:
    return int(mark.line) + 1 if mark is not None else "?"


class _Refused(Exception):
    """A YAML limit was hit while scanning or composing (carries the one problem line)."""


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (pure Python, so the composer can be watched) that refuses recursive
    aliases and deep nesting while composing, and keeps the YAML path of the node being composed."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._path: list[Any] = []
        self._open_anchors: set[str] = set()

    def _flow_start(self) -> None:
        # The scanner's simple-key bookkeeping is quadratic in flow nesting: refuse before it matters.
        if self.flow_level >= MAX_YAML_DEPTH:
            mark = self.get_mark()
            raise _Refused(
                f"{self._source}: nested deeper than {MAX_YAML_DEPTH} levels at line {mark.line + 1}, "
                f"column {mark.column + 1}; "
                "a site config is a few levels deep"
            )

    def fetch_flow_sequence_start(self) -> None:
        self._flow_start()
        super().fetch_flow_sequence_start()  # type: ignore[no-untyped-call]

    def fetch_flow_mapping_start(self) -> None:
        self._flow_start()
        super().fetch_flow_mapping_start()  # type: ignore[no-untyped-call]

    def compose_node(self, parent: Any, index: Any) -> Any:
        step: Any = index if isinstance(index, int) else getattr(index, "value", None)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                where = format_path(tuple(p for p in (*self._path, step) if p is not None))
                raise _Refused(
                    f"{where}: recursive alias *{event.anchor} at line {_line(event.start_mark)} contains "
                    "itself; a YAML alias must not refer to a node it is part of"
                )
            return super().compose_node(parent, index)
        if len(self._path) >= MAX_YAML_DEPTH:
            outer = [p for p in self._path if p is not None]
            where = format_path(tuple(outer[:4])) + ("..." if len(outer) > 4 else "")
            raise _Refused(
                f"{where}: nested deeper than {MAX_YAML_DEPTH} levels at line {_line(event.start_mark)}; "
                "a site config is a few levels deep"
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._path.append(step)
        try:
            return super().compose_node(parent, index)
        finally:
            self._path.pop()
            if anchor is not None:
                self._open_anchors.discard(anchor)


def _children(node: yaml.Node) -> list[tuple[Any, yaml.Node]]:
    """(path step, child) of a node; mapping keys that are not plain scalars count as nodes too."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[Any, yaml.Node]] = []
        for k, v in node.value:
            out.append((None, k))
            out.append((k.value if isinstance(k, yaml.ScalarNode) else None, v))
        return out
    return []


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """Nodes each node stands for once aliases are expanded (memoised: linear in distinct nodes)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        kids = _children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for _, c in kids)
            continue
        stack.append((node, True))
        stack.extend((c, False) for _, c in kids if id(c) not in size)
    return size


def _bomb_problem(root: yaml.Node, size: dict[int, int]) -> str:
    """The YAML path where the expansion sits: descend while one child carries most of it."""
    path: list[Any] = []
    node = root
    while True:
        kids = [(step, c) for step, c in _children(node) if step is not None]
        if not kids:
            break
        step, big = max(kids, key=lambda kc: size[id(kc[1])])
        if size[id(big)] <= MAX_YAML_NODES or 2 * size[id(big)] <= size[id(node)]:
            break
        path.append(step)
        node = big
    return (
        f"{format_path(tuple(path))}: YAML aliases expand this value (line {_line(node.start_mark)}) to "
        f"{size[id(node)]:,} nodes, over the limit of {MAX_YAML_NODES:,} (an alias bomb?); "
        "write the values out instead of nesting aliases"
    )


def _duplicate_keys(root: yaml.Node) -> list[str]:
    """One line per mapping key that appears twice (YAML keeps the last one silently)."""
    problems: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for k, _v in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.tag == _MERGE_TAG:
                    continue
                prev = first.setdefault((k.tag, k.value), k)
                if prev is not k:
                    problems.append(
                        f"{format_path((*path, k.value))}: duplicate key {k.value!r} at line {_line(k.start_mark)} "
                        f"(first at line {_line(prev.start_mark)}); YAML would silently keep the second, remove one"
                    )
        for step, child in reversed(_children(node)):
            if step is not None:
                stack.append((child, (*path, step)))
    return problems


def read_yaml_text(text: str, *, source: str = "<config>") -> Any:
    """Parse config YAML within the limits above. Raises ConfigError (one line per problem)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: {len(text):,} characters, over the {MAX_CONFIG_BYTES:,} a site config may have; "
            "is this the right file?"
        )
    nul = text.find("\0")
    if nul >= 0:
        raise ConfigError(
            f"{source}: is binary data (NUL at character {nul}), not YAML text; send the site config YAML"
        )
    loader = _GuardedLoader(text, source)
    try:
        try:
            root = loader.get_single_node()
        except _Refused as exc:
            raise ConfigError(str(exc), [str(exc)]) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: {_yaml_error(exc)}") from None
        if root is None:
            return None
        size = _expanded_sizes(root)
        if size[id(root)] > MAX_YAML_NODES:
            line = _bomb_problem(root, size)
            raise ConfigError(f"{source}: {line}", [line])
        dups = _duplicate_keys(root)
        if dups:
            raise ConfigError(f"{source}: {len(dups)} problem(s)", dups)
        try:
            return loader.construct_document(root)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: {_yaml_error(exc)}") from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"YAML syntax error at {where}: {problem}"


def decode_config_bytes(data: bytes, *, source: str = "<config>") -> str:
    """Config bytes to text: refuses binary files and anything that is not UTF-8 (BOM allowed)."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: {len(data):,} bytes, over the {MAX_CONFIG_BYTES:,} a site config may have; "
            "is this the right file?"
        )
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{source}: is UTF-16 text, not UTF-8; save the file as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError(
            f"{source}: is a binary file (NUL byte at offset {nul}), not YAML text; "
            "pass the site config YAML"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError(
            f"{source}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {column}); "
            "save the file as UTF-8"
        ) from None


def parse_config_text(text: str, *, source: str = "<config>", checks: Sequence[SemanticCheck] = ()) -> SiteConfig:
    """Read YAML text (e.g. a ``reload_config`` payload) within the limits and validate it."""
    data = read_yaml_text(text, source=source)
    if data is None:
        raise ConfigError(f"{source}: the config is empty; start from one of the examples in configs/")
    return parse_config(data, source=source, checks=checks)


def load_config(path: str | os.PathLike[str], *, checks: Sequence[SemanticCheck] = ()) -> SiteConfig:
    """Read, substitute and validate a site config file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; pass the site config, e.g. configs/dev-sim.yaml") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory; pass the site config YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p}: {p.stat().st_size:,} bytes, over the {MAX_CONFIG_BYTES:,} a site config may have; "
            "is this the right file?"
        )
    data = read_yaml_text(decode_config_bytes(raw, source=str(p)), source=str(p))
    if data is None:
        raise ConfigError(f"{p}: the file is empty; start from one of the examples in configs/")
    return parse_config(data, source=str(p), checks=checks)


def config_hash(cfg: SiteConfig) -> str:
    """Short stable hash of the effective config (goes into every event)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
