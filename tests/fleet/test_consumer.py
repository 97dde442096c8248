"""The city consumer: seq bookkeeping (table-driven, SQLite and a real PostgreSQL when one can be
started here), and end to end through a real mosquitto with a real box-side Uplink receiving the
``ack_task`` the consumer sends for a dispatch task."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from city.store import NewEvent, Store, StoreError, gap_report
from edge.config.uplink import UplinkConfig
from edge.events.builder import EventBuilder
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker, free_port
from tests.fleet.helpers import REPO, query, wait_until

T0 = 1795390200.0


def ev(seq: int, n: int = 0, device: str = "pole-1") -> NewEvent:
    eid = f"e-{device}-{seq}-{n}"
    return NewEvent(eid, device, "lab", seq, "uplink_test", "instant", "info", eid, None, None, "2026-11-23T00:00:00.000Z", "{}")


# (name, batches of (seq, copy)), then expected device counters and open gaps
CASES = [
    ("in order", [[(1, 0), (2, 0), (3, 0)]], dict(events=3, duplicates=0, late=0, gaps_opened=0, seq_conflicts=0), []),
    ("redelivered", [[(1, 0), (2, 0)], [(2, 0), (1, 0)]], dict(events=2, duplicates=2, late=0, gaps_opened=0, seq_conflicts=0), []),
    ("alarm overtakes", [[(1, 0), (4, 0)], [(2, 0), (3, 0)]], dict(events=4, duplicates=0, late=2, gaps_opened=1, seq_conflicts=0), []),
    ("split gap", [[(1, 0), (6, 0)], [(3, 0)]], dict(events=3, duplicates=0, late=1, gaps_opened=1, seq_conflicts=0), [(2, 2), (4, 5)]),
    ("still missing", [[(1, 0), (5, 0)]], dict(events=2, duplicates=0, late=0, gaps_opened=1, seq_conflicts=0), [(2, 4)]),
    ("seq reused (a reset box)", [[(1, 0), (2, 0)], [(1, 1)]], dict(events=3, duplicates=0, late=0, gaps_opened=0, seq_conflicts=1), []),
]


def _check(store: Store, batches: list[list[tuple[int, int]]], counters: dict[str, int], gaps: list[tuple[int, int]]) -> None:
    for i, batch in enumerate(batches):
        with store.transaction():
            store.add_events([ev(s, n) for s, n in batch], "c1", T0 + i)
    row = store.query(
        "SELECT events, duplicates, late, gaps_opened, seq_conflicts FROM devices WHERE device_id='pole-1'"
    )[0]
    assert dict(zip(counters, (int(x) for x in row), strict=True)) == counters
    assert [(int(a), int(b)) for a, b in store.query("SELECT first_seq, last_seq FROM seq_gaps ORDER BY first_seq")] == gaps
    closed = store.query("SELECT COUNT(*) FROM seq_gap_log WHERE closed_ts IS NOT NULL")[0][0]
    assert closed == (counters["gaps_opened"] if not gaps else 0)
    assert len(gap_report(store)) == len(gaps)


@pytest.mark.parametrize(("name", "batches", "counters", "gaps"), CASES, ids=[c[0] for c in CASES])
def test_seq_bookkeeping_sqlite(tmp_path: Path, name: str, batches: list, counters: dict, gaps: list) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    _check(store, batches, counters, gaps)
    store.close()


def test_bad_database_urls_say_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        Store("mysql://x/y")
    with pytest.raises(StoreError, match="cannot open SQLite database"):
        Store(f"sqlite:///{tmp_path}/no/such/dir/c.db")
    r = subprocess.run([sys.executable, "-m", "city", "stats", "--db", "mongodb://x"], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert r.returncode == 2 and "unsupported database URL" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A throw-away PostgreSQL server (initdb + pg_ctl as the postgres user); skipped when it cannot run here."""
    pytest.importorskip("psycopg")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="edge-pg-"))  # outside pytest's 0700 tree: the server user must reach it
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data, "postgres")
    port = free_port()
    run = lambda *a: subprocess.run([*as_user, *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    r = run(initdb, "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    if r.returncode != 0:
        pytest.skip(f"initdb failed here: {r.stderr[-300:]}")
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    r = run(pg_ctl, "-D", str(data / "db"), "-o", opts, "-l", str(data / "log"), "-w", "start")
    if r.returncode != 0:
        pytest.skip(f"PostgreSQL did not start here: {r.stderr[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data / "db"), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_seq_bookkeeping_postgresql(postgres_url: str) -> None:
    for i, (_, batches, counters, gaps) in enumerate(CASES):
        store = Store(postgres_url)
        for t in ("events", "devices", "seq_gaps", "seq_gap_log"):
            store.execute(f"DELETE FROM {t}")
        _check(store, batches, counters, gaps)
        store.close()
        assert i < len(CASES)


def _started(db: Path) -> bool:
    try:
        return bool(query(db, "SELECT COUNT(*) FROM consumer_stats")[0][0] == 1)
    except sqlite3.OperationalError:  # the consumer has not made its tables yet
        return False


def _dispatch(ts: float) -> EventDraft:
    payload = {
        "task_id": "bays-bay-3-1795390500", "bay_id": "bay-3", "state": "open", "count": 19, "capacity": 15,
        "excess": 4, "action": "remove 4 bikes from bay-3", "operators": ["yellow"], "opened_ts": ts,
        "acknowledged_ts": None, "acknowledged_by": None, "resolved_ts": None, "resolved_by": None,
        "time_to_acknowledge_s": None, "time_to_resolve_s": None, "reopen_count": 0,
    }  # fmt: skip
    return EventDraft(kind="dispatch_task", phase="start", key="task:bay-3", t=ts, ts=ts, camera_id="bays",
                      zone_id="bay-3", severity="major", severity_reason="bay over capacity", payload=payload)  # fmt: skip


@pytest.mark.broker
def test_consumer_stores_dedupes_rejects_and_acks_a_dispatch_task_to_a_real_box(mosquitto: Broker, tmp_path: Path) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    db = tmp_path / "city.db"
    consumer = subprocess.Popen(
        [sys.executable, "-m", "city", "consume", "--broker", f"127.0.0.1:{mosquitto.port}", "--group", "ops",
         "--db", f"sqlite:///{db}", "--client-id", "city-1", "--acked-by", "ops-desk-2"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(tmp_path / "box.sqlite"),
         "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "backoff_min_s": 0.1, "backoff_max_s": 0.5}}
    )  # fmt: skip
    ob = Outbox.from_config(cfg)
    up = Uplink(cfg, "pole-1102", "tianfu", ob)
    b = EventBuilder("pole-1102", "tianfu", incidents=ob)
    try:
        wait_until(lambda: _started(db), 20, "the consumer")
        up.start()
        wait_until(lambda: up.connected, 10, "the box to connect")
        task = ob.put(b.build(_dispatch(T0)))
        assert task is not None
        # The real box-side Uplink receives the consumer's ack_task on its command topic.
        cmds: list = []
        wait_until(lambda: cmds.extend(up.poll_commands()) or bool(cmds), 20, "ack_task at the box")
        assert cmds[0].name == "ack_task" and cmds[0].args == {"task_id": "bays-bay-3-1795390500", "by": "ops-desk-2"}
        assert cmds[0].id == f"ack-{task.event_id}"
        up.reply(cmds[0], ok=True, result={"state": "acknowledged"})
        wait_until(lambda: query(db, "SELECT reply_ok FROM commands")[0][0] == 1, 20, "the box's reply stored")
        # The same event delivered again (a box resending after a lost PUBACK) is stored once, acked once.
        rogue = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="replayer")
        rogue.connect("127.0.0.1", mosquitto.port)
        rogue.loop_start()
        rogue.publish("edge/tianfu/pole-1102/events/dispatch_task", task.to_json(), qos=1).wait_for_publish(5)
        rogue.publish("edge/tianfu/pole-1102/events/dispatch_task", b'{"schema": "edge.event/1", "kind": 3}', qos=1).wait_for_publish(5)
        wait_until(lambda: query(db, "SELECT COUNT(*) FROM rejects")[0][0] == 1, 20, "the malformed message rejected")
        rogue.loop_stop()
        rogue.disconnect()
        assert query(db, "SELECT COUNT(*), MAX(envelope) FROM events") == [(1, task.to_json().decode())]
        assert query(db, "SELECT duplicates FROM devices") == [(1,)]
        assert query(db, "SELECT COUNT(*) FROM commands") == [(1,)]
        assert "'event_id' is a required property" in query(db, "SELECT reason FROM rejects")[0][0]
        assert query(db, "SELECT status FROM devices") == [("online",)]
    finally:
        up.stop(1.0)
        ob.close()
        consumer.send_signal(signal.SIGTERM)
        out, err = consumer.communicate(timeout=20)
    final = json.loads(out.decode().strip().splitlines()[-1])
    assert final["stored"] == 1 and final["duplicates"] == 1 and final["rejected"] == 1, err.decode()[-2000:]


def test_commands_are_resent_until_the_box_answers_and_then_no_more(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    now = T0
    with store.transaction():
        for cid, by in (("ack-1", "c1"), ("ack-2", "c1"), ("ack-3", "c2"), ("ack-4", "c2")):
            assert store.add_command(cid, "pole-1", "ack_task", "edge/s/pole-1/cmd/ack_task", "{}", None, by, now)
        assert not store.add_command("ack-1", "pole-1", "ack_task", "t", "{}", None, "c2", now)  # one per id
        for cid in ("ack-1", "ack-2"):
            store.command_sent(cid, now)
            store.command_acked(cid, now + 0.1)
        store.command_reply("ack-2", True, "{}", now + 1)
    todo = lambda t: sorted(c[0] for c in store.commands_to_send("c1", 30, 60, 3, t))  # noqa: E731
    assert todo(now + 10) == []  # ack-1 waits for its reply; ack-3/4 belong to a live c2
    assert todo(now + 61) == ["ack-1", "ack-3", "ack-4"]  # no reply in 60 s; c2's orphans after 30 s
    with store.transaction():
        for _ in range(2):
            store.command_sent("ack-1", now + 61)
    assert todo(now + 200) == ["ack-3", "ack-4"]  # ack-1 has had its 3 attempts
    store.close()
