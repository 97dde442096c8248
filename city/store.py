"""The city consumer's database: SQLite (standard library) or PostgreSQL (``psycopg``, the ``postgres``
extra), chosen by URL: ``sqlite:///path.db`` or ``postgresql://user@host/db``.

Tables (the same columns in both):

* ``events`` — one row per ``event_id`` (the dedupe key): device, site, seq, kind, phase, the event's
  ``ts``, ``received_ts`` and the full JSON ``envelope`` as received (inflated when it was compressed).
* ``devices`` — per device: highest seq seen, events stored, duplicates dropped, late arrivals,
  gaps opened, the last status (online/offline/stopped) and when.
* ``seq_gaps`` — the seq ranges currently missing per device; ``seq_gap_log`` — every gap ever
  opened, how many of its seqs arrived late and when it closed.
* ``commands`` — commands the platform sent to boxes (``ack_task`` for each new dispatch task) with
  their broker acknowledgement and the box's reply.
* ``consumer_stats`` — counters per consumer instance; ``rejects`` — messages that were not valid events.

Several consumer processes may share one database: each batch is one transaction, and the
read-modify-write of a device's seq bookkeeping happens under that transaction's lock
(``BEGIN IMMEDIATE`` in SQLite, ``SELECT ... FOR UPDATE`` in PostgreSQL).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

DDL = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    seq {BIG} NOT NULL,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    severity TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    camera_id TEXT,
    zone_id TEXT,
    ts TEXT NOT NULL,
    received_ts {REAL} NOT NULL,
    consumer TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_device_seq ON events (device_id, seq);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    max_seq {BIG} NOT NULL DEFAULT 0,
    events {BIG} NOT NULL DEFAULT 0,
    duplicates {BIG} NOT NULL DEFAULT 0,
    late {BIG} NOT NULL DEFAULT 0,
    gaps_opened {BIG} NOT NULL DEFAULT 0,
    seq_conflicts {BIG} NOT NULL DEFAULT 0,
    first_received_ts {REAL},
    last_received_ts {REAL},
    status TEXT,
    status_ts {REAL}
);
CREATE TABLE IF NOT EXISTS seq_gaps (
    device_id TEXT NOT NULL,
    first_seq {BIG} NOT NULL,
    last_seq {BIG} NOT NULL,
    opened_ts {REAL} NOT NULL,
    PRIMARY KEY (device_id, first_seq)
);
CREATE TABLE IF NOT EXISTS seq_gap_log (
    device_id TEXT NOT NULL,
    first_seq {BIG} NOT NULL,
    last_seq {BIG} NOT NULL,
    opened_ts {REAL} NOT NULL,
    filled {BIG} NOT NULL DEFAULT 0,
    closed_ts {REAL},
    PRIMARY KEY (device_id, first_seq)
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    event_id TEXT,
    created_ts {REAL} NOT NULL,
    created_by TEXT NOT NULL,
    sent_ts {REAL},
    attempts INTEGER NOT NULL DEFAULT 0,
    puback_ts {REAL},
    reply_ts {REAL},
    reply_ok INTEGER,
    reply TEXT
);
CREATE TABLE IF NOT EXISTS consumer_stats (
    consumer TEXT PRIMARY KEY,
    received {BIG} NOT NULL DEFAULT 0,
    stored {BIG} NOT NULL DEFAULT 0,
    duplicates {BIG} NOT NULL DEFAULT 0,
    rejected {BIG} NOT NULL DEFAULT 0,
    commands_sent {BIG} NOT NULL DEFAULT 0,
    starts {BIG} NOT NULL DEFAULT 0,
    updated_ts {REAL}
);
CREATE TABLE IF NOT EXISTS rejects (
    received_ts {REAL} NOT NULL,
    consumer TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The database URL is wrong, the driver is missing, or the database cannot be opened."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A parsed, validated event about to be stored."""

    event_id: str
    device_id: str
    site_id: str
    seq: int
    kind: str
    phase: str
    severity: str
    incident_id: str
    camera_id: str | None
    zone_id: str | None
    ts: str
    envelope: str


