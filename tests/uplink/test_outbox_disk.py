"""The outbox on a tight or full disk: reserve scaling, eviction order (only what is needed, least
important and oldest first, never an alarm for a lesser row), and a failed commit that rolls back
cleanly, holds its rows and writes them once the disk takes writes again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.events.schema import Event
from edge.uplink import outbox as outbox_mod
from edge.uplink.outbox import RETRY_S, Outbox, reserve_for
from tests.uplink.test_outbox import FakeClock, committed_rows, ev

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.mark.parametrize(
    ("total", "reserve"),
    [
        (16 * GiB, 32 * MiB),  # an SD card: capped at 32 MiB
        (256 * MiB, int(256 * MiB * 0.05)),  # 5 % of a mid-sized partition
        (8 * MiB, 1 * MiB),  # a small filesystem: 1 MiB, not the whole of it
        (2 * MiB, 512 * 1024),  # a tiny one: a quarter
        (0, 0),
    ],
)
def test_reserve_scales_with_the_filesystem(total: int, reserve: int) -> None:
    assert reserve_for(total) == reserve


def test_small_filesystem_still_takes_every_event(tmp_path: Path) -> None:
    """8 MiB filesystem, 6 MiB free: a fixed 32 MiB reserve made the limit 0 and dropped everything."""
    ob = Outbox(tmp_path / "o.sqlite", disk_usage=lambda: (8 * MiB, 6 * MiB))
    assert ob.reserve_bytes == 1 * MiB
    ob.put_many([ev(i, severity="major") for i in range(20)] + [ev(i) for i in range(20, 60)])
    st = ob.stats()
    assert st["dropped_total"] == 0 and st["pending"] == 60
    assert st["limit_bytes"] == 5 * MiB  # free minus the reserve (plus what it holds)
    ob.close()


def test_tight_disk_keeps_a_floor_for_a_small_outbox(tmp_path: Path) -> None:
    """20 MiB free on a large card (under its 32 MiB reserve): an empty outbox still takes rows."""
    ob = Outbox(tmp_path / "o.sqlite", disk_usage=lambda: (64 * GiB, 20 * MiB))
    ob.put_many([ev(i) for i in range(41)])
    ob.put_many([ev(99, severity="major")])
    st = ob.stats()
    assert st["dropped_total"] == 0 and st["pending"] == 42
    assert st["limit_bytes"] == ob.reserve_bytes // 4
    ob.close()


# ---- eviction order -------------------------------------------------------------------------------
ROW = {"feature": ("info", "features"), "info": ("info", "uplink_test"), "alarm": ("major", "uplink_test"),
       "health": ("info", "device_health")}  # fmt: skip


def row(n: int, what: str, pad: int = 250) -> Event:
    """``what`` is a ROW key; ``small feature`` is a feature record without padding."""
    small = what.startswith("small ")
    sev, kind = ROW[what.removeprefix("small ")]
    return ev(n, severity=sev, kind=kind, pad=0 if small else pad)


def filled(tmp_path: Path, layout: list[str]) -> tuple[Outbox, int]:
    """An outbox exactly at its cap holding ``layout`` (seq 1..n in that order)."""
    probe = Outbox(tmp_path / "probe.sqlite")
    sizes = [probe.stats()["bytes"]]
    for i, what in enumerate(layout):
        probe.put_many([row(i + 1, what)])
        sizes.append(probe.stats()["bytes"])
    probe.close()
    cap = sizes[-1] + 16  # seq and n of the new row take a digit or two more than the first rows'
    return Outbox(tmp_path / "o.sqlite", max_bytes=cap, disk_usage=lambda: (64 * GiB, 32 * GiB)), cap


EVICTION = [
    # name, rows already queued (seq 1..), the new row, seqs evicted, is the new row kept
    ("info evicts the oldest feature only", ["info", "feature", "feature", "alarm"], "info", [2], True),
    ("alarm evicts the oldest info when no feature is left", ["alarm", "info", "info"], "alarm", [2], True),
    ("info evicts the oldest info", ["alarm", "info", "info", "alarm"], "info", [2], True),
    ("feature cannot push out info or alarms: dropped itself", ["info", "alarm"], "feature", [], False),
    ("a small feature is not sacrificed for an info row that cannot fit anyway",
     ["small feature", "alarm", "alarm"], "info", [], False),
    ("info never evicts an alarm: nothing deleted, new row dropped", ["alarm"] * 5, "info", [], False),
    ("only alarms left: the oldest alarm makes room for an alarm", ["alarm"] * 4, "alarm", [1], True),
    ("health gets in over the cap rather than be lost", ["alarm"] * 4, "health", [], True),
    ("health takes a feature's place first", ["alarm", "feature", "alarm"], "health", [2], True),
]


@pytest.mark.parametrize(("name", "layout", "new", "evicted", "kept"), EVICTION, ids=[e[0] for e in EVICTION])
def test_eviction_removes_only_what_it_must(
    tmp_path: Path, name: str, layout: list[str], new: str, evicted: list[int], kept: bool
) -> None:
    ob, cap = filled(tmp_path, layout)
    ob.put_many([row(i + 1, w) for i, w in enumerate(layout)])
    assert ob.stats()["dropped_total"] == 0
    ob.put_many([row(100, new)])
    left = {r.seq for r in ob.peek(100)}
    n = len(layout)
    assert set(range(1, n + 1)) - left == set(evicted), name
    assert (n + 1 in left) is kept, name
    st = ob.stats()
    assert st["dropped_total"] == len(evicted) + (0 if kept else 1)
    if new != "health":
        assert st["bytes"] <= cap
    ob.close()


def test_one_new_row_on_a_tight_disk_evicts_one_row_not_all(tmp_path: Path) -> None:
    """The issue's case: 41 queued rows and a limit far below them; one new event must not empty it."""
    clock = FakeClock()
    free = {"b": 32 * GiB}
    ob = Outbox(tmp_path / "o.sqlite", clock=clock, disk_usage=lambda: (64 * GiB, free["b"]), reserve_bytes=64 * 1024)
    ob.put_many([row(i + 1, "info") for i in range(41)])
    ob.put_many([row(42, "alarm")])
    free["b"] = 0
    clock.t += 2
    ob.put_many([row(43, "info", pad=240)])
    left = {r.seq for r in ob.peek(100)}
    assert left == set(range(2, 44)), sorted(set(range(1, 44)) - left)
    assert ob.stats()["dropped"] == {"feature": 0, "info": 1, "alarm": 0}
    ob.close()


