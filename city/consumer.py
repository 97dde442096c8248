"""The reference city consumer: shared subscriptions in, a database out, dispatch tasks acknowledged.

    python -m city consume --broker HOST:PORT --group G --db sqlite:///events.db [--client-id ID]

* Subscribes with MQTT 5 shared subscriptions (``$share/G/{prefix}/+/+/events/+`` and the features,
  health, status and command-reply topics), so several consumer processes in group G split the load.
  Each instance keeps a fixed client id and a persistent session: messages the broker routed to an
  instance that died wait in its session until it comes back.
* Every message is inflated if compressed (MQTT 5 content type ``application/zlib``), parsed and
  checked against the published ``edge.event/1`` schema; a batch is stored in one transaction
  (dedupe on ``event_id``, per-device seq bookkeeping), and only then acknowledged to the broker. A
  consumer killed mid-batch gets the whole batch again; the duplicates are dropped by ``event_id``.
* A new ``dispatch_task`` opening (phase ``start``) is acknowledged to its box with an ``ack_task``
  command on ``{prefix}/{site}/{device}/cmd/ack_task``; the command is recorded in the same
  transaction as the event and resent until the broker acknowledges it; the box's reply is stored.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from city.mqtt import BrokerAddress, ConsumerSession, Incoming, Link, Published, SessionEvent
from city.store import NewEvent, Store
from edge.events.schema import EventValidationError, validate_event
from edge.uplink.shaping import decode_from_wire

log = logging.getLogger(__name__)
BATCH_MAX = 500
LOOP_WAIT_S = 0.05
RESEND_EVERY_S = 5.0
ORPHAN_AFTER_S = 30.0
MAX_COMMAND_ATTEMPTS = 10
STATS_EVERY_S = 30.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
CONNACK_TIMEOUT_S = 15.0


@dataclass
class ConsumerConfig:
    broker: BrokerAddress
    group: str
    db_url: str
    client_id: str
    prefix: str = "edge"
    validate: bool = True
    ack_tasks: bool = True
    acked_by: str = ""
    session_expiry_s: int = 7 * 86400
    reply_timeout_s: float = 60.0

    def subscriptions(self) -> list[str]:
        p = self.prefix
        return [
            f"$share/{self.group}/{p}/+/+/events/+",
            f"$share/{self.group}/{p}/+/+/features/+",
            f"$share/{self.group}/{p}/+/+/health",
            f"$share/{self.group}/{p}/+/+/status",
            f"$share/{self.group}/{p}/+/+/cmd/+/reply",
        ]


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    commands_sent: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def parse_event(payload: bytes, *, validate: bool) -> NewEvent:
    """The event in a message body. Raises ValueError naming the problem."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    if validate:
        try:
            validate_event(doc)
        except EventValidationError as exc:
            raise ValueError(str(exc)) from None
    try:
        return NewEvent(
            event_id=str(doc["event_id"]),
            device_id=str(doc["device_id"]),
            site_id=str(doc["site_id"]),
            seq=int(doc["seq"]),
            kind=str(doc["kind"]),
            phase=str(doc["phase"]),
            severity=str(doc["severity"]),
            incident_id=str(doc["incident_id"]),
            camera_id=doc.get("camera_id"),
            zone_id=doc.get("zone_id"),
            ts=str(doc["ts"]),
            envelope=payload.decode("utf-8"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"envelope field missing or malformed: {exc}") from None


class CityConsumer:
    """One consumer instance. ``run()`` until ``stop()`` (or SIGTERM/SIGINT from the CLI)."""

    def __init__(self, cfg: ConsumerConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.db_url)
        self.counters = Counters()
        self._events: queue.SimpleQueue[SessionEvent] = queue.SimpleQueue()
        self.session = ConsumerSession(
            cfg.broker, cfg.client_id, cfg.subscriptions(), self._events, session_expiry_s=cfg.session_expiry_s,
            receive_max=BATCH_MAX,
        )  # fmt: skip
        self._stop = False
        self._cmd_mids: dict[int, str] = {}  # publish mid -> command_id (this connection)
        self._pending_acks: list[str] = []
        self._next_resend = 0.0
        self._next_stats = time.monotonic() + STATS_EVERY_S
        self._attempt = 0
        self._next_connect = 0.0
        self._connect_started = 0.0

    def stop(self) -> None:
        self._stop = True

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> Counters:
        with self.store.transaction():
            self.store.bump_stats(self.cfg.client_id, time.time(), starts=1)
        log.info(
            "consumer %s: group %s, broker %s:%d, database %s",
            self.cfg.client_id, self.cfg.group, self.cfg.broker.host, self.cfg.broker.port, self.store.kind,
        )  # fmt: skip
        try:
            while not self._stop:
                self.step()
        finally:
            self.session.close()
            self.store.close()
        return self.counters

    def step(self) -> None:
        now = time.monotonic()
        if self.session.connecting and now - self._connect_started > CONNACK_TIMEOUT_S:
            self.session.close()
            self.session.connecting = False
            self._connect_failed("no CONNACK from the broker")
            return
        if not self.session.connected and not self.session.connecting:
            if now < self._next_connect:
                time.sleep(min(LOOP_WAIT_S, self._next_connect - now))
                self._drain_events()
                return
            try:
                self._connect_started = now
                self.session.connect()
            except OSError as exc:
                self.session.connecting = False
                self._connect_failed(f"cannot reach {self.cfg.broker.host}:{self.cfg.broker.port} ({exc})")
                return
        if not self.session.loop(LOOP_WAIT_S):
            self._connect_failed("connection lost")
        self._drain_events()
        if self.session.connected and now >= self._next_resend:
            self._resend_commands()
            self._next_resend = now + RESEND_EVERY_S
        if now >= self._next_stats:
            self._next_stats = now + STATS_EVERY_S
            log.info("consumer %s: %s", self.cfg.client_id, self.stats_line())

    def _connect_failed(self, reason: str) -> None:
        delay = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** min(self._attempt, 10))
        self._attempt += 1
        self._cmd_mids.clear()
        self._next_connect = time.monotonic() + delay
        log.warning("consumer %s: %s; retrying in %.1f s", self.cfg.client_id, reason, delay)

    def stats_line(self) -> str:
        c = self.counters
        return (
            f"received={c.received} stored={c.stored} duplicates={c.duplicates} rejected={c.rejected} "
            f"commands_sent={c.commands_sent}"
        )

    def _drain_events(self) -> None:
        batch: list[Incoming] = []
        acked: list[str] = []
        while len(batch) < BATCH_MAX:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(ev, Incoming):
                batch.append(ev)
            elif isinstance(ev, Published):
                cid = self._cmd_mids.pop(ev.mid, None)
                if cid is not None and ev.ok:
                    acked.append(cid)
            elif isinstance(ev, Link):
                if ev.up:
                    self._attempt = 0
                    self._cmd_mids.clear()
                    self._next_resend = 0.0
                    log.info("consumer %s: %s", self.cfg.client_id, ev.reason)
                else:
                    log.warning("consumer %s: disconnected (%s)", self.cfg.client_id, ev.reason)
        if batch or acked:
            self._handle(batch, acked)

    # ---- one batch: one transaction, then the acknowledgements --------------------------------------
    def _handle(self, batch: list[Incoming], acked_commands: list[str]) -> None:
        now = time.time()
        new_commands: list[tuple[str, str, str]] = []
        events: list[NewEvent] = []
        rejects: list[tuple[Incoming, str]] = []
        statuses: list[tuple[str, str, str]] = []
        replies: list[tuple[str, bool, str]] = []
        for msg in batch:
            parts = msg.topic.split("/")
            try:
                body = decode_from_wire(msg.payload, msg.content_type)
            except ValueError as exc:
                rejects.append((msg, str(exc)))
                continue
            if msg.topic.endswith("/status") and len(parts) >= 4:
                statuses.append((parts[-2], parts[-3], body.decode("utf-8", "replace")[:32]))
            elif len(parts) >= 3 and parts[-3] == "cmd" and parts[-1] == "reply":
                try:
                    doc = json.loads(body)
                    replies.append((str(doc.get("id")), bool(doc.get("ok")), body.decode("utf-8")))
                except (ValueError, UnicodeDecodeError, AttributeError) as exc:
                    rejects.append((msg, f"command reply is not JSON: {exc}"))
            else:
                try:
                    events.append(parse_event(body, validate=self.cfg.validate))
                except ValueError as exc:
                    rejects.append((msg, str(exc)))
        with self.store.transaction():
            stored = self.store.add_events(events, self.cfg.client_id, now) if events else []
            for s in stored:
                if s.new and self.cfg.ack_tasks and s.event.kind == "dispatch_task" and s.event.phase == "start":
                    cmd = self._ack_command(s.event, now)
                    if cmd is not None:
                        new_commands.append(cmd)
            for device_id, site_id, status in statuses:
                self.store.set_status(device_id, site_id, status, now)
            for cid, ok, text in replies:
                self.store.command_reply(cid, ok, text, now)
            for cid in acked_commands:
                self.store.command_acked(cid, now)
            for msg, reason in rejects:
                self.store.reject(self.cfg.client_id, msg.topic, reason, msg.payload, now)
            n_new = sum(1 for s in stored if s.new)
            counts = {
                "received": len(batch), "stored": n_new, "duplicates": len(stored) - n_new,
                "rejected": len(rejects), "commands_sent": len(new_commands),
            }  # fmt: skip
            self.store.bump_stats(self.cfg.client_id, now, **counts)
        # Committed: only now may the broker forget these messages.
        for msg in batch:
            self.session.ack(msg)
        c = self.counters
        c.received += len(batch)
        c.stored += counts["stored"]
        c.duplicates += counts["duplicates"]
        c.rejected += len(rejects)
        for msg, reason in rejects:
            log.warning("consumer %s: rejected a message on %s: %s", self.cfg.client_id, msg.topic, reason)
        self._send_commands(new_commands)

    def _ack_command(self, ev: NewEvent, now: float) -> tuple[str, str, str] | None:
        try:
            task_id = json.loads(ev.envelope)["payload"]["task_id"]
        except (KeyError, TypeError, ValueError):
            return None
        cid = f"ack-{ev.event_id}"
        base = "/".join([self.cfg.prefix, ev.site_id, ev.device_id])
        topic = f"{base}/cmd/ack_task"
        body = {"id": cid, "task_id": str(task_id), "by": self.cfg.acked_by or f"city:{self.cfg.group}"}
        payload = json.dumps(body, separators=(",", ":"))
        if not self.store.add_command(cid, ev.device_id, "ack_task", topic, payload, ev.event_id, self.cfg.client_id, now):
            return None
        return cid, topic, payload

    def _send_commands(self, commands: list[tuple[str, str, str]]) -> None:
        """Publish commands (QoS 1); each is resent until the box replies (see ``commands_to_send``)."""
        if not commands or not self.session.connected:
            return  # sent by _resend_commands after the reconnect
        sent: list[str] = []
        for cid, topic, payload in commands:
            mid = self.session.publish(topic, payload.encode(), qos=1)
            if mid is not None:
                self._cmd_mids[mid] = cid
                sent.append(cid)
        self.counters.commands_sent += len(sent)
        now = time.time()
        with self.store.transaction():
            for cid in sent:
                self.store.command_sent(cid, now)

    def _resend_commands(self) -> None:
        waiting = set(self._cmd_mids.values())
        todo = self.store.commands_to_send(
            self.cfg.client_id, ORPHAN_AFTER_S, self.cfg.reply_timeout_s, MAX_COMMAND_ATTEMPTS, time.time()
        )
        self._send_commands([c for c in todo if c[0] not in waiting])