@dataclass(frozen=True, slots=True)
class Stored:
    """What happened to one event in ``Store.add_events``."""

    event: NewEvent
    new: bool


class Store:
    """One connection to the consumer's database. Not thread-safe (one per consumer thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        u = urlparse(url)
        if u.scheme == "sqlite":
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else u.path
            if not path:
                raise StoreError(f"{url}: write sqlite:///relative/path.db or sqlite:////absolute/path.db")
            self.kind = "sqlite"
            try:
                self._db: Any = sqlite3.connect(path, isolation_level=None, timeout=60.0)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite database {path}: {exc}") from None
            self._ph = "?"
            ddl = DDL.format(BIG="INTEGER", REAL="REAL")
            self._db.executescript(ddl)
        elif u.scheme in ("postgresql", "postgres"):
            try:
                import psycopg  # the optional "postgres" extra
            except ImportError:
                raise StoreError(
                    f"{url}: PostgreSQL needs psycopg; install the extra: pip install 'edge[postgres]'"
                ) from None
            self.kind = "postgresql"
            try:
                self._db = psycopg.connect(url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to {u.hostname or 'localhost'}/{u.path.lstrip('/')}: {exc}") from None
            self._ph = "%s"
            with self._db.transaction():
                for stmt in DDL.format(BIG="BIGINT", REAL="DOUBLE PRECISION").split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
        else:
            raise StoreError(f"{url}: unsupported database URL; use sqlite:///file.db or postgresql://...")

    # ---- plumbing -------------------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(self._q(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (SQLite takes the write lock at once, so two consumers serialise)."""
        if self.kind == "sqlite":
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        else:
            with self._db.transaction():
                yield

    def close(self) -> None:
        self._db.close()

    # ---- events and seq bookkeeping ---------------------------------------------------------------
    def _lock_device(self, device_id: str, site_id: str) -> int:
        self.execute(
            "INSERT INTO devices(device_id, site_id) VALUES(?, ?) ON CONFLICT(device_id) DO NOTHING",
            (device_id, site_id),
        )
        lock = " FOR UPDATE" if self.kind == "postgresql" else ""
        row = self.query(f"SELECT max_seq FROM devices WHERE device_id=?{lock}", (device_id,))
        return int(row[0][0])

    def add_events(self, events: list[NewEvent], consumer: str, now: float) -> list[Stored]:
        """Store a batch inside the caller's transaction: dedupe by event_id, seq bookkeeping per device."""
        out: list[Stored] = []
        by_device: dict[str, list[NewEvent]] = {}
        for ev in events:
            by_device.setdefault(ev.device_id, []).append(ev)
        for device_id in sorted(by_device):  # one lock order for every consumer: no deadlocks
            evs = sorted(by_device[device_id], key=lambda e: e.seq)
            max_seq = self._lock_device(device_id, evs[0].site_id)
            counts = {"events": 0, "duplicates": 0, "late": 0, "gaps_opened": 0, "seq_conflicts": 0}
            for ev in evs:
                cur = self.execute(
                    "INSERT INTO events(event_id, device_id, site_id, seq, kind, phase, severity, incident_id, "
                    "camera_id, zone_id, ts, received_ts, consumer, envelope) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO NOTHING",
                    (ev.event_id, ev.device_id, ev.site_id, ev.seq, ev.kind, ev.phase, ev.severity,
                     ev.incident_id, ev.camera_id, ev.zone_id, ev.ts, now, consumer, ev.envelope),
                )  # fmt: skip
                if cur.rowcount != 1:
                    counts["duplicates"] += 1
                    out.append(Stored(ev, False))
                    continue
                counts["events"] += 1
                out.append(Stored(ev, True))
                if ev.seq > max_seq + 1:
                    self.execute(
                        "INSERT INTO seq_gaps(device_id, first_seq, last_seq, opened_ts) VALUES(?,?,?,?)",
                        (device_id, max_seq + 1, ev.seq - 1, now),
                    )
                    self.execute(
                        "INSERT INTO seq_gap_log(device_id, first_seq, last_seq, opened_ts) VALUES(?,?,?,?)",
                        (device_id, max_seq + 1, ev.seq - 1, now),
                    )
                    counts["gaps_opened"] += 1
                if ev.seq > max_seq:
                    max_seq = ev.seq
                elif self._fill(device_id, ev.seq, now):
                    counts["late"] += 1
                else:
                    counts["seq_conflicts"] += 1  # a seq below max that was not missing: a reset box?
            self.execute(
                "UPDATE devices SET max_seq=?, events=events+?, duplicates=duplicates+?, late=late+?, "
                "gaps_opened=gaps_opened+?, seq_conflicts=seq_conflicts+?, "
                "first_received_ts=COALESCE(first_received_ts, ?), last_received_ts=? WHERE device_id=?",
                (max_seq, counts["events"], counts["duplicates"], counts["late"], counts["gaps_opened"],
                 counts["seq_conflicts"], now, now, device_id),
            )  # fmt: skip
        return out

    def _fill(self, device_id: str, seq: int, now: float) -> bool:
        """A late seq arrived: shrink or split the open gap holding it. False if no gap held it."""
        row = self.query(
            "SELECT first_seq, last_seq FROM seq_gaps WHERE device_id=? AND first_seq<=? AND last_seq>=?",
            (device_id, seq, seq),
        )
        if not row:
            return False
        first, last = int(row[0][0]), int(row[0][1])
        opened = self.query(
            "SELECT opened_ts FROM seq_gaps WHERE device_id=? AND first_seq=?", (device_id, first)
        )[0][0]
        self.execute("DELETE FROM seq_gaps WHERE device_id=? AND first_seq=?", (device_id, first))
        for a, b in ((first, seq - 1), (seq + 1, last)):
            if a <= b:
                self.execute(
                    "INSERT INTO seq_gaps(device_id, first_seq, last_seq, opened_ts) VALUES(?,?,?,?)",
                    (device_id, a, b, opened),
                )
        log_row = self.query(
            "SELECT first_seq, last_seq, filled FROM seq_gap_log WHERE device_id=? AND first_seq<=? "
            "AND last_seq>=? ORDER BY first_seq DESC LIMIT 1",
            (device_id, seq, seq),
        )
        if log_row:
            lf, ll, filled = (int(x) for x in log_row[0])
            closed = now if filled + 1 >= ll - lf + 1 else None
            self.execute(
                "UPDATE seq_gap_log SET filled=filled+1, closed_ts=COALESCE(?, closed_ts) "
                "WHERE device_id=? AND first_seq=?",
                (closed, device_id, lf),
            )
        return True

    # ---- status, commands, counters --------------------------------------------------------------
    def set_status(self, device_id: str, site_id: str, status: str, now: float) -> None:
        self.execute(
            "INSERT INTO devices(device_id, site_id, status, status_ts) VALUES(?,?,?,?) "
            "ON CONFLICT(device_id) DO UPDATE SET status=excluded.status, status_ts=excluded.status_ts",
            (device_id, site_id, status, now),
        )

    def add_command(
        self, command_id: str, device_id: str, name: str, topic: str, payload: str, event_id: str | None,
        consumer: str, now: float,
    ) -> bool:  # fmt: skip
        """Record a command to send; False if it already exists (another consumer made it)."""
        cur = self.execute(
            "INSERT INTO commands(command_id, device_id, name, topic, payload, event_id, created_ts, created_by) "
            "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(command_id) DO NOTHING",
            (command_id, device_id, name, topic, payload, event_id, now, consumer),
        )
        return bool(cur.rowcount == 1)

    def commands_to_send(
        self, consumer: str, orphan_after_s: float, reply_timeout_s: float, max_attempts: int, now: float
    ) -> list[tuple[str, str, str]]:
        """(command_id, topic, payload) to (re)send: never acknowledged by the broker (this consumer's own,
        or any consumer's older than ``orphan_after_s``: that consumer probably died), or acknowledged but
        unanswered by the box for ``reply_timeout_s`` (the reply can be lost: a box keeps replies in
        memory only), at most ``max_attempts`` times."""
        rows = self.query(
            "SELECT command_id, topic, payload FROM commands WHERE reply_ts IS NULL AND attempts < ? AND ("
            "(puback_ts IS NULL AND (created_by=? OR created_ts<?)) OR "
            "(puback_ts IS NOT NULL AND sent_ts<?)) ORDER BY created_ts",
            (max_attempts, consumer, now - orphan_after_s, now - reply_timeout_s),
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def command_sent(self, command_id: str, now: float) -> None:
        self.execute("UPDATE commands SET sent_ts=?, attempts=attempts+1 WHERE command_id=?", (now, command_id))

    def command_acked(self, command_id: str, now: float) -> None:
        self.execute("UPDATE commands SET puback_ts=? WHERE command_id=?", (now, command_id))

    def command_reply(self, command_id: str, ok: bool, reply: str, now: float) -> None:
        self.execute(
            "UPDATE commands SET reply_ts=?, reply_ok=?, reply=? WHERE command_id=?",
            (now, 1 if ok else 0, reply, command_id),
        )

    def reject(self, consumer: str, topic: str, reason: str, payload: bytes, now: float) -> None:
        self.execute(
            "INSERT INTO rejects(received_ts, consumer, topic, reason, payload) VALUES(?,?,?,?,?)",
            (now, consumer, topic, reason[:1000], payload[:4096].decode("utf-8", "replace")),
        )

    def bump_stats(self, consumer: str, now: float, **counts: int) -> None:
        self.execute(
            "INSERT INTO consumer_stats(consumer) VALUES(?) ON CONFLICT(consumer) DO NOTHING", (consumer,)
        )
        sets = ", ".join(f"{k}={k}+?" for k in counts)
        self.execute(
            f"UPDATE consumer_stats SET {sets}, updated_ts=? WHERE consumer=?",
            (*counts.values(), now, consumer),
        )


def gap_report(store: Store) -> list[dict[str, Any]]:
    """Open gaps with what explains them: the box reported evicting rows from its outbox, the box is
    offline, or neither (still in flight, or lost)."""
    out: list[dict[str, Any]] = []
    now = time.time()
    for device_id, first, last, opened in store.query(
        "SELECT device_id, first_seq, last_seq, opened_ts FROM seq_gaps ORDER BY device_id, first_seq"
    ):
        status = store.query("SELECT status FROM devices WHERE device_id=?", (device_id,))
        health = store.query(
            "SELECT envelope FROM events WHERE device_id=? AND kind='device_health' ORDER BY seq DESC LIMIT 1",
            (device_id,),
        )
        dropped = 0
        if health:
            import json

            try:
                dropped = int(json.loads(health[0][0])["payload"]["outbox"]["dropped"] or 0)
            except (KeyError, TypeError, ValueError):
                dropped = 0
        why = (
            "the box evicted rows from its full outbox (device_health outbox.dropped)" if dropped
            else "the box is offline: the rest arrives when it reconnects" if status and status[0][0] != "online"
            else "in flight or lost"
        )  # fmt: skip
        out.append(
            {"device_id": device_id, "first_seq": int(first), "last_seq": int(last),
             "missing": int(last) - int(first) + 1, "open_for_s": round(now - float(opened), 1), "why": why}
        )  # fmt: skip
    return out
