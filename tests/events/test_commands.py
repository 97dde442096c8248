"""Command validation: only known, well-formed, small commands get through."""

from __future__ import annotations

import json

import pytest

from edge.errors import CommandError
from edge.events.commands import parse_command, request_id
from edge.events.topics import Topics

MAX = 4096


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("ping", {"id": "r1"}),
        ("ack_task", {"id": "r2", "task_id": "t-1", "by": "ops"}),
        ("resolve_task", {"id": "r3", "task_id": "t-1", "note": "done"}),
        ("reload_config", {"id": "r4", "yaml": "config_version: 1\n"}),
        ("reload_config", {"id": "r4b"}),
        ("snapshot", {"id": "r5", "camera_id": "cam0"}),
    ],
)
def test_valid(name: str, doc: dict) -> None:
    cmd = parse_command(name, json.dumps(doc).encode(), max_bytes=MAX)
    assert cmd.name == name and cmd.id == doc["id"]
    assert cmd.args == {k: v for k, v in doc.items() if k != "id"}


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("reboot", b'{"id":"r"}', "unknown command"),
        ("ping", b'{"id":"r"' + b" " * MAX + b"}", "over the 4096-byte limit"),
        ("ping", b"{not json", "not valid UTF-8 JSON"),
        ("ping", b"\xff\xfe", "not valid UTF-8 JSON"),
        ("ping", b'["id"]', "must be a JSON object"),
        ("ping", b"{}", "'id' is a required property"),
        ("ack_task", b'{"id":"r"}', "task_id"),
        ("ack_task", b'{"id":"r","task_id":"t","rm":"-rf"}', "rm"),
        ("reload_config", b'{"id":"r","yaml":{"config_version":1}}', "string"),
        ("reload_config", b'{"id":"r","yaml":""}', "non-empty"),
        ("reload_config", b'{"id":"r","path":"/etc/shadow"}', "path"),
        ("snapshot", b'{"id":"r","camera_id":"../etc"}', "camera_id"),
    ],
)
def test_refused(name: str, payload: bytes, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        parse_command(name, payload, max_bytes=MAX)


def test_request_id_is_echoed_when_readable() -> None:
    assert request_id(b'{"id":"abc","junk":1}', MAX) == "abc"
    assert request_id(b"garbage", MAX) is None
    assert request_id(b'{"id":"abc"}', 5) == "abc"  # too big to parse, but the id comes first
    assert request_id(b'{"id": "d-1", "x": ' + b"[" * 50_000, MAX) == "d-1"  # too deep to parse
    assert request_id(b'{"x": 1, "id": "late"' + b" " * MAX, MAX) is None  # not first: not guessed
    assert request_id(b'{"id": "a\\"b", "x": {', MAX) is None  # only plain ids are guessed


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_json_is_refused_without_recursion(depth: int) -> None:
    payload = b'{"id":"d","x":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(CommandError, match="nests deeper than 32 levels"):
        parse_command("ping", payload, max_bytes=len(payload))


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    cmd = parse_command("ack_task", b'{"id":"r","task_id":"' + b"[{" * 30 + b'"}', max_bytes=MAX)
    assert cmd.args["task_id"] == "[{" * 30


@pytest.mark.parametrize(
    ("kind", "camera", "topic"),
    [
        ("parking_violation", "cam0", "edge/s1/pole-1/events/parking_violation"),
        ("features", "cam1", "edge/s1/pole-1/features/cam1"),
        ("device_health", None, "edge/s1/pole-1/health"),
    ],
)
def test_topics(kind: str, camera: str | None, topic: str) -> None:
    t = Topics("edge", "s1", "pole-1")
    assert t.event(kind, camera) == topic
    assert t.status == "edge/s1/pole-1/status"
    assert t.reply("ping") == "edge/s1/pole-1/cmd/ping/reply"
    assert t.command_name("edge/s1/pole-1/cmd/ping") == "ping"
    assert t.command_name("edge/s1/pole-1/cmd/ping/reply") is None
    assert t.command_name("edge/s1/pole-2/cmd/ping") is None
