"""The city side's paho adapter: the only module of ``city`` that imports paho.

``ConsumerSession`` is one persistent MQTT 5 session (fixed client id, ``clean_start=False``, a long
session expiry) that subscribes with shared subscriptions and acknowledges each message only when
the caller says so (``manual_ack``): a message is acknowledged after it is committed to the database,
so a consumer killed between receipt and commit gets it again. Callbacks only enqueue; the caller's
single thread pumps ``loop()`` and handles what was queued.

Acknowledgements carry the connection ``generation`` they belong to: a message received on a
connection that has since dropped is not acknowledged on the next one (its packet id means nothing
there; the broker redelivers it).
"""

from __future__ import annotations

import queue
import select
import ssl
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    content_type: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class Published:
    mid: int
    ok: bool


@dataclass(frozen=True, slots=True)
class Link:
    up: bool
    reason: str


SessionEvent = Incoming | Published | Link


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class ConsumerSession:
    """A persistent, manually acknowledging MQTT 5 session (not thread-safe: one thread drives it)."""

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        subscriptions: list[str],
        events: queue.SimpleQueue[SessionEvent],
        *,
        session_expiry_s: int = 7 * 86400,
        receive_max: int = 500,
        keepalive_s: int = 30,
    ) -> None:
        self.broker = broker
        self.subscriptions = subscriptions
        self.events = events
        self.session_expiry_s = session_expiry_s
        self.receive_max = receive_max
        self.keepalive_s = keepalive_s
        self.generation = 0
        self.connected = False  # CONNACK received on the current connection
        self.connecting = False  # CONNECT sent, CONNACK not yet seen
        c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        if broker.username is not None:
            c.username_pw_set(broker.username, broker.password)
        if broker.ca_file is not None:
            c.tls_set(
                ca_certs=broker.ca_file,
                certfile=broker.cert_file,
                keyfile=broker.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self._client = c

    # -- callbacks: enqueue only ------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.events.put(Link(False, f"broker refused the connection: {reason_code}"))
            return
        self.connected = True
        self.connecting = False
        self.generation += 1
        client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in self.subscriptions])
        self.events.put(Link(True, f"connected (session_present={bool(flags.session_present)})"))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected = False
        self.connecting = False
        self.events.put(Link(False, str(reason_code)))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        props = msg.properties
        ctype = getattr(props, "ContentType", None) if props is not None else None
        self.events.put(
            Incoming(str(msg.topic), bytes(msg.payload), int(msg.mid), int(msg.qos), ctype, self.generation)
        )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self.events.put(Published(int(mid), not reason_code.is_failure))

    # -- driven by the consumer's thread -------------------------------------------------------
    def connect(self) -> None:
        """Open the connection (raises OSError when the broker cannot be reached)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.session_expiry_s)
        props.ReceiveMaximum = int(self.receive_max)
        self.connecting = True
        self._client.connect(
            self.broker.host,
            self.broker.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=props,
        )

    def loop(self, timeout_s: float, max_packets: int = 500) -> bool:
        """Pump the network: wait up to ``timeout_s``, then read every packet already buffered (up to
        ``max_packets``; paho's own loop reads one per call). False when the connection is gone."""
        c = self._client
        rc = c.loop(timeout=timeout_s)
        n = 1
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and n < max_packets:
            sock = c.socket()
            if sock is None:
                break
            pending = sock.pending() if hasattr(sock, "pending") else 0
            if not pending and not select.select([sock], [], [], 0)[0]:
                break
            rc = c.loop_read()
            n += 1
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or c.socket() is None:
            self.connected = False
            self.connecting = False
            return False
        return True

    def ack(self, msg: Incoming) -> bool:
        """Acknowledge one message (after it is committed). False when it belongs to a dead connection."""
        if msg.qos == 0 or msg.generation != self.generation or not self.connected:
            return False
        return self._client.ack(msg.mid, msg.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int | None:
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def close(self) -> None:
        try:
            self._client.disconnect()
            self._client.loop(timeout=0.1)
        except Exception:  # best effort on a dying connection
            pass
