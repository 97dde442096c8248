"""What the uplink does with one incoming command message, before anything executes it.

In order: a retained command is refused (it would run again on every reconnect); a request id seen
recently is a repeat (a QoS 1 redelivery, or the platform retrying): it is not executed again and
gets the first reply again; a device over its command rate gets "rate limited"; then the command is
parsed and validated (size, JSON depth, schema, reload_config YAML limits). Every outcome but a
repeat still in progress and the clearing of a retained message ends in exactly one reply.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.errors import CommandError
from edge.events.commands import Command, parse_command, request_id

SEEN_MAX = 1024  # request ids remembered for repeats (with their replies: at most ~2 MiB)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer with an error and execute nothing."""

    name: str
    id: str | None
    error: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Repeat:
    """A request id seen recently: send ``reply`` again (None: the first is still executing, its
    reply will come)."""

    name: str
    id: str
    reply: bytes | None


Outcome = Command | Refusal | Repeat | None  # None: nothing to do (a retained message being cleared)


class TokenBucket:
    """``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._t = clock()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        self._t = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate if self.rate > 0 else math.inf


class CommandIntake:
    """Per-device limits for incoming commands (one instance per uplink)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self._bucket = TokenBucket(rate_per_s, burst, clock)
        self._lock = threading.Lock()  # remember() is called from the runner's thread too
        self._seen: collections.OrderedDict[tuple[str, str], bytes | None] = collections.OrderedDict()

    def receive(self, name: str, payload: bytes, *, retain: bool = False, received_ts: float = 0.0) -> Outcome:
        if retain:
            if not payload:
                return None  # someone clearing a retained command: nothing was asked
            return Refusal(
                name,
                request_id(payload, self.max_bytes),
                "retained command refused: commands are never executed from a retained message (it would run "
                "again on every reconnect); publish it with retain=false and clear the retained one "
                "(an empty retained message on the same topic)",
            )
        rid = request_id(payload, self.max_bytes)
        if rid is not None:
            with self._lock:
                if (name, rid) in self._seen:
                    self._seen.move_to_end((name, rid))
                    return Repeat(name, rid, self._seen[(name, rid)])
        wait_s = self._bucket.take()
        if wait_s > 0:
            retry = math.ceil(min(wait_s, 3600.0) * 100) / 100  # rounded up: never "retry in 0 s"
            return Refusal(
                name,
                rid,
                f"rate limited: this box takes at most {self._bucket.burst:.0f} commands at once and "
                f"{self._bucket.rate:g} per second (uplink.mqtt.command_burst, command_rate_per_s); "
                f"not executed, send it again in {retry} s",
                {"retry_after_s": retry},
            )
        try:
            cmd = parse_command(name, payload, max_bytes=self.max_bytes, received_ts=received_ts)
        except CommandError as exc:
            if rid is not None:
                self._note(name, rid)
            return Refusal(name, rid, str(exc))
        self._note(name, cmd.id)
        return cmd

    def _note(self, name: str, rid: str) -> None:
        with self._lock:
            self._seen[(name, rid)] = None
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)

    def remember(self, name: str, rid: str | None, reply: bytes) -> None:
        """The reply to (name, rid), to send again if the same request id comes back."""
        if rid is None:
            return
        with self._lock:
            if (name, rid) in self._seen:
                self._seen[(name, rid)] = reply
