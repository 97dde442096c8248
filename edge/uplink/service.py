"""``Uplink``: one thread that drains the outbox to the broker (or the JSONL sink), handles
commands, the retained status, reconnection with jittered backoff and the fallback link.

Delivery is at-least-once: a row is deleted only after its PUBACK, matched through a
per-connection mid -> row map that is dropped with the connection (mids are not durable);
whatever is left is sent again on the next connection or after a restart.

Commands get exactly one reply each and never cost the session: each is acknowledged to the broker
only once handled (manual acks, MQTT 5 Receive Maximum), and the uplink stops taking new ones while
replies or commands for the runner pile up, so the broker holds the rest instead of a queue dropping
them. Limits (retained, repeats, rate, size, depth, schema) are in ``edge.uplink.intake``.

Besides the outbox, the uplink carries "latest value" messages (``publish_latest``: the retained state
topics and Home Assistant discovery): memory only, one per topic, the newest replacing an unsent
older one, sent while connected and all of them again on every (re)connect, before the status goes
``online``. They never wait in the outbox, so a state is never replayed after an outage as if current.

One ``Uplink`` normally runs its own thread (``start()``). A fleet simulator that runs hundreds of
boxes in one process calls ``start(thread=False)`` instead and drives each uplink with ``step(0)``
from one thread, waiting on ``wait_handles()`` of all of them between steps; the behaviour per box
(session, outbox, backoff, commands) is the same code either way.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from edge.config.uplink import UplinkConfig
from edge.errors import UplinkError
from edge.events.builder import utc_ms
from edge.events.commands import Command
from edge.events.priority import Priority
from edge.events.topics import Topics
from edge.ports import FallbackLink
from edge.uplink.intake import CommandIntake, Refusal, Repeat
from edge.uplink.mqtt import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    Connected,
    Disconnected,
    Message,
    PahoSession,
    PubAck,
    SessionEvent,
)
from edge.uplink.outbox import Outbox, OutboxError, OutboxRow
from edge.uplink.shaping import encode_for_wire

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.01
REPLY_BACKLOG_MAX = 500  # replies waiting for the socket: take no new command beyond this
MAX_PENDING_COMMANDS = 100  # commands waiting for the runner: take no new command beyond this
INBOX_QOS0_MAX = 1000  # QoS 0 commands cannot be flow-controlled: beyond this many waiting, counted and dropped
FALLBACK_RETRY_S = 5.0
STEP_ERROR_PAUSE_S = 0.5


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped at ``max_s``."""
    base = min(max_s, min_s * (2 ** min(attempt, 30)))
    return base / 2 + rng.uniform(0, base / 2)


def reconnect_round(
    now: float, prev_end: float, prev_width: float, window_s: float, max_s: float, rng: random.Random
) -> tuple[float, float, float]:
    """(delay, round end, round width) of the next attempt after a lost connection.

    Every box that lost the broker at the same moment shares the rounds: round 0 is ``window_s``
    from the loss (``prev_end`` = loss time, ``prev_width`` = 0), each later round starts where the
    last ended and is twice as wide, capped at ``max_s``; each box tries once per round at a uniform
    random time in it. However long the outage, a broker coming back sees about N / width connects
    per second, at most N / ``window_s``: never the spike of N boxes retrying on the same schedule."""
    width = window_s if prev_width <= 0 else min(prev_width * 2, max_s)
    start = max(prev_end, now)
    return start - now + rng.uniform(0.0, width), start + width, width