# ---- a failed commit ------------------------------------------------------------------------------
class FaultyConnection(sqlite3.Connection):
    """The SQLite connection with an injected SQLITE_FULL at COMMIT: SQLite rolls the transaction
    back by itself and reports 'database or disk is full', which is what a full card does."""

    fail_commit = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if type(self).fail_commit and sql.strip().upper() == "COMMIT":
            super().execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> type[FaultyConnection]:
    real = sqlite3.connect
    FaultyConnection.fail_commit = False
    monkeypatch.setattr(outbox_mod.sqlite3, "connect", lambda *a, **kw: real(*a, factory=FaultyConnection, **kw))
    return FaultyConnection


def test_failed_commit_rolls_back_holds_the_rows_and_recovers(tmp_path: Path, faulty) -> None:
    clock = FakeClock()
    p = tmp_path / "o.sqlite"
    ob = Outbox(p, clock=clock, group_commit_s=0)
    ob.put_many([ev(i) for i in range(1, 4)])  # seq 1..3 durable
    faulty.fail_commit = True
    out = [ob.put(ev(4, severity="major")), ob.put(ev(5))]  # an alarm and an info row while the disk is full
    assert [e.seq for e in out] == [4, 5]
    st = ob.stats()
    assert st["held"] == 2 and st["write_failures"] >= 1 and "disk is full" in st["write_error"]
    assert st["pending"] == 5 and st["dropped_total"] == 0
    assert committed_rows(p) == 3 and [r.seq for r in ob.peek(10)] == [1, 2, 3]  # the rows it had
    ob.ack([ob.peek(1)[0].id], commit=True)  # delivered, but the disk refuses the delete...
    assert committed_rows(p) == 3 and [r.seq for r in ob.peek(10)] == [2, 3]  # ...yet it is not sent again
    faulty.fail_commit = False
    ob.commit_if_due()  # not yet due: held rows wait for the retry
    assert ob.stats()["held"] == 2
    clock.t += RETRY_S
    ob.commit_if_due()
    st = ob.stats()
    assert st["held"] == 0 and st["write_error"] == ""
    assert [r.seq for r in ob.peek(10)] == [4, 2, 3, 5]  # the alarm first, then info in order; 1 deleted
    ob.put(ev(6))  # the outbox works normally again: no 'cannot commit - no transaction is active'
    ob.flush()
    assert committed_rows(p) == 5
    ob.close()
    assert Outbox(p).last_seq == 6


