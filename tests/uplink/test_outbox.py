"""The SQLite outbox: durability before sending, persistent seq, priority order, ack, eviction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.events.builder import EventBuilder
from edge.events.priority import Priority, priority_of
from edge.events.schema import Event
from edge.types import EventDraft
from edge.uplink.outbox import ROW_OVERHEAD_BYTES, Outbox

TS = 1_795_335_303.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def ev(n: int, *, severity: str = "info", kind: str = "uplink_test", pad: int = 0) -> Event:
    b = EventBuilder("pole-1", "lab")
    payload = {"n": n, "note": "x" * pad} if pad else {"n": n}
    e = b.build(
        EventDraft(
            kind="uplink_test",
            phase="instant",
            key=str(n),
            t=0,
            ts=TS + n,
            severity=severity,
            payload=payload,
        )
    )  # type: ignore[arg-type]
    return e.model_copy(update={"kind": kind}) if kind != "uplink_test" else e


def committed_rows(path: Path) -> int:
    """What another process would see: only committed rows."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


@pytest.mark.parametrize(
    ("kind", "phase", "severity", "prio"),
    [
        ("features", "instant", "info", Priority.FEATURE),
        ("parking_violation", "start", "minor", Priority.INFO),
        ("parking_violation", "start", "major", Priority.ALARM),
        ("crowd_surge", "instant", "critical", Priority.ALARM),
        ("camera_tamper", "start", "info", Priority.ALARM),
        ("dispatch_task", "start", "info", Priority.ALARM),
        ("dispatch_task", "update", "minor", Priority.ALARM),
        ("dispatch_task", "end", "info", Priority.INFO),
        ("device_health", "instant", "info", Priority.INFO),
    ],
)
def test_priority_of(kind: str, phase: str, severity: str, prio: Priority) -> None:
    assert priority_of(kind, phase, severity) == prio


def test_wal_and_synchronous_full(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ob.close()


def test_seq_is_assigned_and_persists_across_restarts(tmp_path: Path) -> None:
    p = tmp_path / "o.sqlite"
    ob = Outbox(p)
    out = ob.put_many([ev(i) for i in range(3)])
    assert [e.seq for e in out] == [1, 2, 3]
    ob.ack([r.id for r in ob.peek(10)], commit=True)  # even with every row gone...
    ob.close()
    ob = Outbox(p)
    assert ob.put_many([ev(9)])[0].seq == 4  # ...seq keeps counting
    ob.close()


def test_alarms_commit_at_once_others_group_commit(tmp_path: Path) -> None:
    clock = FakeClock()
    p = tmp_path / "o.sqlite"
    ob = Outbox(p, group_commit_s=0.05, clock=clock)
    ob.put(ev(1))
    ob.put(ev(2, kind="features"))
    assert committed_rows(p) == 0 and ob.peek(10) == []  # nothing is sent before it is durable
    ob.put(ev(3, severity="major"))
    assert committed_rows(p) == 3  # the alarm's commit carries the earlier rows
    ob.put(ev(4))
    assert committed_rows(p) == 3
    ob.commit_if_due()
    assert committed_rows(p) == 3  # not yet due
    clock.t += 0.051
    ob.commit_if_due()
    assert committed_rows(p) == 4 and len(ob.peek(10)) == 4
    ob.put(ev(5))
    clock.t += 0.06
    ob.put(ev(6))  # a put after the interval commits the group
    assert committed_rows(p) == 6
    ob.close()


def test_uncommitted_rows_vanish_with_their_seq_on_a_crash(tmp_path: Path) -> None:
    """A crash before the group commit loses rows that were never sent, and their seq with them,
    so consumers see no gap."""
    clock = FakeClock()
    p = tmp_path / "o.sqlite"
    ob = Outbox(p, group_commit_s=10, clock=clock)
    ob.put_many([ev(1), ev(2)])
    ob.put(ev(3))
    ob._db.close()  # simulated crash: no commit
    ob2 = Outbox(p)
    assert [r.seq for r in ob2.peek(10)] == [1, 2]
    assert ob2.put_many([ev(4)])[0].seq == 3
    ob2.close()


def test_peek_orders_by_priority_then_age_and_ack_deletes(tmp_path: Path) -> None:
    p = tmp_path / "o.sqlite"
    ob = Outbox(p)
    ob.put_many([ev(1, kind="features"), ev(2), ev(3, severity="critical"), ev(4), ev(5, severity="major")])
    rows = ob.peek(10)
    assert [r.seq for r in rows] == [3, 5, 2, 4, 1]
    assert rows[0].topic == "edge/lab/pole-1/events/uplink_test"
    assert rows[-1].topic == "edge/lab/pole-1/features/_device"
    assert [r.seq for r in ob.peek(2, exclude={rows[0].id})] == [5, 2]
    assert [r.seq for r in ob.peek(10, min_priority=Priority.ALARM)] == [3, 5]
    ob.ack([rows[0].id, rows[2].id])
    ob.close()
    ob = Outbox(p)  # the ack was committed at close
    assert [r.seq for r in ob.peek(10)] == [5, 4, 1]
    assert ob.stats()["pending_by_priority"] == {"feature": 1, "info": 1, "alarm": 1}
    ob.close()


def test_incident_map_is_persisted(tmp_path: Path) -> None:
    p = tmp_path / "o.sqlite"
    ob = Outbox(p)
    b = EventBuilder("pole-1", "lab", incidents=ob)
    t0 = EventDraft(
        kind="agent_status", phase="start", key="viol:7", t=0, ts=TS, payload={"state": "started"}
    )
    start = ob.put_many([b.build(t0)])[0]
    ob.close()
    ob = Outbox(p)
    b = EventBuilder("pole-1", "lab", incidents=ob)
    upd = b.build(
        EventDraft(
            kind="agent_status", phase="update", key="viol:7", t=5, ts=TS + 5, payload={"state": "started"}
        )
    )
    end = b.build(
        EventDraft(
            kind="agent_status", phase="end", key="viol:7", t=9, ts=TS + 9, payload={"state": "started"}
        )
    )
    assert upd.incident_id == end.incident_id == start.incident_id
    ob.put_many([upd, end])
    assert ob.get_incident("viol:7") is None
    ob.close()


def _row_size(e: Event) -> int:
    return len(e.to_json()) + len("edge/lab/pole-1/events/uplink_test") + ROW_OVERHEAD_BYTES + 2


def test_cap_evicts_features_then_info_never_alarms(tmp_path: Path) -> None:
    size = _row_size(ev(100, pad=200))
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=10 * size)
    # 3 alarms, 3 info, 4 features fill the cap exactly (roughly).
    batch = [ev(i, severity="major", pad=200) for i in range(3)]
    batch += [ev(i, pad=200) for i in range(3, 6)]
    batch += [ev(i, kind="features", pad=200) for i in range(6, 10)]
    ob.put_many(batch)
    assert ob.stats()["dropped_total"] == 0
    # 6 more alarms: the 4 features go first, then the oldest info rows; alarms stay.
    ob.put_many([ev(i, severity="major", pad=200) for i in range(10, 16)])
    st = ob.stats()
    assert st["dropped"]["feature"] == 4 and st["dropped"]["info"] >= 2 and st["dropped"]["alarm"] == 0
    assert st["pending_by_priority"]["alarm"] == 9
    assert st["bytes"] <= ob.max_bytes
    # A new info row cannot push out alarms: it is itself dropped (and counted).
    before = st["dropped"]["info"]
    ob.put_many([ev(50, pad=200) for _ in range(3)])
    st = ob.stats()
    assert st["pending_by_priority"]["alarm"] == 9
    assert st["dropped"]["info"] > before
    # Only alarms left and another alarm arrives: the oldest alarm makes room, counted as such.
    ob.put_many([ev(60 + i, severity="critical", pad=200) for i in range(3)])
    assert ob.stats()["dropped"]["alarm"] >= 1
    assert ob.stats()["bytes"] <= ob.max_bytes
    ob.close()


