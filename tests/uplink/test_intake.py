"""Command intake limits, with a fake clock: rate limit, repeats, retained commands."""

from __future__ import annotations

import json

import pytest

from edge.events.commands import Command
from edge.uplink.intake import CommandIntake, Refusal, Repeat, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def cmd(rid: str) -> bytes:
    return json.dumps({"id": rid}).encode()


def test_token_bucket_burst_then_rate() -> None:
    clock = Clock()
    b = TokenBucket(2.0, 3, clock)
    assert [b.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take() == pytest.approx(0.5)
    clock.t += 0.5
    assert b.take() == 0.0 and b.take() == pytest.approx(0.5)
    clock.t += 100
    assert [b.take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refills only up to the burst


def test_rate_limited_commands_get_a_reply_with_retry_after() -> None:
    clock = Clock()
    intake = CommandIntake(max_bytes=4096, rate_per_s=5, burst=20, clock=clock)
    out = [intake.receive("ping", cmd(f"r{i}")) for i in range(300)]
    ran = [o for o in out if isinstance(o, Command)]
    limited = [o for o in out if isinstance(o, Refusal)]
    assert len(ran) == 20 and len(limited) == 280
    assert all(o.id is not None and "rate limited" in o.error and o.extra["retry_after_s"] > 0 for o in limited)
    clock.t += 1.0
    assert sum(isinstance(intake.receive("ping", cmd(f"s{i}")), Command) for i in range(10)) == 5
    # A rate-limited request id is not remembered: sent again later, it runs.
    clock.t += 10
    assert isinstance(intake.receive("ping", cmd("r299")), Command)


def test_a_repeated_request_id_is_not_executed_twice() -> None:
    intake = CommandIntake(max_bytes=4096, rate_per_s=5, burst=20)
    first = intake.receive("reload_config", cmd("r1"))
    assert isinstance(first, Command)
    again = intake.receive("reload_config", cmd("r1"))
    assert again == Repeat("reload_config", "r1", None)  # still executing: its reply will come
    intake.remember("reload_config", "r1", b'{"id":"r1","ok":true}')
    assert intake.receive("reload_config", cmd("r1")) == Repeat("reload_config", "r1", b'{"id":"r1","ok":true}')
    assert isinstance(intake.receive("ping", cmd("r1")), Command)  # same id, another command: its own request
    bad = intake.receive("ack_task", cmd("b1"))  # schema error: refused, remembered with its reply
    assert isinstance(bad, Refusal)
    intake.remember("ack_task", "b1", b"refused")
    assert intake.receive("ack_task", cmd("b1")) == Repeat("ack_task", "b1", b"refused")


def test_retained_commands_are_refused_and_clearing_them_is_silent() -> None:
    intake = CommandIntake(max_bytes=4096, rate_per_s=5, burst=20)
    out = intake.receive("reload_config", cmd("x1"), retain=True)
    assert isinstance(out, Refusal) and out.id == "x1" and "retained command refused" in out.error
    assert intake.receive("reload_config", b"", retain=True) is None