def serve(cfg: ConsumerConfig) -> int:
    """Run a consumer until SIGTERM/SIGINT; prints its counters as one JSON line at the end."""
    consumer = CityConsumer(cfg)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: consumer.stop())
    counters = consumer.run()
    print(json.dumps({"consumer": cfg.client_id, **{k: v for k, v in vars(counters).items() if k != "extra"}}), flush=True)
    return 0


def stats_of(store: Store) -> dict[str, Any]:
    """Totals a test or an operator wants at a glance."""
    q = store.query
    return {
        "events": int(q("SELECT COUNT(*) FROM events")[0][0]),
        "devices": int(q("SELECT COUNT(*) FROM devices")[0][0]),
        "duplicates": int(q("SELECT COALESCE(SUM(duplicates),0) FROM devices")[0][0]),
        "late": int(q("SELECT COALESCE(SUM(late),0) FROM devices")[0][0]),
        "gaps_opened": int(q("SELECT COALESCE(SUM(gaps_opened),0) FROM devices")[0][0]),
        "gaps_open": int(q("SELECT COUNT(*) FROM seq_gaps")[0][0]),
        "seq_conflicts": int(q("SELECT COALESCE(SUM(seq_conflicts),0) FROM devices")[0][0]),
        "rejected": int(q("SELECT COUNT(*) FROM rejects")[0][0]),
        "commands": int(q("SELECT COUNT(*) FROM commands")[0][0]),
        "commands_replied_ok": int(q("SELECT COUNT(*) FROM commands WHERE reply_ok=1")[0][0]),
    }
