"""Write edited keys of one camera back into a YAML site config, keeping everything else -- comments,
blank lines, key order, quoting -- exactly as the technician wrote it.

``splice_camera_keys(text, camera_id, values)`` finds the camera in the ``cameras:`` list with
PyYAML's node positions and replaces only the text of the edited keys (``zones``, ``lines``,
``calibration``): each ``key: value`` block is re-emitted in block style at the key's own
indentation, a key that was absent is appended to the camera, a key set to ``None`` is removed.
Comments *inside* a replaced value go with it (the page rewrote that value); every other line of
the file is kept byte for byte. The result is parsed again and compared with the intended data: if
the layout is one this merge does not handle (a camera written in flow style, anchors/aliases),
``SpliceError`` says so and the caller falls back to a plain dump.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml


class SpliceError(ValueError):
    """The file's layout cannot be edited in place; the caller writes a plain dump instead."""


class _BlockDumper(yaml.SafeDumper):
    """Block style with indented sequences; a list of scalars (a point) or of points stays on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    def scalar(x: Any) -> bool:
        return isinstance(x, int | float | str | bool) or x is None

    flat = all(scalar(x) for x in data) or all(
        isinstance(x, list) and all(scalar(y) for y in x) for x in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=bool(data) and flat)


_BlockDumper.add_representer(list, _represent_list)


def dump_block(key: str, value: Any, indent: int) -> str:
    """``key: value`` as block YAML, every line indented by ``indent`` spaces, ending in a newline."""
    text = yaml.dump(
        {key: value},
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _content_end(text: str, node: yaml.Node) -> int:
    """End of the node's own text: PyYAML's end mark of a block collection runs on over trailing
    comments and blank lines up to the next key; stop after the last line holding content."""
    end = node.end_mark.index
    start = node.start_mark.index
    lines = text[start:end].splitlines(keepends=True)
    keep = len(lines)
    while keep > 1 and (not lines[keep - 1].strip() or lines[keep - 1].lstrip().startswith("#")):
        keep -= 1
    out = start + sum(len(x) for x in lines[:keep])
    if out < len(text) and not text[out - 1 : out] == "\n":
        nl = text.find("\n", out)
        out = len(text) if nl < 0 else nl + 1
    return out


def _camera_node(root: yaml.Node, camera_id: str) -> yaml.MappingNode:
    if not isinstance(root, yaml.MappingNode):
        raise SpliceError("the config is not a mapping")
    cams = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "cameras"), None)
    if not isinstance(cams, yaml.SequenceNode) or cams.flow_style:
        raise SpliceError("cameras is not a block list")
    for item in cams.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        for k, v in item.value:
            if (
                isinstance(k, yaml.ScalarNode)
                and k.value == "id"
                and isinstance(v, yaml.ScalarNode)
                and v.value == camera_id
            ):
                if item.flow_style:
                    raise SpliceError(f"camera {camera_id} is written in flow style")
                return item
    raise SpliceError(f"no camera {camera_id!r}")


def _dash_column(text: str, item: yaml.Node) -> int | None:
    """Column of the ``-`` that starts a block sequence item, None if the item is not on its dash line."""
    start = _line_start(text, item.start_mark.index)
    before = text[start : item.start_mark.index]
    if before.strip() != "-":
        return None
    return before.index("-")


def _splice_items(
    text: str, seq: yaml.SequenceNode, old: list[Any], new: list[Any]
) -> tuple[int, int, str] | None:
    """A list of mappings with ids, edited item by item: an item whose data did not change keeps its
    text (and its comments); changed and new items are written fresh at the list's dash column.
    None when the list is not a block list of such items (the caller rewrites the whole key)."""
    if seq.flow_style or not seq.value or len(seq.value) != len(old):
        return None
    cols = [_dash_column(text, item) for item in seq.value]
    if any(c is None for c in cols) or len(set(cols)) != 1:
        return None
    col = int(cols[0])  # type: ignore[arg-type]
    spans: dict[str, str] = {}
    starts = [_line_start(text, item.start_mark.index) for item in seq.value]
    for i, (item, data) in enumerate(zip(seq.value, old, strict=True)):
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return None
        # An item's text runs to the next item's dash line, so comments under it stay with it.
        end = starts[i + 1] if i + 1 < len(starts) else _content_end(text, item)
        spans[data["id"]] = text[starts[i] : end]
    old_by_id = {d["id"]: d for d in old}
    parts: list[str] = []
    for data in new:
        zid = data.get("id") if isinstance(data, dict) else None
        if isinstance(zid, str) and zid in spans and old_by_id[zid] == data:
            parts.append(spans[zid])
        else:
            body = dump_block("x", [data], 0).split("\n", 1)[1]  # the "- ..." lines of a one-item list
            lines = body.splitlines(keepends=True)
            shift = col - (len(lines[0]) - len(lines[0].lstrip(" ")))
            parts.append(
                "".join(
                    (" " * shift + ln if shift >= 0 else ln[-shift:]) if ln.strip() else ln for ln in lines
                )
            )
    start = _line_start(text, seq.value[0].start_mark.index)
    return start, _content_end(text, seq.value[-1]), "".join(parts)


def splice_camera_keys(text: str, camera_id: str, values: dict[str, Any]) -> str:
    """``text`` with the camera's ``values`` keys replaced (None removes the key); raises SpliceError.
    Keys whose value did not change are left alone."""
    if "&" in text and "*" in text:
        # Anchors and aliases: replacing an anchored block would break the alias elsewhere.
        try:
            if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise SpliceError("the config uses YAML aliases")
        except yaml.YAMLError as exc:
            raise SpliceError(f"YAML syntax: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        expected = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpliceError(f"YAML syntax: {exc}") from None
    if root is None:
        raise SpliceError("the config is empty")
    cam = _camera_node(root, camera_id)
    old_cam = next(
        (
            c
            for c in (expected or {}).get("cameras") or []
            if isinstance(c, dict) and c.get("id") == camera_id
        ),
        {},
    )
    key_col = cam.value[0][0].start_mark.column
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied back to front
    present = {k.value: (k, v) for k, v in cam.value if isinstance(k, yaml.ScalarNode)}
    missing: list[str] = []
    for key, value in values.items():
        if key in present and old_cam.get(key) == value:
            continue  # unchanged: keep the text as written
        if key in present:
            k, v = present[key]
            if (
                value is not None
                and isinstance(v, yaml.SequenceNode)
                and isinstance(value, list)
                and value
                and (item_edit := _splice_items(text, v, list(old_cam.get(key) or []), value)) is not None
            ):
                edits.append(item_edit)
                continue
            start = _line_start(text, k.start_mark.index)
            if text[start : k.start_mark.index].strip() != "":
                raise SpliceError(f"{key} is the camera's first key or shares its line with another")
            replacement = "" if value is None else dump_block(key, value, key_col)
            end = (
                _content_end(text, v)
                if not isinstance(v, yaml.ScalarNode) or v.value
                else _content_end(text, k)
            )
            edits.append((start, end, replacement))
        elif value is not None:
            missing.append(key)
    if missing:
        last_value = cam.value[-1][1]
        at = _content_end(text, last_value)
        prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
        edits.append((at, at, prefix + "".join(dump_block(key, values[key], key_col) for key in missing)))
    out = text
    for start, end, rep in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + rep + out[end:]
    # The result must be the original data with exactly these keys changed.
    for cam_data in (expected or {}).get("cameras") or []:
        if isinstance(cam_data, dict) and cam_data.get("id") == camera_id:
            for key, value in values.items():
                if value is None:
                    cam_data.pop(key, None)
                else:
                    cam_data[key] = copy.deepcopy(value)
    try:
        got = yaml.safe_load(out)
    except yaml.YAMLError as exc:
        raise SpliceError(f"the edited text does not parse: {exc}") from None
    if got != expected:
        raise SpliceError("the edited text does not read back as the intended config")
    return out
