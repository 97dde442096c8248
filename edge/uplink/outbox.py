"""The durable outbox: an SQLite queue (WAL, synchronous=FULL) that is the source of truth.

* ``put_many(events)`` makes a batch durable in one transaction before returning; ``put(event)``
  commits alarms at once and groups other rows into one commit at most ``group_commit_s`` later
  (the sender also commits whenever it looks for work, so grouping rarely waits). Only committed
  rows are ever handed to a sender: nothing leaves the box before it is durable.
* ``put`` assigns the per-device ``seq``; the counter lives in the same file and commits with the rows.
* A row is deleted (``ack``) only after the broker's PUBACK (or the JSONL sink's fsync, or the
  fallback link's acknowledgement). After a crash everything not deleted is sent again; consumers
  dedupe on ``event_id``.
* A byte cap evicts feature records first, then info events, oldest first; alarms and open tasks
  only when nothing else is left. Every eviction is counted by priority (persisted) for health.
* It also stores the builder's episode key -> incident_id map (``IncidentStore``).
* An optional ``shaper`` (``edge.uplink.shaping.FeatureShaper``) sees each event before it gets its
  ``seq``: it may trim it or hold it back (``put`` then returns None and no ``seq`` is spent).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config.uplink import UplinkConfig
from edge.errors import UplinkError
from edge.events.priority import Priority, priority_of
from edge.events.schema import Event
from edge.events.topics import Topics

log = logging.getLogger(__name__)

EVICT_LOG_S = 60.0
DISK_CHECK_S = 1.0  # how often free space is looked at
ROW_OVERHEAD_BYTES = 96  # per-row bookkeeping counted against the cap (ids, index entries, page slack)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_prio ON outbox (priority, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (key TEXT PRIMARY KEY, incident_id TEXT NOT NULL);
"""


