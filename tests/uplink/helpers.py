"""Test-side helpers: a recording MQTT consumer (a platform), a TCP proxy that can cut the network,
and a runner for the selftest producer process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.uplink.shaping import decode_from_wire

REPO = Path(__file__).resolve().parents[2]


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll a condition that depends on other processes (the broker, the producer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Consumer:
    """Subscribes with a persistent MQTT 5 session and records every message."""

    host: str
    port: int
    topic: str = "edge/#"
    client_id: str = "test-consumer"
    tls: tuple[str, str, str] | None = None  # (ca, cert, key)
    messages: list[tuple[str, bytes, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)
    content_types: list[str | None] = field(default_factory=list)

    def start(self) -> Consumer:
        c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if self.tls:
            c.tls_set(ca_certs=self.tls[0], certfile=self.tls[1], keyfile=self.tls[2])
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(self.topic, qos=1)
        c.on_subscribe = lambda cl, u, mid, rcs, p: self.subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect_async(self.host, self.port, keepalive=10, clean_start=False, properties=props)
        c.loop_start()
        self.client = c
        wait_until(self.subscribed.is_set, 10, "the consumer to subscribe")
        return self

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        ctype = getattr(msg.properties, "ContentType", None) if msg.properties is not None else None
        body = decode_from_wire(bytes(msg.payload), ctype)  # features/health arrive zlib-compressed
        with self.lock:
            self.messages.append((msg.topic, body, time.time()))
            self.content_types.append(ctype)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            msgs = list(self.messages)
        out = []
        for topic, payload, _ in msgs:
            if "/events/" in topic or "/features/" in topic or topic.endswith("/health"):
                out.append(json.loads(payload))
        return out

    def unique_seqs(self) -> dict[int, str]:
        """seq -> event_id, after removing duplicates by event_id; asserts one event_id per seq."""
        seen: dict[int, str] = {}
        for ev in self.events():
            prev = seen.setdefault(ev["seq"], ev["event_id"])
            assert prev == ev["event_id"], f"seq {ev['seq']} carried two different events"
        return seen

    def on_topic(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]


class TcpProxy:
    """A TCP proxy on 127.0.0.1 that the test can cut (drop every connection, refuse new ones)
    and restore: a network outage between the box and the broker."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self.blackholed = False
        self.dead: set[int] = set()  # fileno of client sockets whose traffic is silently dropped
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            key = id(client)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, key), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, key: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or not self.up:
                    break
                if self.blackholed or key in self.dead:
                    self.dead.add(key)  # this connection never carries a byte again (NAT state lost)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns.clear()

    def blackhole(self) -> None:
        """Silently drop every byte on current and new connections, closing nothing: a dead cellular
        link. Only keepalive can tell."""
        self.blackholed = True

    def restore(self) -> None:
        self.up = True
        self.blackholed = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def uplink_json(tmp: Path, port: int | None, **mqtt: Any) -> str:
    cfg: dict[str, Any] = {"outbox_path": str(tmp / "outbox.sqlite"), "group_commit_s": 0.02}
    if port is not None:
        cfg["mqtt"] = {"host": "127.0.0.1", "port": port, "backoff_min_s": 0.1, "backoff_max_s": 0.5, **mqtt}
    return json.dumps(cfg)


def producer(uplink: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "edge.uplink.selftest", "--uplink", uplink, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