class Uplink:
    """Drains ``outbox`` to MQTT (``cfg.mqtt``) or, with no broker, to the JSONL sink."""

    def __init__(
        self,
        cfg: UplinkConfig,
        device_id: str,
        site_id: str,
        outbox: Outbox,
        fallback: FallbackLink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.topic_prefix, site_id, device_id)
        self.outbox = outbox
        self.fallback = fallback
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._mcfg = cfg.mqtt
        self._client_id = (
            self._mcfg.client_id if self._mcfg and self._mcfg.client_id else f"edge-{site_id}-{device_id}"
        )
        self._events: queue.SimpleQueue[SessionEvent] = queue.SimpleQueue()
        self._session: PahoSession | None = None
        self._connected = False
        self._connect_started = 0.0
        self._attempt = 0
        self._next_attempt = 0.0
        self._down_since: float | None = clock()
        self._inflight: dict[int, OutboxRow] = {}
        self._held: dict[int, float] = {}  # row id -> retry time (rejected by the broker)
        # Bounded by taking no new command while they are long (see _take_commands), never by dropping.
        self._replies: collections.deque[tuple[str, bytes]] = collections.deque()
        self._cmd_lock = threading.Lock()
        self._commands: collections.deque[Command] = collections.deque()
        self._inbox: collections.deque[Message] = collections.deque()  # received, not yet handled nor acked
        self._intake = CommandIntake(
            max_bytes=self._mcfg.command_max_bytes if self._mcfg else 65536,
            rate_per_s=self._mcfg.command_rate_per_s if self._mcfg else 5.0,
            burst=self._mcfg.command_burst if self._mcfg else 20,
            clock=clock,
        )
        self._stop_reason: tuple[str, str] = ("stopped", "")
        self._wake = threading.Event()
        # A socketpair wakes the network wait as soon as a commit makes rows available.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: IO[bytes] | None = None
        self._fallback_next = 0.0
        self._status_mid: int | None = None
        self._status_acked = threading.Event()
        self.counters: dict[str, int] = collections.defaultdict(int)
        self.last_error = ""
        self._compress = frozenset(cfg.compress)
        self._dirty = True  # the outbox may have rows not yet looked at (set by commits and acks)
        self._paused_until = 0.0  # after a failed step
        self._driven = False
        self._was_connected = False
        self._round: tuple[float, float] | None = None  # (end, width) of the current reconnect round
        # Latest-value messages (publish_latest): topic -> payload; b"" clears a retained message and is
        # forgotten once sent. _latest_dirty: topics to send, in order. _latest_mids: per connection.
        self._latest_lock = threading.Lock()
        self._latest: dict[str, bytes] = {}
        self._latest_dirty: dict[str, None] = {}
        self._latest_mids: dict[int, str] = {}
        self._latest_refused: set[str] = set()  # topic families the broker refused (ACL): not sent again
        self._latest_ok: set[str] = set()  # topic families the broker has acknowledged at least once
        self._latest_suspect: collections.Counter[str] = collections.Counter()  # lost connections while unacked
        outbox.add_listener(self._poke)

    def _poke(self) -> None:
        """Wake the uplink thread (called after outbox commits; only sets a flag and writes a byte)."""
        self._dirty = True
        self._wake.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:  # buffer full: a wake-up is already pending
            pass

    # ---- public API ---------------------------------------------------------------------------
    def start(self, *, thread: bool = True) -> None:
        """Start sending. ``thread=False``: the caller drives this uplink with ``step()`` from its own
        thread (and must not call ``step()`` from any other)."""
        if self._thread is not None or self._driven:
            return
        path = self.cfg.sink_path
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._sink = open(path, "ab")
        if thread:
            self._thread = threading.Thread(target=self._run, name="edge-uplink", daemon=True)
            self._thread.start()
        else:
            self._driven = True
        log.info(
            "uplink started: %s",
            f"broker {self._mcfg.host}:{self._mcfg.effective_port}" if self._mcfg else f"JSONL sink {path}",
        )

    def stop(self, flush_timeout_s: float = 5.0, *, reason: str = "stopped", detail: str = "") -> bool:
        """Drain what can be sent within ``flush_timeout_s``, publish ``offline`` on the status topic
        (with ``reason`` and ``detail`` retained on ``.../status/reason``) and disconnect.
        True if the outbox was empty at the end."""
        self._stop_reason = (reason, detail)
        if self._driven:  # called from the driving thread: drain here, then shut down
            self.outbox.flush()
            self._draining.set()
            deadline = time.monotonic() + flush_timeout_s
            while time.monotonic() < deadline and (
                self.outbox.pending() or self._inflight or (self._latest_dirty and self._connected)
            ):
                self.step(IDLE_WAIT_S)
            self._stop.set()
            self._shutdown()
            self._driven = False
        elif self._thread is None:
            return self.outbox.stats()["pending"] == 0
        else:
            self.outbox.flush()
            self._draining.set()
            deadline = time.monotonic() + flush_timeout_s  # real time: the caller's budget
            while time.monotonic() < deadline and self._thread.is_alive():
                busy = self._replies or self._latest_dirty
                if self.outbox.pending() == 0 and not self._inflight and not (busy and self._connected):
                    break
                time.sleep(0.01)
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=max(2.0, flush_timeout_s))
            self._thread = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        drained = self.outbox.stats()["pending"] == 0
        log.info("uplink stopped (outbox %s)", "empty" if drained else "not empty; resent at next start")
        return bool(drained)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def brokered(self) -> bool:
        """True when this uplink talks to a broker (False: the JSONL sink only)."""
        return self._mcfg is not None

    def publish_latest(self, topic: str, payload: bytes) -> None:
        """Hand a retained "latest value" message to the uplink (QoS 1, retained); ``b""`` clears the
        retained message on ``topic``. Never blocks: it replaces any unsent value for the topic and is
        sent by the uplink thread while connected, and again after every reconnect. Not durable: a
        restart forgets it (the caller publishes the current state again)."""
        with self._latest_lock:
            if self._latest_family(topic) in self._latest_refused:
                return
            if self._latest.get(topic) == payload and (payload or topic in self._latest_dirty):
                return
            self._latest[topic] = payload
            self._latest_dirty[topic] = None
        self._poke()

    def _latest_family(self, topic: str) -> str:
        """What an ACL typically allows or refuses as a whole: the box's own ``{base}/{level}`` (its state
        topics), else the first level (a discovery prefix such as ``homeassistant``)."""
        base = self.topics.base + "/"
        if topic.startswith(base):
            return base + topic[len(base) :].split("/", 1)[0]
        return topic.split("/", 1)[0]

    def latest_pending(self) -> set[str]:
        """Topics whose latest value has not been handed to the broker connection yet."""
        with self._latest_lock:
            return set(self._latest_dirty)

    def poll_commands(self) -> list[Command]:
        """Validated commands for the runner, oldest first (ping is answered here)."""
        with self._cmd_lock:
            out = list(self._commands)
            self._commands.clear()
        return out

    def reply(
        self, cmd: Command, *, ok: bool, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Answer a command on ``.../cmd/{name}/reply`` (queued; sent by the uplink thread)."""
        self._queue_reply(cmd.name, cmd.id, ok=ok, result=result, error=error)

    def stats(self) -> dict[str, Any]:
        ob = self.outbox.stats()
        down = self._down_since
        return {
            "mode": "mqtt" if self._mcfg else "jsonl",
            "connected": self._connected,
            "disconnected_for_s": 0.0 if down is None else max(0.0, self._clock() - down),
            "inflight": len(self._inflight),
            "sent": self.counters["sent"],
            "acked": self.counters["acked"],
            "rejected": self.counters["rejected"],
            "unrouted": self.counters["unrouted"],
            "reconnects": self.counters["connects"],
            "connect_failures": self.counters["connect_failures"],
            "fallback_sent": self.counters["fallback_sent"],
            "fallback_failed": self.counters["fallback_failed"],
            "commands_ok": self.counters["commands_ok"],
            "commands_rejected": self.counters["commands_rejected"],
            "commands_rate_limited": self.counters["commands_rate_limited"],
            "commands_repeated": self.counters["commands_repeated"],
            "commands_dropped": self.counters["commands_dropped"],
            "latest_sent": self.counters["latest_sent"],
            "latest_rejected": self.counters["latest_rejected"],
            "latest_pending": len(self._latest_dirty),
            "last_error": self.last_error,
            "outbox_pending": ob["pending"],
            "outbox_bytes": ob["bytes"],
            "outbox_oldest_age_s": ob["oldest_age_s"],
            "outbox_dropped": ob["dropped"],
            "outbox": ob,
        }

    # ---- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            pause = self._paused_until - self._clock()
            if pause > 0:
                self._stop.wait(pause)
                continue
            self.step()
        self._shutdown()

    def step(self, wait_s: float = IDLE_WAIT_S) -> None:
        """One turn of the uplink loop: commit, connect or pump the connection (waiting at most
        ``wait_s`` for traffic), send what the window allows, the fallback link. Never raises; after a
        failure the uplink pauses for ``STEP_ERROR_PAUSE_S``."""
        if self._clock() < self._paused_until:
            return
        try:
            self.outbox.commit_if_due()
            if self._mcfg is not None:
                self._step_mqtt(wait_s)
            else:
                self._step_sink(wait_s)
            self._step_fallback()
        except OutboxError as exc:  # the disk, not the broker: keep the session
            self._error(f"outbox: {exc}")
            self._paused_until = self._clock() + STEP_ERROR_PAUSE_S
        except Exception as exc:  # never let the uplink (or the fleet driver) die
            msg = f"uplink step failed: {exc}"
            if msg != self.last_error:
                log.exception("uplink step failed")
            self.last_error = msg
            self._drop_session()
            self._paused_until = self._clock() + STEP_ERROR_PAUSE_S

    def wait_handles(self) -> tuple[list[Any], list[Any]]:
        """(read, write) sockets a driver waits on before the next ``step(0)``: the wake-up socket
        (new outbox rows, replies) and the connection. A driver must also step every uplink now
        and then (timers: keepalive, reconnect, connect timeout)."""
        read: list[Any] = [self._wake_r]
        write: list[Any] = []
        if self._session is not None:
            sock = self._session.socket()
            if sock is not None:
                read.append(sock)
                if self._session.want_write():
                    write.append(sock)
        return read, write

    def _error(self, msg: str) -> None:
        if msg != self.last_error:
            log.warning("%s", msg)
        self.last_error = msg

    def _step_mqtt(self, wait_s: float = IDLE_WAIT_S) -> None:
        now = self._clock()
        if self._session is None:
            if now >= self._next_attempt:
                self._try_connect()
            elif wait_s > 0:
                self._wake.wait(min(wait_s * 5, max(0.0, self._next_attempt - now)))
                self._wake.clear()
            return
        if not self._connected and now - self._connect_started > self._mcfg.connect_timeout_s:  # type: ignore[union-attr]
            self._connect_failed("no CONNACK within connect_timeout_s")
            return
        alive = self._session.loop(wait_s, self._wake_r)
        self._wake.clear()
        self._handle_events()
        if not alive and self._session is not None:
            self._lost("connection lost")
            return
        if self._connected and self._session is not None:
            self._send_replies()
            self._send_latest()
            self._fill_window()

    def _try_connect(self) -> None:
        assert self._mcfg is not None
        self._connect_started = self._clock()
        try:
            self._session = PahoSession(self._mcfg, self._client_id, self.topics, self._events)
            self._session.connect()
        except UplinkError as exc:
            self._session = None
            self._connect_failed(str(exc))

    def _connect_failed(self, reason: str) -> None:
        assert self._mcfg is not None
        self.counters["connect_failures"] += 1
        self._drop_session()
        delay = self._retry_delay()
        self._next_attempt = self._clock() + delay
        self._error(f"{reason}; retrying in {delay:.1f} s")

    def _retry_delay(self) -> float:
        """When to try again: in shared reconnect rounds after an established connection was lost
        (``reconnect_round``), with the jittered exponential backoff before the first connection."""
        m = self._mcfg
        assert m is not None
        now = self._clock()
        if self._was_connected:
            self._was_connected = False
            self._round = (now, 0.0)
        window = min(m.reconnect_window_s, m.backoff_max_s)
        if self._round is None or window <= 0:
            delay = backoff_delay(self._attempt, m.backoff_min_s, m.backoff_max_s, self._rng)
            self._attempt += 1
            return delay
        delay, end, width = reconnect_round(now, *self._round, window, m.backoff_max_s, self._rng)
        self._round = (end, width)
        return delay

    def _lost(self, reason: str) -> None:
        # mosquitto closes the connection on a publish its ACL denies, and over TLS the "Not authorized"
        # PUBACK can be lost with it: a family never acknowledged that was in flight at two losses is refused.
        for family in {self._latest_family(t) for t in self._latest_mids.values()} - self._latest_ok:
            self._latest_suspect[family] += 1
            if self._latest_suspect[family] >= 2 and family not in self._latest_refused:
                self._refuse_latest(family + "/...", f"the connection was lost twice while sending it: {reason}")
        log.warning(
            "broker connection lost (%s); %d message(s) in flight will be resent", reason, len(self._inflight)
        )
        self._connect_failed(reason)

    def _drop_session(self) -> None:
        if self._session is not None:
            self._session.disconnect()
        self._session = None
        self._connected = False
        self._inflight.clear()
        self._inbox.clear()  # never acknowledged: the broker sends them again on the next connection
        self._status_mid = None
        self._latest_mids.clear()
        if self._down_since is None:
            self._down_since = self._clock()
        # Events of the dead connection must not be matched against the next one's mids.
        while True:
            try:
                self._events.get_nowait()
            except queue.Empty:
                break

    def _handle_events(self) -> None:
        acked: list[OutboxRow] = []
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(ev, PubAck):
                if ev.mid == self._status_mid:
                    self._status_acked.set()
                latest = self._latest_mids.pop(ev.mid, None)
                if latest is not None and not ev.ok:
                    self._refuse_latest(latest, ev.reason)
                elif latest is not None:
                    self._latest_ok.add(self._latest_family(latest))
                row = self._inflight.pop(ev.mid, None)
                if row is None:
                    continue
                if ev.ok and ev.no_subscribers and self._mcfg is not None and self._mcfg.unrouted_retry_s > 0:
                    # Accepted but delivered to no one (the platform's consumers are not subscribed):
                    # deleting it now would lose it for the platform, so it waits and goes again.
                    self.counters["unrouted"] += 1
                    self._held[row.id] = self._clock() + self._mcfg.unrouted_retry_s
                    self._error(
                        f"broker has no subscriber for {row.topic}; kept in the outbox and resent every "
                        f"{self._mcfg.unrouted_retry_s:g} s until the platform's consumer subscribes"
                    )
                elif ev.ok:
                    acked.append(row)
                else:
                    self.counters["rejected"] += 1
                    assert self._mcfg is not None
                    self._held[row.id] = self._clock() + self._mcfg.backoff_max_s
                    self._error(
                        f"broker rejected {row.topic} ({ev.reason}); kept in the outbox. "
                        f"The broker ACL must allow writes under {self.topics.base}/#"
                    )
            elif isinstance(ev, Message):
                if ev.qos == 0 and len(self._inbox) >= INBOX_QOS0_MAX:
                    self.counters["commands_dropped"] += 1
                    self._error(
                        f"QoS 0 command flood: {self.counters['commands_dropped']} command(s) dropped unanswered; "
                        "send commands with QoS 1 (they are flow-controlled, never dropped)"
                    )
                    continue
                self._inbox.append(ev)
            elif isinstance(ev, Connected):
                self._on_connected(ev)
            elif isinstance(ev, Disconnected):
                if self._session is not None:
                    self._lost(ev.reason)
                    break
        if acked:
            self._dirty = True  # room in the window
            self.outbox.ack([r.id for r in acked])
            self.counters["acked"] += len(acked)
            self._copy_to_sink(acked)
        self._take_commands()

    def _on_connected(self, ev: Connected) -> None:
        if not ev.ok:
            self._connect_failed(
                f"broker refused the connection ({ev.reason}); check credentials and certificates"
            )
            return
        assert self._session is not None
        self._connected = True
        self._was_connected = True
        self._round = None
        self._dirty = True
        self._attempt = 0
        self._down_since = None
        self.counters["connects"] += 1
        self._session.subscribe(self.topics.cmd_filter, qos=1)
        self._session.publish(self.topics.status_reason, b"", qos=1, retain=True)  # clears the last reason
        with self._latest_lock:  # the broker may hold stale retained values: every one goes again
            self._latest_dirty = dict.fromkeys(self._latest)
        self._send_latest()  # before "online", so an availability watcher never sees an old state as current
        self._status_mid = self._session.publish(self.topics.status, STATUS_ONLINE, qos=1, retain=True)
        log.info("connected to broker (session_present=%s)", ev.session_present)
        if self.last_error:
            self.last_error = ""

    def _fill_window(self) -> None:
        assert self._session is not None and self._mcfg is not None
        room = self._mcfg.inflight_max - len(self._inflight)
        if room <= 0:
            return
        now = self._clock()
        if self._held:
            n_held = len(self._held)
            self._held = {k: v for k, v in self._held.items() if v > now}
            if len(self._held) < n_held:
                self._dirty = True  # a rejected row may be retried
        if not self._dirty:
            return  # nothing committed or acknowledged since the last look: skip the query
        self._dirty = False
        exclude = {r.id for r in self._inflight.values()} | set(self._held)
        for row in self.outbox.peek(room, exclude=exclude):
            payload, ctype = encode_for_wire(row.kind, row.payload, self._compress)
            mid = self._session.publish(row.topic, payload, qos=1, content_type=ctype)
            if mid is None:
                self._dirty = True
                break
            self._inflight[mid] = row
            self.counters["sent"] += 1

    def _send_latest(self) -> None:
        """Hand the latest-value messages not yet sent to the connection, oldest first (retained, QoS 1)."""
        if not self._latest_dirty or self._session is None:
            return
        with self._latest_lock:
            todo = [(t, self._latest[t]) for t in self._latest_dirty]
        for topic, payload in todo:
            mid = self._session.publish(topic, payload, qos=1, retain=True)
            if mid is None:
                return  # the connection's queue is full: the rest go on a later step
            self._latest_mids[mid] = topic
            self.counters["latest_sent"] += 1
            with self._latest_lock:
                if self._latest.get(topic) == payload:  # not replaced meanwhile
                    self._latest_dirty.pop(topic, None)
                    if not payload:
                        del self._latest[topic]  # a clear is sent once, not after every reconnect

    def _refuse_latest(self, topic: str, reason: str) -> None:
        """The broker refused a latest-value message (its ACL; mosquitto also drops the connection): stop
        sending that whole family of topics until a restart, so a missing ACL line costs one reconnect, not
        a reconnect per topic forever while the events wait."""
        family = self._latest_family(topic)
        self.counters["latest_rejected"] += 1
        with self._latest_lock:
            self._latest_refused.add(family)
            for t in [t for t in self._latest if self._latest_family(t) == family]:
                del self._latest[t]
                self._latest_dirty.pop(t, None)
        log.error(
            "broker refused the retained %s (%s): nothing more is published under %s/ until a restart; "
            "the broker ACL must let this box write there (configs/mosquitto/edge.acl: state topics and "
            "Home Assistant discovery)",
            topic,
            reason,
            family,
        )
        self.last_error = f"broker refused {family}/... ({reason}); fix the broker ACL and restart"

    # ---- JSONL sink -----------------------------------------------------------------------------
    def _step_sink(self, wait_s: float = IDLE_WAIT_S) -> None:
        rows = self.outbox.peek(500)
        if not rows:
            if wait_s > 0:
                self._wake.wait(wait_s * 5)
                self._wake.clear()
            return
        self._write_sink(rows)
        self.outbox.ack([r.id for r in rows])
        self.counters["sent"] += len(rows)
        self.counters["acked"] += len(rows)

    def _write_sink(self, rows: list[OutboxRow]) -> None:
        if self._sink is None:
            return
        self._sink.write(b"".join(r.payload + b"\n" for r in rows))
        self._sink.flush()
        os.fsync(self._sink.fileno())

    def _copy_to_sink(self, rows: list[OutboxRow]) -> None:
        if self._sink is not None and self._mcfg is not None:
            try:
                self._write_sink(rows)
            except OSError as exc:
                self._error(f"JSONL copy {self.cfg.jsonl_path} failed: {exc}")

    # ---- fallback link --------------------------------------------------------------------------
    def _step_fallback(self) -> None:
        fb = self.fallback
        if fb is None or self._mcfg is None or self._down_since is None:
            return
        now = self._clock()
        if now - self._down_since < self._mcfg.fallback_after_s or now < self._fallback_next:
            return
        rows = self.outbox.peek(1, min_priority=Priority.ALARM)
        if not rows or not fb.available():
            return
        row = rows[0]
        try:
            ok = fb.send(row.topic, row.payload)
        except Exception as exc:  # a misbehaving modem must not stop the uplink
            ok = False
            self._error(f"fallback link failed: {exc}")
        if ok:
            self.outbox.ack([row.id], commit=True)
            self.counters["fallback_sent"] += 1
        else:
            self.counters["fallback_failed"] += 1
            self._fallback_next = now + FALLBACK_RETRY_S

    # ---- commands -------------------------------------------------------------------------------
    def _take_commands(self) -> None:
        """Handle received commands while there is room for their replies; each is acknowledged to
        the broker once handled. What stays in the inbox waits (the broker, seeing no PUBACK, sends
        no more than its Receive Maximum)."""
        while self._inbox and len(self._replies) < REPLY_BACKLOG_MAX and len(self._commands) < MAX_PENDING_COMMANDS:
            msg = self._inbox.popleft()
            try:
                self._on_command(msg)
            except Exception as exc:  # a bug handling one command must not cost the session or a reply
                log.exception("command on %s failed", msg.topic)
                name = self.topics.command_name(msg.topic) or "?"
                self._queue_reply(name, None, ok=False, error=f"internal error handling the command: {exc}")
            if self._session is not None:
                self._session.ack(msg.mid, msg.qos)

    def _on_command(self, msg: Message) -> None:
        name = self.topics.command_name(msg.topic)
        if name is None:
            return  # our own replies, or something outside .../cmd/{name}
        out = self._intake.receive(name, msg.payload, retain=msg.retain, received_ts=self._wall())
        if out is None:
            return
        if isinstance(out, Repeat):
            self.counters["commands_repeated"] += 1
            log.info("command %s id=%s repeated (redelivery or retry): not executed again", name, out.id)
            if out.reply is not None:
                self._replies.append((self.topics.reply(name), out.reply))
                self._poke()
            return
        if isinstance(out, Refusal):
            key = "commands_rate_limited" if "retry_after_s" in out.extra else "commands_rejected"
            self.counters[key] += 1
            if key == "commands_rejected" or self.counters[key] == 1:
                log.warning("command %s refused: %s", name, out.error[:300])
            self._queue_reply(name, out.id, ok=False, error=out.error, extra=out.extra)
            return
        cmd = out
        self.counters["commands_ok"] += 1
        log.info("command %s id=%s received", name, cmd.id)
        if name == "ping":
            st = self.outbox.stats()
            self._queue_reply(
                name,
                cmd.id,
                ok=True,
                result={
                    "pong": True,
                    "last_seq": st["last_seq"],
                    "outbox_pending": st["pending"],
                    "outbox_dropped": st["dropped"],
                },
            )
            return
        with self._cmd_lock:
            self._commands.append(cmd)

    def _queue_reply(
        self,
        name: str,
        req_id: str | None,
        *,
        ok: bool,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        doc: dict[str, Any] = {"id": req_id, "name": name[:64], "ok": ok, "ts": utc_ms(self._wall())}
        if result is not None:
            doc["result"] = result
        if error is not None:
            doc["error"] = error[:2048]
        if extra:
            doc.update(extra)
        payload = json.dumps(doc, separators=(",", ":")).encode()
        self._intake.remember(name, req_id, payload)
        self._replies.append((self.topics.reply(name), payload))
        self._poke()

    def _send_replies(self) -> None:
        assert self._session is not None
        while self._replies:
            topic, payload = self._replies[0]
            if self._session.publish(topic, payload, qos=1) is None:
                return
            self._replies.popleft()

    # ---- shutdown -------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        sess = self._session
        if sess is not None and self._connected:
            self._status_acked.clear()
            reason, detail = self._stop_reason
            why: dict[str, Any] = {"status": "offline", "reason": reason, "ts": utc_ms(self._wall())}
            if detail:
                why["detail"] = detail[:1024]
            sess.publish(self.topics.status_reason, json.dumps(why).encode(), qos=1, retain=True)
            self._status_mid = sess.publish(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
            deadline = self._clock() + 2.0
            while (
                self._status_mid is not None and not self._status_acked.is_set() and self._clock() < deadline
            ):
                if not sess.loop(IDLE_WAIT_S):
                    break
                self._handle_events()
        self._drop_session()
        try:
            self.outbox.flush()
        except UplinkError as exc:
            log.error("final outbox commit failed: %s", exc)