class OutboxError(UplinkError):
    """The outbox file cannot be opened or written (path, permissions, disk)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    seq: int
    priority: Priority
    kind: str
    topic: str
    payload: bytes
    created: float


class Outbox:
    """Durable queue of outgoing messages. Thread-safe (one connection behind a lock)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 256 * 1024 * 1024,
        *,
        topic_prefix: str = "edge",
        group_commit_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        free_bytes: Callable[[], int] | None = None,
        reserve_bytes: int = 32 * 1024 * 1024,
        shaper: Callable[[Event], Event | None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._shaper = shaper
        self.max_bytes = int(max_bytes)
        self.topic_prefix = topic_prefix
        self.group_commit_s = float(group_commit_s)
        self._clock = clock
        self._wall = wall
        self._free_bytes = free_bytes if free_bytes is not None else self._disk_free
        self.reserve_bytes = int(reserve_bytes)
        self._limit = self.max_bytes
        self._limit_checked = float("-inf")
        self._last_evict_log = float("-inf")
        self._evicted_since_log = 0
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"cannot open outbox {self.path}: {exc}; check the directory exists, is writable and has free space"
            ) from exc
        self._in_txn = False
        self._pending = 0
        self._last_commit = self._clock()
        self._seq = max(
            self._meta("seq"), int(self._db.execute("SELECT COALESCE(MAX(seq),0) FROM outbox").fetchone()[0])
        )
        self._committed_seq = self._seq
        self._dropped = {p: self._meta(f"dropped_{p.name.lower()}") for p in Priority}
        self._dropped_dirty = False
        self._recount()
        self._committed_max_id = int(self._db.execute("SELECT COALESCE(MAX(id),0) FROM outbox").fetchone()[0])
        self._pending_max_id = self._committed_max_id
        self.closed = False

    @classmethod
    def from_config(cls, up: UplinkConfig, **kw: Any) -> Outbox:
        """The outbox of ``uplink`` config: path, cap, prefix, group commit and the feature shaper."""
        from edge.uplink.shaping import FeatureShaper

        return cls(
            up.outbox_path,
            up.outbox_max_bytes,
            topic_prefix=up.topic_prefix,
            group_commit_s=up.group_commit_s,
            shaper=FeatureShaper(up.features),
            **kw,
        )

    # ---- internals -------------------------------------------------------------------------
    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def _begin(self) -> None:
        if not self._in_txn:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    def _commit_locked(self) -> None:
        if not self._in_txn:
            return
        if self._seq != self._committed_seq:
            self._set_meta("seq", self._seq)
        if self._dropped_dirty:
            for p, n in self._dropped.items():
                self._set_meta(f"dropped_{p.name.lower()}", n)
            self._dropped_dirty = False
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise OutboxError(f"outbox commit failed ({exc}); is the disk full or read-only?") from exc
        self._in_txn = False
        self._pending = 0
        self._committed_seq = self._seq
        self._committed_max_id = self._pending_max_id
        self._last_commit = self._clock()
        for fn in self._listeners:
            fn()

    def _recount(self) -> None:
        """Row counts and bytes per priority, from the table (at open and after a rollback)."""
        self._count = {p: 0 for p in Priority}
        self._bytes = 0
        for prio, n, size in self._db.execute(
            "SELECT priority, COUNT(*), COALESCE(SUM(size),0) FROM outbox GROUP BY priority"
        ):
            self._count[Priority(int(prio))] = int(n)
            self._bytes += int(size)

    def _disk_free(self) -> int:
        try:
            return int(shutil.disk_usage(self.path.parent).free)
        except OSError:
            return self.max_bytes  # cannot tell: rely on the configured cap

    def _refresh_limit(self) -> None:
        """The cap in force: ``max_bytes``, lowered when the disk is filling up for other reasons so the
        outbox never writes the card full (a full disk wedges a WAL database)."""
        now = self._clock()
        if now - self._limit_checked < DISK_CHECK_S:
            return
        self._limit_checked = now
        room = self._bytes + self._free_bytes() - self.reserve_bytes
        limit = max(0, min(self.max_bytes, room))
        if limit < self.max_bytes and self._limit == self.max_bytes:
            log.warning(
                "disk almost full: outbox limited to %d bytes (configured %d); free space on %s",
                limit, self.max_bytes, self.path.parent,
            )  # fmt: skip
        self._limit = limit

    def _topic_for(self, event: Event) -> str:
        return Topics(self.topic_prefix, event.site_id, event.device_id).event(event.kind, event.camera_id)

    def _log_eviction(self, victim: Priority, n: int) -> None:
        """Evictions are counted always, logged at most once a minute (not once per event)."""
        self._evicted_since_log += n
        now = self._clock()
        if now - self._last_evict_log >= EVICT_LOG_S:
            log.warning(
                "outbox at its cap (%d bytes): evicted %d row(s) since last report, latest %s; dropped so far %s",
                self._limit, self._evicted_since_log, victim.name.lower(),
                {p.name.lower(): c for p, c in self._dropped.items()},
            )  # fmt: skip
            self._last_evict_log = now
            self._evicted_since_log = 0

    def _make_room(self, need: int, prio: Priority) -> bool:
        """Evict lower/equal-priority rows until ``need`` bytes fit. False if the new row must be dropped."""
        self._refresh_limit()
        over = self._bytes + need - self._limit
        if over <= 0:
            return True
        for victim in Priority:  # FEATURE, INFO, ALARM: lowest first
            if victim > prio:  # never evict a higher priority to admit a lower one
                break
            cur = self._db.execute("SELECT id, size FROM outbox WHERE priority=? ORDER BY id", (int(victim),))
            ids: list[int] = []
            freed = 0
            for row_id, size in cur:
                ids.append(int(row_id))
                freed += int(size)
                if freed >= over:
                    break
            if ids:
                self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])
                self._bytes -= freed
                self._count[victim] -= len(ids)
                self._dropped[victim] += len(ids)
                self._dropped_dirty = True
                self._log_eviction(victim, len(ids))
                over -= freed
                if over <= 0:
                    return True
        return False

    # ---- writing ----------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called (under the outbox lock; it must only set a flag) after each commit."""
        self._listeners.append(fn)

    def _put_locked(self, event: Event, topic: str | None) -> Event | None:
        if self._shaper is not None:
            shaped = self._shaper(event)
            if shaped is None:
                return None  # held back before it got a seq: consumers see no gap
            event = shaped
        prio = priority_of(event.kind, event.phase, event.severity)
        self._seq += 1
        ev = event.model_copy(update={"seq": self._seq})
        data = ev.to_json()
        tp = topic if topic is not None else self._topic_for(ev)
        size = len(data) + len(tp) + ROW_OVERHEAD_BYTES
        self._begin()
        if not self._make_room(size, prio):
            # Only higher priorities left and no room: the new row itself is the one dropped.
            self._dropped[prio] += 1
            self._dropped_dirty = True
            log.warning(
                "outbox full of higher-priority rows: dropped new %s event seq=%d",
                prio.name.lower(),
                self._seq,
            )
            return ev
        cur = self._db.execute(
            "INSERT INTO outbox(seq, priority, kind, topic, payload, size, created) VALUES(?,?,?,?,?,?,?)",
            (ev.seq, int(prio), ev.kind, tp, data, size, self._wall()),
        )
        self._pending_max_id = int(cur.lastrowid or self._pending_max_id)
        self._bytes += size
        self._count[prio] += 1
        self._pending += 1
        if prio == Priority.ALARM:
            self._commit_locked()
        return ev

    def put(self, event: Event, *, topic: str | None = None) -> Event | None:
        """Queue one event; returns it with its ``seq`` (None when the shaper held it back).

        Alarms are durable when this returns; other rows within ``group_commit_s`` (or at ``flush()``).
        """
        with self._lock:
            try:
                ev = self._put_locked(event, topic)
                if self._pending and self._clock() - self._last_commit >= self.group_commit_s:
                    self._commit_locked()
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise OutboxError(
                    f"outbox write failed ({exc}); check free space on {self.path.parent}"
                ) from exc
            return ev

    def put_many(self, events: Iterable[Event]) -> list[Event]:
        """Queue a batch in one transaction; every event is durable when this returns.
        Returns the stored events with their ``seq`` (without those the shaper held back)."""
        with self._lock:
            try:
                out = [ev for e in events if (ev := self._put_locked(e, None)) is not None]
                self._commit_locked()
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise OutboxError(
                    f"outbox write failed ({exc}); check free space on {self.path.parent}"
                ) from exc
            return out

    def _rollback_locked(self) -> None:
        if self._in_txn:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._in_txn = False
        self._seq = self._committed_seq
        self._pending_max_id = self._committed_max_id
        self._recount()

    def flush(self) -> None:
        """Commit everything pending now."""
        with self._lock:
            self._commit_locked()

    def commit_if_due(self) -> None:
        with self._lock:
            if self._in_txn and self._clock() - self._last_commit >= self.group_commit_s:
                self._commit_locked()

    # ---- reading / acknowledging --------------------------------------------------------------
    def peek(
        self, limit: int, *, exclude: Sequence[int] | set[int] = (), min_priority: Priority = Priority.FEATURE
    ) -> list[OutboxRow]:
        """Up to ``limit`` committed rows, highest priority first, oldest first within a priority."""
        with self._lock:
            skip = set(exclude)
            out: list[OutboxRow] = []
            # One indexed range scan per priority (a mixed-direction ORDER BY would sort the whole table).
            for prio in sorted((p for p in Priority if p >= min_priority), reverse=True):
                cur = self._db.execute(
                    "SELECT id, seq, priority, kind, topic, payload, created FROM outbox "
                    "WHERE priority = ? AND id <= ? ORDER BY id LIMIT ?",
                    (int(prio), self._committed_max_id, limit - len(out) + len(skip)),
                )
                for r in cur:
                    if int(r[0]) in skip:
                        continue
                    out.append(
                        OutboxRow(
                            int(r[0]), int(r[1]), Priority(int(r[2])), r[3], r[4], bytes(r[5]), float(r[6])
                        )
                    )
                    if len(out) >= limit:
                        return out
            return out

    def ack(self, row_ids: Iterable[int], *, commit: bool = False) -> int:
        """Delete delivered rows (the broker acknowledged them). Group-committed unless ``commit``."""
        ids = [(int(i),) for i in row_ids]
        if not ids:
            return 0
        with self._lock:
            self._begin()
            for (i,) in ids:
                row = self._db.execute("SELECT size, priority FROM outbox WHERE id=?", (i,)).fetchone()
                if row is not None:
                    self._bytes -= int(row[0])
                    self._count[Priority(int(row[1]))] -= 1
            self._db.executemany("DELETE FROM outbox WHERE id=?", ids)
            self._pending += 1
            if commit:
                self._commit_locked()
            return len(ids)

    # ---- incidents (the builder's IncidentStore) -------------------------------------------------
    def get_incident(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT incident_id FROM incidents WHERE key=?", (key,)).fetchone()
            return str(row[0]) if row else None

    def put_incident(self, key: str, incident_id: str) -> None:
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT INTO incidents(key, incident_id) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET incident_id=excluded.incident_id",
                (key, incident_id),
            )

    def drop_incident(self, key: str) -> None:
        with self._lock:
            self._begin()
            self._db.execute("DELETE FROM incidents WHERE key=?", (key,))

    # ---- status --------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._seq

    def pending(self) -> int:
        """Rows waiting (committed or not), without touching the disk."""
        return sum(self._count.values())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = {p.name.lower(): n for p, n in self._count.items()}
            oldest: float | None = None
            for p in Priority:  # the oldest row of each priority is the first by id (indexed)
                row = self._db.execute(
                    "SELECT created FROM outbox WHERE priority=? ORDER BY id LIMIT 1", (int(p),)
                ).fetchone()
                if row is not None:
                    oldest = float(row[0]) if oldest is None else min(oldest, float(row[0]))
            return {
                "pending": sum(counts.values()),
                "pending_by_priority": counts,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "limit_bytes": self._limit,
                "oldest_age_s": max(0.0, self._wall() - oldest) if oldest is not None else 0.0,
                "dropped": {p.name.lower(): n for p, n in self._dropped.items()},
                "dropped_total": sum(self._dropped.values()),
                "last_seq": self._seq,
            }

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self._commit_locked()
            finally:
                self._db.close()
                self.closed = True

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
