"""A fleet of simulated boxes against a real broker, built from the agent's own parts.

    python -m firmware_sim fleet --boxes 200 --broker 127.0.0.1:1883 --sim-seconds 3600 --speed 60

Each box has its own device id, MQTT client id and credentials, its own ``EventBuilder``, its own
SQLite ``Outbox`` file and its own ``Uplink`` session: the very classes the agent runs. What is
shared is threads: boxes are split over ``--procs`` worker processes (default: one per core), and in
each process one thread produces every box's events (``firmware_sim.streams``, in accelerated event
time) while one thread drives every box's uplink (``Uplink.step(0)`` when its sockets are ready,
and every box a few times a second for its timers).

Outputs (in ``--out``): ``ledger-K.sqlite`` (every event an outbox accepted: device, seq, event_id),
``progress-K.jsonl`` (once a second: boxes connected, rows pending, boxes with a backlog) and
``summary-K.json`` (per box: seq, sent, acked, reconnects, commands, bytes on the wire with
``--count-bytes``). The command prints the merged summary as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import os
import resource
import select
import signal
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("firmware_sim.fleet")
SWEEP_S = 0.25  # every uplink is stepped at least this often (keepalive, reconnect timers)
TICK_S = 0.05  # event production granularity (wall time)
BACKLOG_AGE_S = 3.0  # a box whose oldest pending row is older than this (wall) has a backlog


_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the repository's example site configs
DEFAULT_SITES = tuple(str(_CONFIGS / f"{s}.yaml") for s in ("no-parking-street", "bike-bay", "plaza-crowd"))


@dataclass
class FleetOptions:
    boxes: int
    host: str
    port: int
    out: str
    sites: list[str] = field(default_factory=lambda: list(DEFAULT_SITES))
    procs: int = 0
    sim_seconds: float = 3600.0
    speed: float = 60.0
    start: str = "2026-11-23T07:30:00+08:00"
    prefix: str = "edge"
    password: str | None = None
    tls_dir: str | None = None
    reconnect_window_s: float | None = None
    keepalive_s: int | None = None
    drain_timeout_s: float = 120.0
    linger_s: float = 0.0
    count_bytes: bool = False
    validate: bool = True
    seed: int = 1
    uplink_overrides: dict[str, Any] = field(default_factory=dict)

    def start_ts(self) -> float:
        return dt.datetime.fromisoformat(self.start).timestamp()


def device_name(site_cfg: Any, n: int) -> str:
    return f"{site_cfg.device_id}-{n:04d}"


class SimBox:
    """One simulated box: the agent's builder, outbox and uplink around a ``BoxStream``."""

    def __init__(self, opts: FleetOptions, n: int, site: Any, port: int) -> None:
        from edge.config.uplink import UplinkConfig
        from edge.events.builder import EventBuilder
        from edge.uplink.outbox import Outbox
        from edge.uplink.service import Uplink
        from firmware_sim.streams import BoxStream

        self.device_id = device_name(site, n)
        self.site_id = site.site_id
        self.cfg = site.model_copy(update={"device_id": self.device_id})
        box_dir = Path(opts.out) / "boxes" / self.device_id
        up = site.uplink.model_dump()
        mqtt: dict[str, Any] = {
            "host": opts.host,
            "port": port,
            "client_id": f"edge-{self.site_id}-{self.device_id}",
            "backoff_min_s": 1.0,
            "backoff_max_s": 30.0,
        }
        old = up.get("mqtt") or {}
        for k in ("keepalive_s", "inflight_max", "topic_aliases", "reconnect_window_s", "session_expiry_s"):
            if k in old:
                mqtt[k] = old[k]
        if opts.reconnect_window_s is not None:
            mqtt["reconnect_window_s"] = opts.reconnect_window_s
        if opts.keepalive_s is not None:
            mqtt["keepalive_s"] = opts.keepalive_s
        if opts.password is not None:
            mqtt["username"] = self.device_id
            mqtt["password"] = opts.password
        if opts.tls_dir is not None:
            d = Path(opts.tls_dir)
            mqtt["tls"] = {"ca_file": str(d / "ca.pem"), "cert_file": str(d / f"{self.device_id}.pem"),
                           "key_file": str(d / f"{self.device_id}.key")}  # fmt: skip
        up.update(
            outbox_path=str(box_dir / "outbox.sqlite"), jsonl_path=None, topic_prefix=opts.prefix, mqtt=mqtt,
            group_commit_s=0.05,
        )  # fmt: skip
        up.update(opts.uplink_overrides)
        self.up_cfg = UplinkConfig.model_validate(up)
        self.outbox = Outbox.from_config(self.up_cfg)
        self.builder = EventBuilder(
            self.device_id, self.site_id, config_hash="0b7b5d0b574f", incidents=self.outbox,
            clock_quality=lambda: "ntp", geo=lambda: {"lat": 30.65, "lon": 104.06}, validate=opts.validate,
        )  # fmt: skip
        self.uplink = Uplink(self.up_cfg, self.device_id, self.site_id, self.outbox)
        self.stream = BoxStream(self.cfg, opts.start_ts(), seed=opts.seed * 100003 + n)
        self.stream.health_extra = self._health_extra
        self.model = {"name": site.cameras[0].model, "sha256": "695e750a5d57"}
        self.commands: dict[str, int] = {}
        self.accepted: list[tuple[str, str, int, str, str, str]] = []

    def _health_extra(self) -> dict[str, Any]:
        st = self.outbox.stats()
        return {"depth": st["pending"], "oldest_age_s": round(st["oldest_age_s"], 1), "dropped": st["dropped_total"],
                "connected": self.uplink.connected}  # fmt: skip

    def produce(self, until_ts: float) -> int:
        """Build and store every event due up to ``until_ts``; handle commands. Returns events stored."""
        drafts = self.stream.advance(until_ts)
        for cmd in self.uplink.poll_commands():
            self.commands[cmd.name] = self.commands.get(cmd.name, 0) + 1
            if cmd.name == "ack_task":
                try:
                    drafts += self.stream.acknowledge(str(cmd.args["task_id"]), str(cmd.args.get("by", "")), until_ts)
                    self.uplink.reply(cmd, ok=True, result={"task_id": cmd.args["task_id"], "state": "acknowledged"})
                except KeyError:
                    self.uplink.reply(cmd, ok=False, error=f"unknown task {cmd.args.get('task_id')!r}")
            else:
                self.uplink.reply(cmd, ok=False, error=f"{cmd.name} is not simulated by the fleet")
        if not drafts:
            return 0
        events = [self.builder.build(d, model=self.model if d.camera_id else None) for d in drafts]
        stored = self.outbox.put_many(events)
        for e in stored:
            self.accepted.append((e.event_id, e.device_id, e.seq, e.kind, e.phase, e.ts))
        return len(stored)


