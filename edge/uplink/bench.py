"""Uplink benchmark: ``python -m edge.uplink.bench [--events N] [--broker HOST:PORT]``.

1. durable events/s into the outbox (WAL, synchronous=FULL): ``put()`` with group commit, and
   ``put_many()`` in batches of 10 (one frame's transitions);
2. drain rate from a full outbox to a local broker (PUBACK-confirmed, rows deleted);
3. event-to-consumer latency p50/p95 while online (outbox -> broker -> subscriber).

Without ``--broker`` it starts /usr/sbin/mosquitto on a free 127.0.0.1 port in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from edge.config.uplink import MqttConfig, UplinkConfig
from edge.events.builder import EventBuilder
from edge.events.schema import Event
from edge.events.topics import Topics
from edge.types import EventDraft
from edge.uplink.mqtt import Connected, Message, PahoSession, SessionEvent
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink


def _events(builder: EventBuilder, n: int, start: int = 0) -> list[Event]:
    out = []
    for i in range(start, start + n):
        tr = EventDraft(
            kind="uplink_test", phase="instant", key=str(i), t=0.0, ts=time.time(), camera_id="cam0",
            payload={"n": i, "note": "x" * 200},
        )  # fmt: skip
        out.append(builder.build(tr))
    return out


def bench_outbox(d: Path, n: int) -> dict[str, float]:
    b = EventBuilder("bench-1", "lab")
    t0 = time.perf_counter()
    evs = _events(b, n)
    build_s = time.perf_counter() - t0
    res: dict[str, float] = {"build_validate_per_s": n / build_s}
    ob = Outbox(d / "put.sqlite", group_commit_s=0.01)
    t0 = time.perf_counter()
    for e in evs:
        ob.put(e)
    ob.flush()
    res["put_group_commit_per_s"] = n / (time.perf_counter() - t0)
    ob.close()
    ob = Outbox(d / "batch.sqlite")
    t0 = time.perf_counter()
    for i in range(0, n, 10):
        ob.put_many(evs[i : i + 10])
    res["put_many_10_per_s"] = n / (time.perf_counter() - t0)
    ob.close()
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_broker(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"mosquitto did not start ({exe})")


class _Subscriber:
    def __init__(self, host: str, port: int, topic: str) -> None:
        self.q: queue.SimpleQueue[SessionEvent] = queue.SimpleQueue()
        self.sess = PahoSession(
            MqttConfig.model_validate({"host": host, "port": port}),
            "bench-consumer",
            Topics("bench", "x", "consumer"),
            self.q,
        )
        self.latencies: list[float] = []
        self.count = 0
        self.topic = topic
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.sess.connect()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.sess.loop(0.01):
            while True:
                try:
                    ev = self.q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(ev, Connected):
                    self.sess.subscribe(self.topic, qos=1)
                    self.ready.set()
                elif isinstance(ev, Message):
                    self.sess.ack(ev.mid, ev.qos)  # the session acknowledges by hand (Receive Maximum)
                    if "/events/" not in ev.topic:
                        continue
                    now = time.time()
                    doc = json.loads(ev.payload)
                    self.count += 1
                    if "sent_ts" in doc["payload"]:
                        self.latencies.append(now - doc["payload"]["sent_ts"])

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sess.disconnect()


def bench_broker(d: Path, host: str, port: int, n: int, rate: float, seconds: float) -> dict[str, float]:
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(d / "drain.sqlite"), "mqtt": {"host": host, "port": port, "inflight_max": 64}}
    )
    sub = _Subscriber(host, port, "edge/#")
    sub.ready.wait(5)
    ob = Outbox(cfg.outbox_path, group_commit_s=cfg.group_commit_s)
    ob.put_many(_events(EventBuilder("bench-1", "lab"), n))
    up = Uplink(cfg, "bench-1", "lab", ob)
    t0 = time.perf_counter()
    up.start()
    while ob.stats()["pending"] > 0 and time.perf_counter() - t0 < 120:
        time.sleep(0.005)
    drain_s = time.perf_counter() - t0
    res = {"drain_per_s": n / drain_s}
    # Latency while online: events put at ``rate`` through the normal group-committed path.
    sub.latencies.clear()
    b = EventBuilder("bench-1", "lab")
    period = 1.0 / rate
    nxt = time.monotonic()
    for i in range(int(rate * seconds)):
        tr = EventDraft(
            kind="uplink_test",
            phase="instant",
            key=str(i),
            t=0.0,
            ts=time.time(),
            payload={"n": i, "sent_ts": time.time()},
        )
        ob.put(b.build(tr))
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    time.sleep(0.5)
    up.stop(5)
    ob.close()
    sub.stop()
    lat = sorted(sub.latencies)
    if lat:
        res["latency_p50_ms"] = 1000 * statistics.median(lat)
        res["latency_p95_ms"] = 1000 * lat[int(0.95 * (len(lat) - 1))]
        res["latency_samples"] = float(len(lat))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m edge.uplink.bench", description="Outbox and uplink benchmark"
    )
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--broker", help="HOST:PORT of a broker to use instead of starting mosquitto")
    ap.add_argument("--rate", type=float, default=200.0, help="events/s for the latency run")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the latency run")
    ap.add_argument(
        "--dir", help="where to put the test databases (default: a temp dir; use the SD card on a box)"
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        res = bench_outbox(d, args.events)
        proc = None
        if args.broker:
            host, _, port_s = args.broker.rpartition(":")
            port = int(port_s)
        else:
            proc, port = _start_broker(d)
            host = "127.0.0.1"
        try:
            res.update(bench_broker(d, host, port, min(args.events, 10000), args.rate, args.seconds))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(5)
    for k, v in res.items():
        print(f"{k:28s} {v:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
