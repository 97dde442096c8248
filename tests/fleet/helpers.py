"""Shared pieces of the fleet tests: consumer and fleet processes, the broker's connect log, ledgers."""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PLATFORM_PASSWORD = "platform-secret"
BOX_PASSWORD = "box-secret"
_CONNECT = re.compile(r"^(\d+): New client connected from \S+ as (\S+) ")


def env() -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=str(REPO), CITY_MQTT_PASSWORD=PLATFORM_PASSWORD, FLEET_MQTT_PASSWORD=BOX_PASSWORD
    )


def start_consumer(port: int, db: Path, client_id: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "city", "consume", "--broker", f"127.0.0.1:{port}", "--group", "city",
         "--db", f"sqlite:///{db}", "--client-id", client_id, "--username", "platform", *extra],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=open(log, "ab"),
    )  # fmt: skip


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def progress(out: Path) -> list[dict[str, Any]]:
    """Every worker's progress lines, merged and sorted by wall time."""
    rows: list[dict[str, Any]] = []
    for f in glob.glob(str(out / "progress-*.jsonl")):
        k = int(Path(f).stem.split("-")[1])
        for line in Path(f).read_text().splitlines():
            if line.strip():
                rows.append(dict(json.loads(line), worker=k))
    return sorted(rows, key=lambda r: r["t"])


def sim_elapsed(out: Path, start_ts: float) -> float:
    """Simulated seconds reached by the slowest worker."""
    last: dict[int, float] = {}
    for r in progress(out):
        last[r["worker"]] = r["sim_ts"]
    return min(last.values()) - start_ts if last else 0.0


def fleet_state_at(out: Path, t: float) -> dict[int, dict[str, Any]]:
    """Each worker's last progress line at or before wall time t."""
    state: dict[int, dict[str, Any]] = {}
    for r in progress(out):
        if r["t"] <= t:
            state[r["worker"]] = r
    return state


def drained_after(out: Path, t0: float, boxes: int) -> float | None:
    """Seconds from t0 until every box is connected and no box has a backlog, per the progress lines."""
    rows = [r for r in progress(out) if r["t"] >= t0]
    state: dict[int, dict[str, Any]] = {}
    for r in rows:
        state[r["worker"]] = r
        if sum(s["connected"] for s in state.values()) == boxes and all(
            s["backlog_boxes"] == 0 for s in state.values()
        ) and sum(s["boxes"] for s in state.values()) == boxes:
            return r["t"] - t0
    return None


def box_connects(log_text: str, since: float) -> list[int]:
    """Epoch seconds of every box connection the broker logged at or after ``since``."""
    out = []
    for line in log_text.splitlines():
        m = _CONNECT.match(line)
        if m and m.group(2).startswith("edge-") and int(m.group(1)) >= int(since):
            out.append(int(m.group(1)))
    return out


def per_second(stamps: list[int]) -> list[tuple[int, int]]:
    """(second since the first, connects) for every second from the first to the last connect."""
    if not stamps:
        return []
    c = collections.Counter(stamps)
    t0 = min(stamps)
    return [(s - t0, c.get(s, 0)) for s in range(t0, max(stamps) + 1)]


def ledger(out: Path) -> dict[str, tuple[str, int]]:
    """event_id -> (device_id, seq) for every event any box's outbox accepted."""
    acc: dict[str, tuple[str, int]] = {}
    for f in glob.glob(str(out / "ledger-*.sqlite")):
        db = sqlite3.connect(f)
        acc.update({e: (d, int(s)) for e, d, s in db.execute("SELECT event_id, device_id, seq FROM accepted")})
        db.close()
    return acc


def stored(db_path: Path) -> dict[str, tuple[str, int]]:
    db = sqlite3.connect(db_path, timeout=30)
    rows = {e: (d, int(s)) for e, d, s in db.execute("SELECT event_id, device_id, seq FROM events")}
    db.close()
    return rows


def query(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(db_path, timeout=30)
    rows = db.execute(sql).fetchall()
    db.close()
    return rows
