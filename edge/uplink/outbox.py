"""The durable outbox: an SQLite queue (WAL, synchronous=FULL) that is the source of truth.

* ``put_many(events)`` makes a batch durable in one transaction before returning; ``put(event)``
  commits alarms at once and groups other rows into one commit at most ``group_commit_s`` later
  (the sender also commits whenever it looks for work, so grouping rarely waits). Only committed
  rows are ever handed to a sender: nothing leaves the box before it is durable.
* ``put`` assigns the per-device ``seq``; the counter lives in the same file and commits with the rows.
* A row is deleted (``ack``) only after the broker's PUBACK (or the JSONL sink's fsync, or the
  fallback link's acknowledgement). After a crash everything not deleted is sent again; consumers
  dedupe on ``event_id``.
* A byte cap makes room by evicting only what the new row needs: feature records first, then info
  events, oldest first; an alarm only for another alarm. What cannot be made room for is itself
  dropped. Every drop is counted by priority (persisted) for health.
* The cap in force is also lowered when the disk fills up for other reasons, keeping a free-space
  reserve that scales with the filesystem (5 % of it, between 1 MiB and ``reserve_bytes``); while
  the disk is tight the outbox stops growing but keeps taking rows in exchange for older, lesser ones.
* A write the disk refuses (ENOSPC, SQLITE_FULL, I/O error) is rolled back cleanly: the committed
  rows stay, the rows of the failed transaction are held in memory (bounded by ``hold_max_bytes``,
  least important first out, counted) with everything accepted after them, and written again every
  ``RETRY_S`` until the disk takes them: the outbox recovers by itself when space returns. Held rows
  are not sent before they are durable (their ``seq`` must never be handed out twice after a crash).
* It also stores the builder's episode key -> incident_id map (``IncidentStore``).
* An optional ``shaper`` (``edge.uplink.shaping.FeatureShaper``) sees each event before it gets its
  ``seq``: it may trim it or hold it back (``put`` then returns None and no ``seq`` is spent).
* With a ``signer`` (``edge.events.signing.DeviceSigner``) every event is signed in ``put`` right
  after its ``seq`` is assigned: the row holds the final, signed bytes.
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
from typing import Any, Protocol

from edge.config.uplink import UplinkConfig
from edge.errors import UplinkError
from edge.events.priority import Priority, priority_of
from edge.events.schema import Event
from edge.events.topics import HEALTH_KIND, Topics
from edge.uplink.shaping import FeatureShaper

log = logging.getLogger(__name__)

EVICT_LOG_S = 60.0
DISK_CHECK_S = 1.0  # how often free space is looked at (also after growing by a quarter of the reserve)
RETRY_S = 1.0  # how often held rows are written again while the disk refuses them
RETRY_CHUNK = 256  # held rows written per transaction when the disk takes writes again
ROW_OVERHEAD_BYTES = 96  # per-row bookkeeping counted against the cap (ids, index entries, page slack)
RESERVE_FRACTION = 0.05  # free-space reserve: this share of the filesystem...
RESERVE_MIN_BYTES = 1024 * 1024  # ...at least this (or a quarter of a tiny filesystem)...
RESERVE_MAX_BYTES = 32 * 1024 * 1024  # ...at most this (the default ``reserve_bytes``)
HEALTH_OVERDRAFT_BYTES = 64 * 1024  # a health record gets in over the cap by this much (it reports the drops)
HOLD_MAX_BYTES = 8 * 1024 * 1024  # rows held in memory while the disk refuses writes
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


class Signer(Protocol):
    """Signs a final event (``edge.events.signing.DeviceSigner``)."""

    def sign_event(self, event: Event) -> Event: ...


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


@dataclass(frozen=True, slots=True)
class _NewRow:
    """A row on its way in: inserted in the open transaction, or held in memory."""

    seq: int
    priority: Priority
    kind: str
    topic: str
    payload: bytes
    size: int
    created: float


def reserve_for(total_bytes: int, cap_bytes: int = RESERVE_MAX_BYTES) -> int:
    """Free space the outbox leaves on a filesystem of ``total_bytes``: 5 % of it, at least 1 MiB
    (a quarter of a filesystem smaller than 4 MiB), at most ``cap_bytes``."""
    floor = min(RESERVE_MIN_BYTES, total_bytes // 4)
    return int(max(0, min(cap_bytes, max(floor, int(total_bytes * RESERVE_FRACTION)))))


def _disk_usage(path: Path) -> Callable[[], tuple[int, int]]:
    def usage() -> tuple[int, int]:
        du = shutil.disk_usage(path)
        return int(du.total), int(du.free)

    return usage


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
        disk_usage: Callable[[], tuple[int, int]] | None = None,
        reserve_bytes: int = RESERVE_MAX_BYTES,
        hold_max_bytes: int = HOLD_MAX_BYTES,
        signer: Signer | None = None,
        shaper: Callable[[Event], Event | None] | None = None,
    ) -> None:
        """``disk_usage()`` returns (total, free) bytes of the outbox's filesystem (default: measured);
        ``reserve_bytes`` caps the scaled free-space reserve (see ``reserve_for``)."""
        self.path = Path(path)
        self.signer = signer
        self._shaper = shaper
        self.max_bytes = int(max_bytes)
        self.topic_prefix = topic_prefix
        self.group_commit_s = float(group_commit_s)
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(
                f"cannot open outbox {self.path}: {exc}; check the directory exists, is writable and has free space"
            ) from exc
        self._disk = disk_usage if disk_usage is not None else _disk_usage(self.path.parent)
        self.reserve_cap_bytes = int(reserve_bytes)
        self.reserve_bytes = self._reserve()
        self.hold_max_bytes = int(hold_max_bytes)
        self._limit = self.max_bytes
        self._limit_checked = float("-inf")
        self._bytes_at_check = 0
        self._tight = False
        self._last_evict_log = float("-inf")
        self._evicted_since_log = 0
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # The WAL grows by a page or more per commit until a checkpoint: on a small filesystem the
            # default (1000 pages, ~4 MiB) would eat the reserve, so checkpoint within a quarter of it.
            page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            wal_pages = max(32, min(1000, self.reserve_bytes // 4 // page))
            self._db.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
            self._db.execute(f"PRAGMA journal_size_limit={wal_pages * page}")
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
        self._meta_seq = self._seq
        self._dropped = {p: self._meta(f"dropped_{p.name.lower()}") for p in Priority}
        self._dropped_dirty = False
        # What the open transaction did, to undo it in memory if its commit fails.
        self._txn_rows: list[_NewRow] = []
        self._txn_evicted = {p: 0 for p in Priority}
        self._txn_incidents: list[tuple[str, str | None]] = []
        self._txn_acks: list[int] = []
        # Rows (and incident updates) the disk refused, in acceptance order, written again every RETRY_S.
        self._held: list[_NewRow] = []
        self._held_bytes = 0
        self._held_incidents: dict[str, str | None] = {}
        # Delivered rows whose delete the disk refused: not sent again, deleted at the next retry.
        self._acked: set[int] = set()
        self._retry_at = float("-inf")
        self._write_failures = 0
        self._last_write_error = ""
        self._recount()
        self._committed_max_id = int(self._db.execute("SELECT COALESCE(MAX(id),0) FROM outbox").fetchone()[0])
        self._pending_max_id = self._committed_max_id
        self.closed = False

    @classmethod
    def from_config(cls, up: UplinkConfig, **kw: Any) -> Outbox:
        """The outbox of ``uplink`` config: path, cap, prefix, group commit and the feature shaper."""
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
        """Commit the open transaction. Raises sqlite3.Error (the caller calls ``_failed``)."""
        if not self._in_txn:
            return
        if self._seq != self._meta_seq:
            self._set_meta("seq", self._seq)
        if self._dropped_dirty:
            for p, n in self._dropped.items():
                self._set_meta(f"dropped_{p.name.lower()}", n)
        self._db.execute("COMMIT")
        self._in_txn = False
        self._dropped_dirty = False
        self._meta_seq = self._seq
        self._txn_rows = []
        self._txn_evicted = {p: 0 for p in Priority}
        self._txn_incidents = []
        self._txn_acks = []
        self._pending = 0
        self._committed_max_id = self._pending_max_id
        self._last_commit = self._clock()
        for fn in self._listeners:
            fn()

    def _failed(self, exc: sqlite3.Error) -> None:
        """A write or commit failed (disk full, I/O error): roll back cleanly and hold what the
        transaction was adding. The committed rows are untouched; deletes (acks, evictions) of the
        failed transaction come back (acked rows are simply sent again)."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (what it does on SQLITE_FULL at COMMIT)
        self._in_txn = False
        for p, n in self._txn_evicted.items():
            self._dropped[p] -= n  # those evictions were undone with the transaction
        rows, self._txn_rows = self._txn_rows, []
        self._txn_evicted = {p: 0 for p in Priority}
        incidents = dict(self._txn_incidents)
        incidents.update(self._held_incidents)
        self._held_incidents = incidents
        self._txn_incidents = []
        self._acked.update(self._txn_acks)
        self._txn_acks = []
        self._pending = 0
        self._pending_max_id = self._committed_max_id
        self._recount()
        self._held[0:0] = rows
        self._held_bytes += sum(r.size for r in rows)
        self._write_failures += 1
        msg = str(exc)
        if not self._last_write_error:
            log.error(
                "outbox %s cannot write (%s): %d row(s) held in memory, retried every %.0f s; "
                "free space on %s",
                self.path, msg, len(self._held), RETRY_S, self.path.parent,
            )  # fmt: skip
        self._last_write_error = msg
        self._retry_at = self._clock() + RETRY_S
        self._limit_checked = float("-inf")
        self._trim_held()

    def _recount(self) -> None:
        """Row counts and bytes per priority in the table (at open and after a rollback)."""
        self._count = {p: 0 for p in Priority}
        self._bytes = 0
        for prio, n, size in self._db.execute(
            "SELECT priority, COUNT(*), COALESCE(SUM(size),0) FROM outbox GROUP BY priority"
        ):
            self._count[Priority(int(prio))] = int(n)
            self._bytes += int(size)

    def _reserve(self) -> int:
        try:
            total, _free = self._disk()
        except OSError:
            return self.reserve_cap_bytes
        return reserve_for(total, self.reserve_cap_bytes)

    def _refresh_limit(self) -> None:
        """The cap in force: ``max_bytes``, lowered when the disk is filling up for other reasons so the
        outbox never writes into the reserve; never below a quarter of the reserve (a small outbox on a
        tight disk still takes alarms and health records)."""
        now = self._clock()
        grown = self._bytes - self._bytes_at_check
        if now - self._limit_checked < DISK_CHECK_S and grown < self.reserve_bytes // 4:
            return
        self._limit_checked = now
        self._bytes_at_check = self._bytes
        try:
            _total, free = self._disk()
        except OSError:
            return  # cannot tell: keep the limit in force
        room = self._bytes + free - self.reserve_bytes
        limit = min(self.max_bytes, max(room, self.reserve_bytes // 4))
        tight = limit < self.max_bytes
        if tight and not self._tight:
            log.warning(
                "disk almost full: outbox limited to %d bytes (configured %d, %d free, reserve %d) on %s",
                limit, self.max_bytes, free, self.reserve_bytes, self.path.parent,
            )  # fmt: skip
        elif self._tight and not tight:
            log.info("disk has room again: outbox limit back to %d bytes", self.max_bytes)
        self._tight = tight
        self._limit = limit

    def _topic_for(self, event: Event) -> str:
        return Topics(self.topic_prefix, event.site_id, event.device_id).event(event.kind, event.camera_id)

    def _count_drop(self, prio: Priority, n: int = 1) -> None:
        self._dropped[prio] += n
        self._dropped_dirty = True
        self._log_eviction(prio, n)

    def _log_eviction(self, victim: Priority, n: int) -> None:
        """Evictions are counted always, logged at most once a minute (not once per event)."""
        self._evicted_since_log += n
        now = self._clock()
        if now - self._last_evict_log >= EVICT_LOG_S:
            log.warning(
                "outbox at its cap (%d bytes): dropped %d row(s) since last report, latest %s; dropped so far %s",
                self._limit, self._evicted_since_log, victim.name.lower(),
                {p.name.lower(): c for p, c in self._dropped.items()},
            )  # fmt: skip
            self._last_evict_log = now
            self._evicted_since_log = 0

    def _make_room(self, size: int, prio: Priority, kind: str) -> bool:
        """Evict just enough lower- or equal-priority rows, least important and oldest first, for a new
        row of ``size`` bytes. Decides before deleting: False (nothing deleted) if the row cannot fit.

        An outbox already over a lowered limit (the disk filled up) does not shrink: a new row gets in
        only in exchange for as many bytes of lesser rows (no net growth)."""
        self._refresh_limit()
        over = self._bytes + size - self._limit
        if over <= 0:
            return True
        need = min(over, size)
        victims: list[tuple[Priority, int, int]] = []
        freed = 0
        for victim in Priority:  # FEATURE, INFO, ALARM: least important first
            if victim > prio or freed >= need:  # never evict a higher priority to admit a lower one
                break
            for row_id, row_size in self._db.execute(
                "SELECT id, size FROM outbox WHERE priority=? ORDER BY id", (int(victim),)
            ):
                victims.append((victim, int(row_id), int(row_size)))
                freed += int(row_size)
                if freed >= need:
                    break
        if freed < need and not (kind == HEALTH_KIND and freed + HEALTH_OVERDRAFT_BYTES >= need):
            return False  # not enough lesser rows: keep them all, the new row is the one dropped
        for victim, row_id, row_size in victims:
            self._db.execute("DELETE FROM outbox WHERE id=?", (row_id,))
            self._bytes -= row_size
            self._count[victim] -= 1
            self._txn_evicted[victim] += 1
            self._count_drop(victim)
        return True

    def _insert_locked(self, row: _NewRow) -> None:
        """Insert one row in the open transaction (making room first; a row that cannot fit is counted
        as dropped). Raises sqlite3.Error."""
        self._begin()
        if not self._make_room(row.size, row.priority, row.kind):
            self._count_drop(row.priority)  # only higher-priority rows left: the new row is the one dropped
            return
        cur = self._db.execute(
            "INSERT INTO outbox(seq, priority, kind, topic, payload, size, created) VALUES(?,?,?,?,?,?,?)",
            (row.seq, int(row.priority), row.kind, row.topic, row.payload, row.size, row.created),
        )
        self._txn_rows.append(row)
        self._pending_max_id = int(cur.lastrowid or self._pending_max_id)
        self._bytes += row.size
        self._count[row.priority] += 1
        self._pending += 1

    # ---- rows held while the disk refuses writes --------------------------------------------------
    def _hold(self, row: _NewRow) -> None:
        """Accept a row while earlier ones wait for the disk (order is kept). Over ``hold_max_bytes``,
        lesser or equal held rows make room, least important and oldest first, else the row is dropped."""
        need = self._held_bytes + row.size - self.hold_max_bytes
        if need > 0 and not self._evict_held(need, row.priority):
            self._count_drop(row.priority)
            return
        self._held.append(row)
        self._held_bytes += row.size

    def _evict_held(self, need: int, prio: Priority) -> bool:
        order = sorted(
            (i for i, r in enumerate(self._held) if r.priority <= prio),
            key=lambda i: (self._held[i].priority, i),
        )
        chosen: list[int] = []
        freed = 0
        for i in order:
            if freed >= need:
                break
            chosen.append(i)
            freed += self._held[i].size
        if freed < need:
            return False
        for i in sorted(chosen, reverse=True):
            r = self._held.pop(i)
            self._held_bytes -= r.size
            self._count_drop(r.priority)
        return True

    def _trim_held(self) -> None:
        """After a failed transaction joined the held rows: back under ``hold_max_bytes``."""
        over = self._held_bytes - self.hold_max_bytes
        if over > 0:
            self._evict_held(over, Priority.ALARM)

    def _retry_held(self, *, force: bool = False) -> bool:
        """Write the held rows again (due every RETRY_S), in chunks, oldest first. False if the disk
        still refuses them (``_failed`` has then put everything back in order)."""
        if not (self._held or self._held_incidents or self._acked) or (not force and self._clock() < self._retry_at):
            return not self._held
        self._retry_at = self._clock() + RETRY_S
        self._limit_checked = float("-inf")  # the disk may have changed: look again
        written = 0
        chunk: list[_NewRow] = []
        done = 0
        try:
            self._commit_locked()  # whatever was open (acks) goes first, on its own
            if self._acked:
                self._delete_acked(sorted(self._acked))
                self._acked.clear()
            if self._held_incidents:
                self._begin()
                for key, inc in list(self._held_incidents.items()):
                    self._incident_op(key, inc)
                    del self._held_incidents[key]
            while self._held:
                chunk = self._held[:RETRY_CHUNK]
                del self._held[:RETRY_CHUNK]
                self._held_bytes -= sum(r.size for r in chunk)
                done = 0
                for row in chunk:
                    self._insert_locked(row)
                    done += 1
                self._commit_locked()
                written += len(chunk)
                chunk = []
            self._commit_locked()
        except sqlite3.Error as exc:
            rest = chunk[done:]  # never reached the transaction: back in front of the other held rows
            self._held[0:0] = rest
            self._held_bytes += sum(r.size for r in rest)
            self._failed(exc)
            return False
        if written or self._write_failures:
            log.info(
                "outbox %s writes again: %d held row(s) made durable after %d failed write(s)",
                self.path, written, self._write_failures,
            )  # fmt: skip
        self._last_write_error = ""
        return True

    # ---- writing ----------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called (under the outbox lock; it must only set a flag) after each commit."""
        self._listeners.append(fn)

    def _new_row(self, event: Event, topic: str | None) -> tuple[Event, _NewRow] | None:
        """The event with its ``seq`` (signed) and its row; None when the shaper holds it back."""
        if self._shaper is not None:
            shaped = self._shaper(event)
            if shaped is None:
                return None  # held back before it got a seq: consumers see no gap
            event = shaped
        prio = priority_of(event.kind, event.phase, event.severity)
        ev = event.model_copy(update={"seq": self._seq + 1})
        if self.signer is not None:
            ev = self.signer.sign_event(ev)  # the event is final here: seq is part of what is signed
        data = ev.to_json()  # strict JSON; a NaN raises EventValidationError before a seq is used
        self._seq += 1  # only once the event exists: a refused event leaves no gap
        tp = topic if topic is not None else self._topic_for(ev)
        size = len(data) + len(tp) + ROW_OVERHEAD_BYTES
        return ev, _NewRow(ev.seq, prio, ev.kind, tp, data, size, self._wall())

    def _accept(self, row: _NewRow) -> None:
        """Into the open transaction, or behind the held rows while the disk refuses writes."""
        if self._held:
            self._hold(row)
        else:
            self._insert_locked(row)

    def put(self, event: Event, *, topic: str | None = None) -> Event | None:
        """Queue one event; returns it with its ``seq`` (None when the shaper held it back).

        Alarms are durable when this returns; other rows within ``group_commit_s`` (or at ``flush()``).
        While the disk refuses writes, rows are held in memory and written as soon as it takes them
        (``stats()["held"]``). Never raises for a full disk."""
        with self._lock:
            made = self._new_row(event, topic)
            if made is None:
                return None
            ev, row = made
            accepted = False
            try:
                self._retry_held()
                self._accept(row)
                accepted = True
                if self._pending and (
                    row.priority == Priority.ALARM or self._clock() - self._last_commit >= self.group_commit_s
                ):
                    self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)
                if not accepted:
                    self._hold(row)
            return ev

    def put_many(self, events: Iterable[Event]) -> list[Event]:
        """Queue a batch in one transaction; every event is durable when this returns (or held in memory
        while the disk refuses writes, see ``put``). Returns the stored events with their ``seq``
        (without those the shaper held back)."""
        with self._lock:
            out: list[Event] = []
            rows: list[_NewRow] = []
            for e in events:
                made = self._new_row(e, None)
                if made is not None:
                    out.append(made[0])
                    rows.append(made[1])
            accepted = 0
            try:
                self._retry_held()
                for row in rows:
                    self._accept(row)
                    accepted += 1
                self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)
                for row in rows[accepted:]:  # not yet in the transaction when the error struck
                    self._hold(row)
            return out

    def flush(self) -> None:
        """Commit everything pending now (and try the held rows again)."""
        with self._lock:
            try:
                self._retry_held(force=True)
                self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)

    def commit_if_due(self) -> None:
        """The sender calls this whenever it looks for work: group commits, and held rows when due."""
        with self._lock:
            try:
                self._retry_held()
                if self._in_txn and self._clock() - self._last_commit >= self.group_commit_s:
                    self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)

    # ---- reading / acknowledging --------------------------------------------------------------
    def peek(
        self, limit: int, *, exclude: Sequence[int] | set[int] = (), min_priority: Priority = Priority.FEATURE
    ) -> list[OutboxRow]:
        """Up to ``limit`` committed rows, highest priority first, oldest first within a priority."""
        with self._lock:
            skip = set(exclude) | self._acked
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

    def _delete_acked(self, ids: list[int]) -> None:
        self._begin()
        for i in ids:
            row = self._db.execute("SELECT size, priority FROM outbox WHERE id=?", (i,)).fetchone()
            if row is not None:
                self._bytes -= int(row[0])
                self._count[Priority(int(row[1]))] -= 1
        self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])
        self._txn_acks.extend(ids)
        self._pending += 1

    def ack(self, row_ids: Iterable[int], *, commit: bool = False) -> int:
        """Delete delivered rows (the broker acknowledged them). Group-committed unless ``commit``.
        If the disk refuses the delete, the rows are not sent again and the delete is retried with the
        held rows; a crash before then sends them once more (at-least-once)."""
        ids = [int(i) for i in row_ids]
        if not ids:
            return 0
        with self._lock:
            if self._held or self._acked:  # the disk is refusing writes: do not try it for every PUBACK
                self._acked.update(ids)
                return len(ids)
            try:
                self._delete_acked(ids)
                if commit:
                    self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)
            return len(ids)

    # ---- incidents (the builder's IncidentStore) -------------------------------------------------
    def _incident_op(self, key: str, incident_id: str | None) -> None:
        self._begin()
        if incident_id is None:
            self._db.execute("DELETE FROM incidents WHERE key=?", (key,))
        else:
            self._db.execute(
                "INSERT INTO incidents(key, incident_id) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET incident_id=excluded.incident_id",
                (key, incident_id),
            )
        self._txn_incidents.append((key, incident_id))

    def _set_incident(self, key: str, incident_id: str | None) -> None:
        with self._lock:
            if self._held:
                self._held_incidents[key] = incident_id
                return
            try:
                self._incident_op(key, incident_id)
            except sqlite3.Error as exc:
                self._failed(exc)
                self._held_incidents[key] = incident_id

    def get_incident(self, key: str) -> str | None:
        with self._lock:
            if key in self._held_incidents:
                return self._held_incidents[key]
            row = self._db.execute("SELECT incident_id FROM incidents WHERE key=?", (key,)).fetchone()
            return str(row[0]) if row else None

    def put_incident(self, key: str, incident_id: str) -> None:
        self._set_incident(key, incident_id)

    def drop_incident(self, key: str) -> None:
        self._set_incident(key, None)

    # ---- status --------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._seq

    def pending(self) -> int:
        """Rows waiting (committed, in the open transaction or held in memory), without touching the disk."""
        return sum(self._count.values()) + len(self._held)

    def dropped(self) -> dict[str, int]:
        """Rows dropped so far by priority (persisted; what health reports)."""
        return {p.name.lower(): n for p, n in self._dropped.items()}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = {p.name.lower(): n for p, n in self._count.items()}
            for r in self._held:
                counts[r.priority.name.lower()] += 1
            oldest: float | None = None
            for p in Priority:  # the oldest row of each priority is the first by id (indexed)
                row = self._db.execute(
                    "SELECT created FROM outbox WHERE priority=? ORDER BY id LIMIT 1", (int(p),)
                ).fetchone()
                if row is not None:
                    oldest = float(row[0]) if oldest is None else min(oldest, float(row[0]))
            if self._held:
                first = min(r.created for r in self._held)
                oldest = first if oldest is None else min(oldest, first)
            return {
                "pending": sum(counts.values()),
                "pending_by_priority": counts,
                "bytes": self._bytes + self._held_bytes,
                "max_bytes": self.max_bytes,
                "limit_bytes": self._limit,
                "reserve_bytes": self.reserve_bytes,
                "oldest_age_s": max(0.0, self._wall() - oldest) if oldest is not None else 0.0,
                "dropped": self.dropped(),
                "dropped_total": sum(self._dropped.values()),
                "held": len(self._held),
                "held_bytes": self._held_bytes,
                "write_failures": self._write_failures,
                "write_error": self._last_write_error,
                "last_seq": self._seq,
            }

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self._retry_held(force=True)
                self._commit_locked()
            except sqlite3.Error as exc:
                self._failed(exc)
            finally:
                if self._held:
                    log.error(
                        "outbox %s closed with %d row(s) the disk never took (seq %d..%d): they are lost; "
                        "free space on %s",
                        self.path, len(self._held), self._held[0].seq, self._held[-1].seq, self.path.parent,
                    )  # fmt: skip
                self._db.close()
                self.closed = True

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
