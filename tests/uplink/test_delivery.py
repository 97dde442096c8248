"""Nothing lost, end to end through a real mosquitto: broker restarts, SIGKILLed producers,
a cut network and a full outbox. A consumer dedupes by event_id and checks seq for gaps."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.broker import Broker
from tests.uplink.helpers import Consumer, TcpProxy, producer, uplink_json, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def finish(p: subprocess.Popen[str], timeout_s: float = 60) -> dict:
    out, err = p.communicate(timeout=timeout_s)
    assert p.returncode == 0, f"producer failed ({p.returncode}):\n{err[-4000:]}"
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    stats = [x["stats"] for x in lines if "stats" in x]
    return stats[-1] if stats else {}


def assert_complete(c: Consumer, n: int) -> None:
    wait_until(lambda: len(c.unique_seqs()) >= n, 20, f"{n} distinct seqs at the consumer")
    seqs = c.unique_seqs()
    missing = sorted(set(range(1, n + 1)) - set(seqs))
    assert not missing, f"lost {len(missing)} events, first seqs {missing[:10]}"
    assert max(seqs) == n


def test_broker_restarted_mid_stream(mosquitto: Broker, tmp_path: Path) -> None:
    c = Consumer(mosquitto.host, mosquitto.port).start()
    n = 600
    p = producer(
        uplink_json(tmp_path, mosquitto.port),
        "--until-seq",
        str(n),
        "--rate",
        "300",
        "--drain",
        "--alarm-every",
        "9",
    )
    for k in (100, 300):
        wait_until(lambda k=k: len(c.unique_seqs()) >= k, 20, f"{k} events before restarting the broker")
        mosquitto.restart()
    stats = finish(p)
    assert stats["reconnects"] >= 3  # first connect + two restarts
    assert_complete(c, n)
    c.stop()


def test_producer_sigkilled_mid_publish_and_restarted(mosquitto: Broker, tmp_path: Path) -> None:
    c = Consumer(mosquitto.host, mosquitto.port).start()
    n = 1200
    cfg = uplink_json(tmp_path, mosquitto.port)
    args = ("--until-seq", str(n), "--rate", "800", "--alarm-every", "5", "--feature-every", "4")
    for k in (150, 450, 750):
        p = producer(cfg, *args)
        wait_until(lambda k=k: len(c.unique_seqs()) >= k, 30, f"{k} events before the kill")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        # The broker published the last will: the box is offline.
        wait_until(lambda: c.on_topic("edge/lab/pole-1/status")[-1:] == [b"offline"], 10, "the last will")
    stats = finish(producer(cfg, *args, "--drain"))
    assert stats["outbox_pending"] == 0
    assert_complete(c, n)
    # A clean stop: offline on the availability topic, the reason beside it (a kill leaves no reason).
    assert c.on_topic("edge/lab/pole-1/status")[-1] == b"offline"
    reasons = c.on_topic("edge/lab/pole-1/status/reason")
    assert json.loads(reasons[-1])["reason"] == "stopped" and reasons.count(b"") >= 4  # cleared on each connect
    c.stop()


def test_network_cut_by_a_proxy(mosquitto: Broker, tmp_path: Path) -> None:
    proxy = TcpProxy(mosquitto.port)
    c = Consumer(mosquitto.host, mosquitto.port).start()
    n = 500
    p = producer(
        uplink_json(tmp_path, proxy.port),
        "--until-seq",
        str(n),
        "--rate",
        "250",
        "--drain",
        "--drain-timeout",
        "30",
    )
    wait_until(lambda: len(c.unique_seqs()) >= 100, 20, "traffic before the cut")
    proxy.cut()
    at_cut = len(c.unique_seqs())
    # While cut, nothing arrives but the producer keeps accepting events into its outbox.
    time.sleep(1.5)  # the outage itself: real time passing is the point of this test
    assert len(c.unique_seqs()) <= at_cut + 40  # at most what was in flight before the cut
    proxy.restore()
    stats = finish(p)
    assert stats["reconnects"] >= 2 and stats["connect_failures"] >= 1
    assert_complete(c, n)
    c.stop()
    proxy.close()


def test_network_blackholed_detected_by_keepalive(mosquitto: Broker, tmp_path: Path) -> None:
    """Packets silently dropped (no FIN, no RST): only the MQTT keepalive notices; the messages
    that were in flight on the dead connection are sent again on the next one."""
    proxy = TcpProxy(mosquitto.port)
    c = Consumer(mosquitto.host, mosquitto.port).start()
    n = 400
    cfg = uplink_json(tmp_path, proxy.port, keepalive_s=5, connect_timeout_s=2)
    p = producer(cfg, "--until-seq", str(n), "--rate", "100", "--drain", "--drain-timeout", "40")
    wait_until(lambda: len(c.unique_seqs()) >= 50, 20, "traffic before the blackhole")
    proxy.blackhole()
    time.sleep(2.0)  # the outage: real time is the point here
    stalled = len(c.unique_seqs())
    proxy.restore()  # the old connection stays dead; only a reconnect gets through
    stats = finish(p, timeout_s=90)
    assert stalled < n and stats["reconnects"] >= 2
    assert_complete(c, n)
    c.stop()
    proxy.close()


def test_outbox_cap_evicts_lowest_priorities_and_keeps_every_alarm(mosquitto: Broker, tmp_path: Path) -> None:
    n = 600
    cfg = json.loads(uplink_json(tmp_path, mosquitto.port))
    cfg["outbox_max_bytes"] = 64 * 1024  # about 100 rows: most of the 600 cannot be kept
    cfg_text = json.dumps(cfg)
    # Broker unreachable for the box: fill the outbox far past its cap.
    offline = producer(
        cfg_text, "--until-seq", str(n), "--alarm-every", "10", "--feature-every", "3", "--no-uplink"
    )
    offline.communicate(timeout=60)
    assert offline.returncode == 0
    c = Consumer(mosquitto.host, mosquitto.port).start()
    stats = finish(producer(cfg_text, "--until-seq", str(n), "--drain"))
    dropped = stats["outbox_dropped"]
    assert dropped["alarm"] == 0 and dropped["feature"] > 0 and dropped["info"] > 0
    wait_until(lambda: len(c.unique_seqs()) >= n - sum(dropped.values()), 20, "the surviving rows")
    got = c.unique_seqs()
    alarms = set(range(10, n + 1, 10))
    assert alarms <= set(got), f"alarms lost: {sorted(alarms - set(got))[:10]}"
    assert len(got) + sum(dropped.values()) == n  # every missing seq is a counted drop
    # Priority order of eviction: features lost the largest share, alarms none.
    by_seq = {ev["seq"]: ev for ev in c.events()}
    produced = {"alarm": len(alarms), "feature": 0, "info": 0}
    kept = {"alarm": 0, "feature": 0, "info": 0}
    for s in range(1, n + 1):
        if s % 10 and s % 3 == 0:
            produced["feature"] += 1
        elif s % 10:
            produced["info"] += 1
    for ev in by_seq.values():
        kind = "alarm" if ev["severity"] == "major" else ("feature" if ev["kind"] == "features" else "info")
        kept[kind] += 1
    assert kept["alarm"] == produced["alarm"]
    assert kept["feature"] / produced["feature"] < kept["info"] / produced["info"] < 1.0
    c.stop()