class Driver:
    """Steps many uplinks from one thread: ``poll`` on all their sockets, step the ready ones, and
    sweep every uplink each ``SWEEP_S`` for its timers."""

    def __init__(self, boxes: list[SimBox]) -> None:
        self.boxes = boxes
        self.steps = 0

    def turn(self, timeout_s: float, sweep: bool) -> None:
        poller = select.poll()
        fd_box: dict[int, int] = {}
        for i, b in enumerate(self.boxes):
            read, write = b.uplink.wait_handles()
            for s in read:
                fd = s.fileno()
                if fd < 0:
                    continue
                poller.register(fd, select.POLLIN | (select.POLLOUT if s in write else 0))
                fd_box[fd] = i
        due = {fd_box[fd] for fd, _ in poller.poll(int(timeout_s * 1000)) if fd in fd_box}
        if sweep:
            due = set(range(len(self.boxes)))
        for i in sorted(due):
            self.boxes[i].uplink.step(0.0)
            self.steps += 1


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _worker(opts: FleetOptions, index: int, numbers: list[int]) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s w{index} %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_fd_limit()
    out = Path(opts.out)
    proxies = None
    if opts.count_bytes:
        from firmware_sim.wirecount import CountingProxies

        proxies = CountingProxies(opts.host, opts.port)
    from edge.config.loader import load_config

    sites = [load_config(p) for p in opts.sites]
    boxes: list[SimBox] = []
    t0 = time.monotonic()
    for n in numbers:
        name = f"box-{n}"
        port = proxies.add(name) if proxies is not None else opts.port
        boxes.append(SimBox(opts, n, sites[(n - 1) % len(sites)], port))
    log.warning("worker %d: %d boxes ready in %.1f s", index, len(boxes), time.monotonic() - t0)
    ledger = sqlite3.connect(str(out / f"ledger-{index}.sqlite"), isolation_level=None, check_same_thread=False)
    ledger.execute("PRAGMA synchronous=OFF")
    ledger.execute(
        "CREATE TABLE IF NOT EXISTS accepted (event_id TEXT PRIMARY KEY, device_id TEXT, seq INTEGER, kind TEXT, "
        "phase TEXT, ts TEXT)"
    )
    progress = open(out / f"progress-{index}.jsonl", "a", buffering=1)
    driver = Driver(boxes)
    for b in boxes:
        b.uplink.start(thread=False)
    start_ts = opts.start_ts()
    mono0 = time.monotonic()
    sim_end = start_ts + opts.sim_seconds
    done = threading.Event()
    produced = [0]

    def producer() -> None:
        next_progress = time.monotonic()
        final = False
        while not final:
            now = time.monotonic()
            sim_now = min(sim_end, start_ts + (now - mono0) * opts.speed)
            final = sim_now >= sim_end
            for b in boxes:
                try:
                    produced[0] += b.produce(sim_now)
                except Exception:
                    log.exception("box %s failed to produce", b.device_id)
                if b.accepted:
                    ledger.executemany("INSERT OR IGNORE INTO accepted VALUES(?,?,?,?,?,?)", b.accepted)
                    b.accepted.clear()
            if now >= next_progress:
                next_progress = now + 1.0
                _progress(progress, boxes, sim_now, produced[0])
            time.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        done.set()

    th = threading.Thread(target=producer, name="fleet-producer", daemon=True)
    th.start()
    next_sweep = 0.0
    while not done.is_set():
        now = time.monotonic()
        sweep = now >= next_sweep
        if sweep:
            next_sweep = now + SWEEP_S
        driver.turn(TICK_S, sweep)
    # Drain: keep driving until every outbox is empty (or the timeout), and at least --linger seconds so
    # that late commands (and the events and replies they cause) are handled.
    drain_started = time.monotonic()
    drain_s: float | None = None
    last_progress = 0.0
    while time.monotonic() - drain_started < opts.drain_timeout_s + opts.linger_s:
        now = time.monotonic()
        if all(b.outbox.pending() == 0 and b.uplink.stats()["inflight"] == 0 for b in boxes):
            if drain_s is None:
                drain_s = now - drain_started
            if now - drain_started >= opts.linger_s:
                break
        sweep = now >= next_sweep
        if sweep:
            next_sweep = now + SWEEP_S
        driver.turn(TICK_S, sweep)
        for b in boxes:  # commands keep arriving while draining
            produced[0] += b.produce(sim_end)
            if b.accepted:
                ledger.executemany("INSERT OR IGNORE INTO accepted VALUES(?,?,?,?,?,?)", b.accepted)
                b.accepted.clear()
        if now - last_progress >= 1.0:
            last_progress = now
            _progress(progress, boxes, sim_end, produced[0])
    _progress(progress, boxes, sim_end, produced[0])
    if drain_s is None:
        drain_s = time.monotonic() - drain_started
    summary: dict[str, Any] = {"worker": index, "drain_s": round(drain_s, 2), "driver_steps": driver.steps, "boxes": {}}
    for b in boxes:
        st = b.uplink.stats()
        summary["boxes"][b.device_id] = {
            "site": b.site_id, "last_seq": b.outbox.last_seq, "pending": st["outbox_pending"],
            "dropped": b.outbox.stats()["dropped_total"], "sent": st["sent"], "acked": st["acked"],
            "connects": st["reconnects"], "connect_failures": st["connect_failures"], "commands": b.commands,
            "held_back": getattr(b.outbox._shaper, "held_back", 0),
        }  # fmt: skip
    for b in boxes:
        b.uplink.stop(flush_timeout_s=0.5)
        b.outbox.close()
    if proxies is not None:
        time.sleep(0.2)
        for n, b in zip(numbers, boxes, strict=True):
            summary["boxes"][b.device_id]["wire"] = asdict(proxies.counts[f"box-{n}"])
        proxies.close()
    ledger.close()
    progress.close()
    (out / f"summary-{index}.json").write_text(json.dumps(summary))


