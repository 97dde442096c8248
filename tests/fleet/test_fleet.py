"""200 boxes, a simulated hour, a broker restart with a reconnect storm, and two consumers in one
share group, one SIGKILLed and restarted, all against a real mosquitto with per-box credentials and
the shipped ACL. Nothing accepted by an outbox may be lost, counted twice or left unexplained.

    pytest -m slow tests/fleet/test_fleet.py -s      # prints the figures (connect rate, drain time)
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.broker import TEST_ACL, Broker
from tests.fleet.helpers import (
    BOX_PASSWORD,
    PLATFORM_PASSWORD,
    REPO,
    box_connects,
    drained_after,
    env,
    ledger,
    per_second,
    query,
    sim_elapsed,
    start_consumer,
    stored,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BOXES = 200
SIM_S = 3600.0
SPEED = 30.0
WINDOW_S = 10.0
OUTAGE_S = 5.0
START = "2026-11-23T07:30:00+08:00"


def _device_ids() -> list[str]:
    from edge.config.loader import load_config
    from firmware_sim.fleet import device_name

    sites = [load_config(REPO / f"configs/{s}.yaml") for s in ("no-parking-street", "bike-bay", "plaza-crowd")]
    return [device_name(sites[(n - 1) % 3], n) for n in range(1, BOXES + 1)]


def test_fleet_hour_with_broker_restart_and_consumer_failover(tmp_path: Path) -> None:
    t_begin = time.monotonic()
    passwords = {d: BOX_PASSWORD for d in _device_ids()} | {"platform": PLATFORM_PASSWORD}
    broker = Broker(tmp_path / "broker", acl=TEST_ACL, passwords=passwords)
    broker.start()
    db = tmp_path / "city.db"
    out = tmp_path / "fleet"
    clog = tmp_path / "consumers.log"
    copts = ("--no-validate", "--reply-timeout", "15")
    consumers = {cid: start_consumer(broker.port, db, cid, clog, *copts) for cid in ("city-a", "city-b")}
    fleet = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "fleet", "--boxes", str(BOXES), "--procs", "2",
         "--broker", f"127.0.0.1:{broker.port}", "--out", str(out), "--sim-seconds", str(SIM_S),
         "--speed", str(SPEED), "--start", START, "--reconnect-window", str(WINDOW_S), "--no-validate",
         "--drain-timeout", "180", "--linger", "30"],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=open(tmp_path / "fleet.log", "ab"),
    )  # fmt: skip
    start_ts = dt.datetime.fromisoformat(START).timestamp()
    try:
        wait_until(lambda: sim_elapsed(out, start_ts) >= 900, 180, "15 simulated minutes")
        # Consumer failover: SIGKILL mid-stream (no DISCONNECT, a batch possibly half-done), restart later.
        consumers["city-a"].send_signal(signal.SIGKILL)
        consumers["city-a"].wait(10)
        time.sleep(3.0)
        consumers["city-a"] = start_consumer(broker.port, db, "city-a", clog, *copts)
        wait_until(lambda: sim_elapsed(out, start_ts) >= 1800, 180, "30 simulated minutes")
        # Broker outage: every box loses its connection at once, then comes back through the storm rounds.
        broker.stop()
        time.sleep(OUTAGE_S)
        broker.start()
        back_at = time.time()
        rc = fleet.wait(timeout=600)
        summary = json.loads(fleet.stdout.read() if fleet.stdout else b"{}")
        assert rc == 0, f"fleet exited {rc} (outboxes not drained?): {summary}"
        accepted = ledger(out)
        wait_until(lambda: len(stored(db)) >= len(accepted), 240, "the consumers to store every accepted event", 1.0)
        time.sleep(2.0)  # let late replies and duplicates land
    finally:
        for p in consumers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
        if fleet.poll() is None:
            fleet.kill()
        log_text = broker.log_text()
        broker.stop()
    wall_s = time.monotonic() - t_begin

    got = stored(db)
    lost = set(accepted) - set(got)
    assert not lost, f"{len(lost)} accepted events never reached the database, e.g. {sorted(lost)[:3]}"
    assert set(got) <= set(accepted), "the database holds events no box accepted"
    assert all(got[e] == accepted[e] for e in accepted), "an event_id arrived with another device/seq"
    assert summary["events"] == len(accepted) and summary["pending"] == 0 and summary["dropped"] == 0

    # Not double-counted: one row per (device, seq), and every duplicate delivery was counted and dropped.
    assert not query(db, "SELECT device_id, seq FROM events GROUP BY device_id, seq HAVING COUNT(*) > 1")
    received, kept, dups, rejected = query(
        db, "SELECT SUM(received), SUM(stored), SUM(duplicates), SUM(rejected) FROM consumer_stats"
    )[0]
    assert kept == len(accepted) and rejected == 0
    assert received >= kept + dups  # status and command replies are received too

    # Order and gaps: every box's seqs are 1..last with nothing missing; every gap the consumers saw
    # (alarms overtaking older rows, two consumers, redelivery) was closed by the late arrival.
    last = dict(query(db, "SELECT device_id, max_seq FROM devices"))
    for dev, n in query(db, "SELECT device_id, COUNT(*) FROM events GROUP BY device_id"):
        assert n == last[dev], f"{dev}: {n} events for max seq {last[dev]}"
    assert query(db, "SELECT COUNT(*) FROM seq_gaps")[0][0] == 0
    assert query(db, "SELECT COUNT(*) FROM seq_gap_log WHERE closed_ts IS NULL")[0][0] == 0
    late, gaps_opened, conflicts = query(db, "SELECT SUM(late), SUM(gaps_opened), SUM(seq_conflicts) FROM devices")[0]
    gap_seqs = query(db, "SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM seq_gap_log")[0][0]
    assert conflicts == 0 and late == gap_seqs

    # Both consumers took part, and the killed one came back under its own session.
    per_consumer = dict(query(db, "SELECT consumer, COUNT(*) FROM events GROUP BY consumer"))
    assert set(per_consumer) == {"city-a", "city-b"}, per_consumer
    assert dict(query(db, "SELECT consumer, starts FROM consumer_stats"))["city-a"] == 2

    # Dispatch tasks: every opening was acknowledged back to its box, which replied ok.
    tasks = query(db, "SELECT event_id FROM events WHERE kind='dispatch_task' AND phase='start'")
    assert tasks, "the simulated hour opened no dispatch task"
    cmds = dict(query(db, "SELECT event_id, reply_ok FROM commands WHERE name='ack_task'"))
    assert all(cmds.get(e) == 1 for (e,) in tasks), "a dispatch task without an acknowledged ack_task"
    acked = query(db, "SELECT COUNT(*) FROM events WHERE kind='dispatch_task' AND envelope LIKE '%\"state\":\"acknowledged\"%'")
    assert acked[0][0] == len(tasks)

    # The storm: connects after the restart are spread over the rounds, not a spike.
    stamps = box_connects(log_text, back_at - 1)
    assert len(stamps) >= BOXES, f"only {len(stamps)} box connections logged after the restart"
    rate = per_second(stamps)
    peak = max(n for _, n in rate)
    first = stamps[: BOXES]
    p10, p90 = sorted(first)[BOXES // 10], sorted(first)[BOXES * 9 // 10]
    assert peak <= 3 * BOXES / WINDOW_S, f"peak {peak} connects/s: the reconnects came in lock-step"
    assert p90 - p10 >= WINDOW_S / 2, f"80% of the boxes reconnected within {p90 - p10} s"
    drain = drained_after(out, back_at, BOXES)
    assert drain is not None

    print(f"\nfleet: {BOXES} boxes, {SIM_S / 3600:.0f} simulated h at {SPEED:.0f}x, {len(accepted)} events, "
          f"test wall time {wall_s:.0f} s (machine shared, loaded)")  # fmt: skip
    print(f"consumers: received {received}, stored {kept}, duplicates dropped {dups}, per consumer {per_consumer}")
    print(f"seq: {gaps_opened} gaps opened, {late} late arrivals filled them, 0 open; ack_task: {len(tasks)} tasks, all replied ok")
    print(f"storm: broker down {OUTAGE_S:.0f} s; connects/s after restart (window {WINDOW_S:.0f} s): "
          + " ".join(str(n) for _, n in rate))  # fmt: skip
    print(f"storm: peak {peak}/s (mean over window {BOXES / WINDOW_S:.0f}/s), 10-90% of boxes back within "
          f"{p10 - min(stamps)}..{p90 - min(stamps)} s; every outbox drained {drain:.1f} s after the restart")  # fmt: skip
