"""Shared pieces of the device simulators: scenario timelines, scheduled output, fault bookkeeping."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class Disconnect:
    """Output marker: drop the client connection (the device was unplugged)."""

    def __repr__(self) -> str:
        return "DISCONNECT"


DISCONNECT = Disconnect()
Out = tuple[float, "bytes | Disconnect"]  # (due time in scenario seconds, bytes to send)


def load_scenario(ref: str | Path | None, device: str) -> dict[str, Any]:
    """A scenario dict from a path or a bundled name ('radar_presence'); {} for None."""
    if ref is None:
        return {}
    p = Path(ref)
    if not p.exists():
        p = SCENARIO_DIR / f"{ref}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"scenario {ref!r} not found (tried {ref} and {p})")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a scenario is a mapping with 'device' and 'timeline'")
    if data.get("device", device) != device:
        raise ValueError(f"{p}: scenario is for device {data.get('device')!r}, not {device!r}")
    return data


@dataclass
class Timeline:
    """Piecewise-constant state: the last entry with ``at_s <= now`` wins; ``loop_s`` repeats it."""

    entries: list[dict[str, Any]]
    loop_s: float | None = None

    @classmethod
    def from_scenario(cls, sc: dict[str, Any], default: dict[str, Any]) -> Timeline:
        entries = sorted((dict(e) for e in sc.get("timeline", [])), key=lambda e: float(e.get("at_s", 0)))
        if not entries or float(entries[0].get("at_s", 0)) > 0:
            entries.insert(0, {"at_s": 0.0, **default})
        loop = sc.get("loop_s")
        return cls(entries, float(loop) if loop else None)

    def at(self, now: float) -> dict[str, Any]:
        if self.loop_s:
            now = now % self.loop_s
        state: dict[str, Any] = {}
        for e in self.entries:
            if float(e.get("at_s", 0)) <= now:
                state.update({k: v for k, v in e.items() if k != "at_s"})
            else:
                break
        return state


@dataclass
class FaultStats:
    """What a simulator sent: ``corrupted`` counts frames the agent must reject (one each)."""

    valid: int = 0
    corrupted: int = 0
    garbage_bytes: int = 0
    disconnects: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


def garbage(rng: random.Random, n: int, forbidden: bytes) -> bytes:
    """``n`` random bytes none of which is in ``forbidden`` (frame-start bytes), so they cannot
    start a frame and are never counted as one."""
    bad = set(forbidden)
    out = bytearray()
    while len(out) < n:
        b = rng.randrange(256)
        if b not in bad:
            out.append(b)
    return bytes(out)