def _progress(fh: Any, boxes: list[SimBox], sim_ts: float, produced: int) -> None:
    pending = 0
    backlog = 0
    connected = 0
    for b in boxes:
        p = b.outbox.pending()
        pending += p
        connected += 1 if b.uplink.connected else 0
        if p and b.outbox.stats()["oldest_age_s"] > BACKLOG_AGE_S:
            backlog += 1
    fh.write(json.dumps({"t": round(time.time(), 3), "sim_ts": round(sim_ts, 1), "boxes": len(boxes), "connected": connected,
                         "pending": pending, "backlog_boxes": backlog, "produced": produced}) + "\n")  # fmt: skip


def run_fleet(opts: FleetOptions) -> dict[str, Any]:
    """Run the fleet to the end of the simulated period and the drain; the merged summary."""
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    procs = opts.procs or max(1, os.cpu_count() or 1)
    procs = min(procs, opts.boxes)
    numbers = list(range(1, opts.boxes + 1))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(opts, k, numbers[k::procs]), name=f"fleet-{k}") for k in range(procs)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise
    merged: dict[str, Any] = {"boxes": {}, "workers": []}
    for k, w in enumerate(workers):
        path = out / f"summary-{k}.json"
        if w.exitcode != 0 or not path.exists():
            raise RuntimeError(f"fleet worker {k} failed (exit code {w.exitcode}); see its log above")
        s = json.loads(path.read_text())
        merged["boxes"].update(s.pop("boxes"))
        merged["workers"].append(s)
    b = merged["boxes"].values()
    merged["totals"] = {
        "boxes": len(merged["boxes"]),
        "events": sum(x["last_seq"] for x in b),
        "pending": sum(x["pending"] for x in b),
        "dropped": sum(x["dropped"] for x in b),
        "connects": sum(x["connects"] for x in b),
        "ack_task_received": sum(x["commands"].get("ack_task", 0) for x in b),
        "drain_s": max(w["drain_s"] for w in merged["workers"]),
    }
    return merged


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def cmd_fleet(args: argparse.Namespace) -> int:
    host, port = args.broker
    for s in args.site or DEFAULT_SITES:
        if not Path(s).is_file():
            print(f"error: --site {s}: no such file (give a site config such as configs/bike-bay.yaml)")
            return 2
    opts = FleetOptions(
        boxes=args.boxes, host=host, port=port, out=args.out, sites=args.site or list(DEFAULT_SITES),
        procs=args.procs, sim_seconds=args.sim_seconds, speed=args.speed, start=args.start, prefix=args.prefix,
        password=os.environ.get("FLEET_MQTT_PASSWORD"), tls_dir=args.tls_dir,
        reconnect_window_s=args.reconnect_window, drain_timeout_s=args.drain_timeout, count_bytes=args.count_bytes,
        linger_s=args.linger,
        validate=not args.no_validate, seed=args.seed,
    )  # fmt: skip
    summary = run_fleet(opts)
    print(json.dumps(summary["totals"] if not args.per_box else summary, indent=1))
    return 0 if summary["totals"]["pending"] == 0 else 3