def test_drop_counters_persist(tmp_path: Path) -> None:
    p = tmp_path / "o.sqlite"
    size = _row_size(ev(1, pad=100))
    ob = Outbox(p, max_bytes=3 * size)
    ob.put_many([ev(i, kind="features", pad=100) for i in range(6)])
    dropped = ob.stats()["dropped"]["feature"]
    assert dropped >= 3
    ob.close()
    assert Outbox(p, max_bytes=3 * size).stats()["dropped"]["feature"] == dropped


def test_unwritable_path_is_an_actionable_error(tmp_path: Path) -> None:
    from edge.uplink.outbox import OutboxError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "sub" / "o.sqlite")


def test_a_filling_disk_lowers_the_cap_and_stops_growth_without_purging(tmp_path: Path) -> None:
    """Something else fills the card: the outbox stops growing (a new row gets in only in exchange for
    as many bytes of lesser rows) instead of purging what it holds."""
    clock = FakeClock()
    free = {"bytes": 100_000_000}
    ob = Outbox(
        tmp_path / "o.sqlite",
        max_bytes=10_000_000,
        clock=clock,
        disk_usage=lambda: (1_000_000_000, free["bytes"]),
        reserve_bytes=1_000_000,
    )
    ob.put_many([ev(i, kind="features", pad=250) for i in range(1000)] + [ev(9999, severity="major", pad=250)])
    before = ob.stats()
    assert before["dropped_total"] == 0 and before["limit_bytes"] == 10_000_000
    assert before["bytes"] > ob.reserve_bytes // 4  # above the floor a tight disk still grants
    # Logs and evidence fill the card down to the reserve.
    free["bytes"] = ob.reserve_bytes - 1000
    clock.t += 2
    ob.put_many([ev(10_000, pad=250)])
    st = ob.stats()
    assert st["limit_bytes"] < before["bytes"]
    assert 1 <= st["dropped"]["feature"] <= 2, st["dropped"]  # only what the new row needed
    assert st["bytes"] <= before["bytes"]
    assert st["pending_by_priority"] == {"feature": 1000 - st["dropped"]["feature"], "info": 1, "alarm": 1}
    ob.close()


@pytest.mark.parametrize("seed", range(5))
def test_running_counts_match_the_table_after_random_operations(tmp_path: Path, seed: int) -> None:
    import random

    rng = random.Random(seed)
    p = tmp_path / f"o{seed}.sqlite"
    size = _row_size(ev(1, pad=50))
    ob = Outbox(p, max_bytes=40 * size, group_commit_s=0)
    for step in range(300):
        op = rng.random()
        if op < 0.6:
            sev, kind = rng.choice([("info", "uplink_test"), ("major", "uplink_test"), ("info", "features")])
            ob.put(ev(step, severity=sev, kind=kind, pad=50))
        elif op < 0.9:
            rows = ob.peek(rng.randint(1, 5))
            ob.ack([r.id for r in rows[: rng.randint(0, len(rows))]])
        else:
            ob.flush()
    ob.flush()
    live = ob.stats()
    ob.close()
    fresh = Outbox(p, max_bytes=40 * size)
    again = fresh.stats()
    assert (live["pending_by_priority"], live["bytes"], live["dropped"]) == (
        again["pending_by_priority"],
        again["bytes"],
        again["dropped"],
    )
    assert live["bytes"] <= 40 * size
    fresh.close()
