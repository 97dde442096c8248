"""Reading the broker as Home Assistant does: discovery configs under the discovery prefix, then the
state and availability topics they name, with the value templates rendered by Jinja2 (Home
Assistant's template engine, in its sandbox)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from jinja2.sandbox import ImmutableSandboxedEnvironment
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.uplink.helpers import wait_until

DISCOVERY_TOPIC = re.compile(
    r"^homeassistant/(?P<component>sensor|binary_sensor)/(?P<node>[a-zA-Z0-9_-]+)/(?P<object>[a-zA-Z0-9_-]+)/config$"
)
_JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes) -> str:
    """A value template rendered as Home Assistant renders it (``value`` and ``value_json``)."""
    text = payload.decode()
    try:
        value_json: Any = json.loads(text)
    except ValueError:
        value_json = None
    return _JINJA.from_string(template).render(value=text, value_json=value_json).strip()


@dataclass
class Recorder:
    """A live subscriber: every message with its retain flag and arrival time."""

    port: int
    filters: tuple[str, ...]
    client_id: str = "ha-live"
    messages: list[tuple[str, bytes, bool, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Recorder:
        done = threading.Event()
        c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(t, 1) for t in self.filters])
        c.on_subscribe = lambda cl, u, mid, rcs, p: done.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        self.client = c
        wait_until(done.is_set, 10, "the recorder to subscribe")
        return self

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    def latest(self) -> dict[str, bytes]:
        """The last payload seen on each topic (retained or live): what a subscriber holds now;
        topics whose last message was empty (a cleared retained message) are left out."""
        out: dict[str, bytes] = {}
        with self.lock:
            for t, p, _, _ in self.messages:
                out[t] = p
        return {t: p for t, p in out.items() if p}

    def on(self, topic: str) -> list[tuple[bytes, float]]:
        with self.lock:
            return [(p, t) for tp, p, _, t in self.messages if tp == topic]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, *filters: str, settle_s: float = 0.3) -> dict[str, bytes]:
    """What a client connecting now receives as retained messages (what Home Assistant sees when it
    starts): topic -> payload."""
    rec = Recorder(port, filters, client_id=f"ha-snapshot-{time.monotonic_ns()}").start()
    last = -1
    while True:
        time.sleep(settle_s)
        with rec.lock:
            n = len(rec.messages)
        if n == last:
            break
        last = n
    rec.stop()
    with rec.lock:
        return {t: p for t, p, r, _ in rec.messages if r}


def discovery_configs(snapshot: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """The discovery configs in a retained snapshot (every topic checked against HA's topic format)."""
    out: dict[str, dict[str, Any]] = {}
    for topic, payload in snapshot.items():
        if not topic.startswith("homeassistant/"):
            continue
        assert DISCOVERY_TOPIC.match(topic), (
            f"{topic} does not follow <prefix>/<component>/<node_id>/<object_id>/config"
        )
        out[topic] = json.loads(payload)
    return out