def register(sub: Any) -> None:
    p = sub.add_parser("fleet", help="N simulated boxes (the agent's builder, outbox and uplink) against a real broker")
    p.add_argument("--boxes", type=int, default=10, help="how many boxes")
    p.add_argument("--broker", type=_broker, required=True, help="HOST:PORT of the MQTT 5 broker")
    p.add_argument("--site", action="append", default=[], help="site config(s) the boxes are made from, round-robin (default: the three examples)")
    p.add_argument("--out", default="fleet-out", help="directory for outboxes, ledgers, progress and summaries")
    p.add_argument("--procs", type=int, default=0, help="worker processes (default: one per core)")
    p.add_argument("--sim-seconds", type=float, default=3600.0, help="simulated period (event time)")
    p.add_argument("--speed", type=float, default=60.0, help="event time runs this many times faster than real time")
    p.add_argument("--start", default="2026-11-23T07:30:00+08:00", help="simulated start (ISO time with offset)")
    p.add_argument("--prefix", default="edge", help="topic prefix")
    p.add_argument("--tls-dir", help="directory with ca.pem and DEVICE.pem/DEVICE.key per box (mutual TLS)")
    p.add_argument("--reconnect-window", type=float, help="override uplink.mqtt.reconnect_window_s")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for outboxes to empty at the end")
    p.add_argument("--linger", type=float, default=0.0, help="seconds the boxes stay online after draining (late commands)")
    p.add_argument("--count-bytes", action="store_true", help="relay each box through a byte-counting proxy")
    p.add_argument("--no-validate", action="store_true", help="skip the payload schema check in the builder (saves CPU)")
    p.add_argument("--per-box", action="store_true", help="print every box's summary, not only the totals")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_fleet)