def test_failed_commit_undoes_its_evictions(tmp_path: Path, faulty) -> None:
    ob, _cap = filled(tmp_path, ["feature", "info"])
    ob.put_many([row(1, "feature"), row(2, "info")])
    faulty.fail_commit = True
    ob.put(row(3, "alarm"))  # evicts the feature inside a transaction that then fails
    st = ob.stats()
    assert st["dropped_total"] == 0 and st["held"] == 1
    assert sorted(r.seq for r in ob.peek(10)) == [1, 2]  # the feature is back
    ob.close()


def test_rows_held_in_memory_are_bounded_least_important_first(tmp_path: Path, faulty) -> None:
    clock = FakeClock()
    size = max(len(row(i, w).to_json()) + 40 + 96 for i in (1, 14) for w in ROW)
    ob = Outbox(tmp_path / "o.sqlite", clock=clock, hold_max_bytes=8 * size, group_commit_s=0)
    faulty.fail_commit = True
    ob.put(row(1, "alarm"))
    for i in range(2, 8):
        ob.put(row(i, "feature"))
    for i in range(8, 14):
        ob.put(row(i, "info"))
    ob.put(row(14, "alarm"))
    st = ob.stats()
    assert st["held_bytes"] <= 8 * size
    assert st["dropped"] == {"feature": 6, "info": 0, "alarm": 0}  # the features went, nothing else
    faulty.fail_commit = False
    clock.t += RETRY_S
    ob.flush()
    seqs = [r.seq for r in ob.peek(100)]
    assert seqs == [1, 14, *range(8, 14)]
    ob.close()


def test_sqlite_full_on_insert_is_held_too(tmp_path: Path) -> None:
    """A real SQLITE_FULL from SQLite itself (max_page_count), not an injected exception."""
    clock = FakeClock()
    ob = Outbox(tmp_path / "o.sqlite", clock=clock, group_commit_s=0)
    ob.put_many([ev(1)])
    pages = int(ob._db.execute("PRAGMA page_count").fetchone()[0])
    ob._db.execute(f"PRAGMA max_page_count={pages}")
    n = 1
    while ob.stats()["held"] < 3 and n < 500:  # fill the last page, then the disk "is full"
        n += 1
        ob.put(ev(n, pad=250))
    assert ob.stats()["held"] == 3 and ob.stats()["write_failures"] >= 1
    ob._db.execute("PRAGMA max_page_count=1073741823")
    clock.t += RETRY_S
    ob.commit_if_due()
    assert ob.stats()["held"] == 0 and [r.seq for r in ob.peek(1000)] == list(range(1, n + 1))
    ob.close()
