"""The paho-mqtt adapter: the only module that imports paho.

``PahoSession`` is one MQTT 5 connection (a fresh paho client per connection, so message ids
and paho's memory queue never outlive the connection they belong to; the outbox is the real
queue). Its callbacks only put small tuples on a ``queue.SimpleQueue``; the uplink thread drains
them. Topic aliases (MQTT 5) are per connection, so they live and die with the session.
``probe_broker()`` is the ``doctor`` check.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config.uplink import MqttConfig, UplinkConfig, is_local_host
from edge.errors import UplinkError
from edge.events.topics import Topics


@dataclass(frozen=True, slots=True)
class Connected:
    ok: bool
    session_present: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class PubAck:
    mid: int
    ok: bool
    reason: str
    no_subscribers: bool = False  # MQTT 5 reason 0x10: accepted, but it matched no subscription


NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    retain: bool = False  # published retained (subscriptions keep the publisher's flag)


SessionEvent = Connected | Disconnected | PubAck | Message
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
RECEIVE_MAXIMUM = 16  # commands the broker may send before this box acknowledges one (flow control)


def max_incoming_packet(mcfg: MqttConfig) -> int:
    """MQTT 5 Maximum Packet Size this box accepts: commands up to here are answered (refused when
    over command_max_bytes); larger packets the broker discards without sending them."""
    return max(1024 * 1024, 4 * mcfg.command_max_bytes)


def check_transport_security(mcfg: MqttConfig) -> None:
    """Refuse plaintext to a non-local broker unless allow_insecure (the config checks it too)."""
    if mcfg.tls is None and not mcfg.allow_insecure and not is_local_host(mcfg.host):
        raise UplinkError(
            f"refusing plaintext MQTT to {mcfg.host}: configure uplink.mqtt.tls (CA, client cert, key) "
            "or set uplink.mqtt.allow_insecure: true for a lab broker"
        )


def _configure_auth_tls(c: Any, mcfg: MqttConfig) -> None:
    """Credentials and TLS of ``mcfg`` on a paho client; UplinkError names a missing or broken file."""
    if mcfg.username is not None:
        c.username_pw_set(mcfg.username, mcfg.password)
    if mcfg.tls is not None:
        tls = mcfg.tls
        for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path is not None and not os.access(path, os.R_OK):
                why = "does not exist" if not os.path.exists(path) else "is not readable by this user"
                raise UplinkError(f"uplink.mqtt.tls.{key}: {path} {why}; install the box's TLS files or fix the path")
        try:
            c.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UplinkError(
                f"uplink.mqtt.tls: cannot load the TLS files ({exc}); check that cert_file and key_file "
                "are a matching PEM pair and ca_file is a PEM CA certificate"
            ) from None
        c.tls_insecure_set(tls.insecure_skip_verify)


class PahoSession:
    """One connection to the broker: connect, pump, publish, subscribe. Not thread-safe by design:
    one thread (the uplink thread) drives it; paho callbacks only enqueue into ``events``."""

    def __init__(
        self, mcfg: MqttConfig, client_id: str, topics: Topics, events: queue.SimpleQueue[SessionEvent]
    ) -> None:
        check_transport_security(mcfg)
        self.mcfg = mcfg
        self.events = events
        c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,  # a command is acknowledged once handled: the broker's redelivery covers a crash
        )
        c.max_inflight_messages_set(mcfg.inflight_max)
        c.max_queued_messages_set(mcfg.inflight_max + 256)  # our window + replies + status; never unbounded
        _configure_auth_tls(c, mcfg)
        c.will_set(topics.status, STATUS_OFFLINE, qos=1, retain=True)
        c.connect_timeout = mcfg.connect_timeout_s
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self._client = c
        self._alias_max = 0  # the broker's Topic Alias Maximum, from its CONNACK
        self._aliases: dict[str, int] = {}

    # -- callbacks: enqueue only ---------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        # Runs inside loop_read() on the driving thread, so plain attribute writes are safe here.
        if self.mcfg.topic_aliases and properties is not None:
            self._alias_max = int(getattr(properties, "TopicAliasMaximum", 0) or 0)
        self.events.put(Connected(not reason_code.is_failure, bool(flags.session_present), str(reason_code)))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.events.put(Disconnected(str(reason_code)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        unrouted = getattr(reason_code, "value", 0) == NO_MATCHING_SUBSCRIBERS
        self.events.put(PubAck(int(mid), not reason_code.is_failure, str(reason_code), unrouted))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.events.put(Message(str(msg.topic), bytes(msg.payload), int(msg.mid), int(msg.qos), bool(msg.retain)))

    # -- driven by the uplink thread ------------------------------------------------------------
    def connect(self) -> None:
        """TCP (+TLS) connect and send CONNECT; the CONNACK arrives later as a ``Connected`` event."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.mcfg.session_expiry_s)
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.MaximumPacketSize = max_incoming_packet(self.mcfg)
        try:
            self._client.connect(
                self.mcfg.host,
                self.mcfg.effective_port,
                keepalive=self.mcfg.keepalive_s,
                clean_start=False,
                properties=props,
            )
            sock: Any = self._client.socket()
            if sock is not None:  # small QoS 1 messages must not wait for Nagle + delayed ACK (~40 ms)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except ssl.SSLError as exc:
            raise UplinkError(
                f"TLS handshake with {self.mcfg.host}:{self.mcfg.effective_port} failed ({exc.reason or exc}); "
                "check uplink.mqtt.tls.ca_file and the client certificate"
            ) from exc
        except OSError as exc:
            raise UplinkError(
                f"cannot reach broker {self.mcfg.host}:{self.mcfg.effective_port} ({exc}); "
                "check the address, port, firewall and network"
            ) from exc

    def loop(self, timeout_s: float, wake: socket.socket | None = None) -> bool:
        """Pump the socket once, waiting at most ``timeout_s`` for traffic or for a byte on ``wake``
        (the uplink's own wake-up socket: new outbox rows need not wait for the timeout).
        False when the connection is gone."""
        c = self._client
        sock = c.socket()
        if sock is None:
            return False
        pending = sock.pending() if hasattr(sock, "pending") else 0  # bytes buffered inside TLS
        # poll, not select: a fleet simulator runs hundreds of sessions in one process (fds > 1024).
        poller = select.poll()
        try:
            poller.register(sock, select.POLLIN | (select.POLLOUT if c.want_write() else 0))
            if wake is not None:
                poller.register(wake, select.POLLIN)
            ready = dict(poller.poll(0 if pending else int(timeout_s * 1000)))
        except (OSError, ValueError, TypeError):
            return False
        sock_ev = ready.get(sock.fileno(), 0)
        if wake is not None and ready.get(wake.fileno(), 0):
            try:
                wake.recv(4096)
            except OSError:
                pass
        ok = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)
        readable = sock_ev & (select.POLLIN | select.POLLHUP | select.POLLERR)
        if (readable or pending) and (c.loop_read() not in ok or c.socket() is None):
            return False
        if (sock_ev & select.POLLOUT or c.want_write()) and (c.loop_write() not in ok or c.socket() is None):
            return False
        return c.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS

    def socket(self) -> Any:
        """The connection's socket (None when closed), for a driver that waits on many sessions."""
        return self._client.socket()

    def want_write(self) -> bool:
        return bool(self._client.want_write())

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, content_type: str | None = None
    ) -> int | None:
        """Hand a message to the socket; its mid, or None if the connection cannot take it.

        With topic aliases, the first message on a topic carries the topic and a new alias; later ones
        only the alias (an empty topic), until the broker's alias maximum is used up."""
        props: Properties | None = None
        new_alias: str | None = None
        if content_type is not None or self._alias_max:
            props = Properties(PacketTypes.PUBLISH)
            if content_type is not None:
                props.ContentType = content_type
            if self._alias_max and not retain:
                alias = self._aliases.get(topic)
                if alias is not None:
                    props.TopicAlias = alias
                    topic = ""
                elif len(self._aliases) < self._alias_max:
                    alias = len(self._aliases) + 1
                    self._aliases[topic] = alias
                    props.TopicAlias = alias
                    new_alias = topic
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            if new_alias is not None:  # never sent: the broker does not know this alias
                del self._aliases[new_alias]
            return None
        return int(info.mid)

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe without the retained messages (retain handling 2: never sent on subscribe) and
        keeping the publisher's retain flag on live messages (so a retained command can be refused)."""
        self._client.subscribe(
            topic_filter, options=SubscribeOptions(qos=qos, retainAsPublished=True, retainHandling=2)
        )

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (manual acks: only once it has been handled)."""
        if qos > 0:
            self._client.ack(mid, qos)

    def disconnect(self) -> None:
        try:
            self._client.disconnect()
            self._client.loop(timeout=0.05)
        except Exception:  # pragma: no cover - best effort on a dying socket
            pass
        try:
            self._client.socket() and self._client.socket().close()  # type: ignore[union-attr]
        except Exception:  # pragma: no cover
            pass


def probe_broker(cfg: UplinkConfig, device_id: str, site_id: str, timeout_s: float = 10.0) -> None:
    """Connect with the configured TLS/credentials, publish one QoS 1 test message under the device's
    own prefix and wait for the PUBACK. Raises UplinkError with an actionable message."""
    mcfg = cfg.mqtt
    if mcfg is None:
        raise UplinkError("no broker configured (uplink.mqtt is absent): events go to the JSONL sink only")
    topics = Topics(cfg.topic_prefix, site_id, device_id)
    events: queue.SimpleQueue[SessionEvent] = queue.SimpleQueue()
    sess = PahoSession(mcfg, f"{mcfg.client_id or f'edge-{site_id}-{device_id}'}-probe", topics, events)
    deadline = time.monotonic() + timeout_s
    sess.connect()
    mid: int | None = None
    try:
        while time.monotonic() < deadline:
            if not sess.loop(0.05):
                raise UplinkError(
                    f"broker {mcfg.host}:{mcfg.effective_port} closed the connection; "
                    "check the client certificate, username/password and the broker log"
                )
            while True:
                try:
                    ev = events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(ev, Connected):
                    if not ev.ok:
                        raise UplinkError(
                            f"broker refused the connection: {ev.reason}; check credentials and ACL"
                        )
                    mid = sess.publish(f"{topics.base}/probe", b'{"probe":true}', qos=1)
                    if mid is None:
                        raise UplinkError("could not publish the probe message")
                elif isinstance(ev, PubAck) and ev.mid == mid:
                    if not ev.ok:
                        raise UplinkError(
                            f"broker rejected a publish to {topics.base}/probe ({ev.reason}); "
                            f"the ACL must let this box write under {topics.base}/#"
                        )
                    return
                elif isinstance(ev, Disconnected):
                    raise UplinkError(f"broker disconnected during the probe ({ev.reason})")
        raise UplinkError(
            f"no answer from {mcfg.host}:{mcfg.effective_port} within {timeout_s:.0f} s "
            "(connected but no CONNACK/PUBACK); check the broker"
        )
    finally:
        sess.disconnect()


def read_messages(
    mcfg: MqttConfig,
    topic_filter: str,
    on_message: Callable[[str, bytes], None],
    *,
    client_id: str,
    idle_timeout_s: float = 10.0,
    max_messages: int | None = None,
    on_subscribed: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Subscribe to ``topic_filter`` (QoS 1, a clean session that the broker forgets, no last will)
    and hand every message to ``on_message(topic, payload)`` on this thread, until ``max_messages``
    arrived, nothing arrived for ``idle_timeout_s``, or ``stop()`` is true. Returns the count.
    ``edge-agent verify --mqtt`` reads a live stream with it."""
    check_transport_security(mcfg)
    events: queue.SimpleQueue[SessionEvent] = queue.SimpleQueue()
    c = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        reconnect_on_failure=False,
    )
    _configure_auth_tls(c, mcfg)
    c.on_connect = lambda cl, ud, flags, rc, props: events.put(Connected(not rc.is_failure, False, str(rc)))
    c.on_disconnect = lambda cl, ud, flags, rc, props: events.put(Disconnected(str(rc)))
    c.on_message = lambda cl, ud, msg: events.put(Message(str(msg.topic), bytes(msg.payload)))
    c.on_subscribe = lambda cl, ud, mid, rcs, props: events.put(PubAck(int(mid), True, "subscribed"))
    try:
        c.connect(mcfg.host, mcfg.effective_port, keepalive=mcfg.keepalive_s, clean_start=True)
    except ssl.SSLError as exc:
        raise UplinkError(f"TLS handshake with {mcfg.host}:{mcfg.effective_port} failed ({exc.reason or exc})") from exc
    except OSError as exc:
        raise UplinkError(f"cannot reach broker {mcfg.host}:{mcfg.effective_port} ({exc})") from exc
    count = 0
    last = time.monotonic()
    try:
        while stop is None or not stop():
            if c.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise UplinkError(f"lost the connection to {mcfg.host}:{mcfg.effective_port}")
            while True:
                try:
                    ev = events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(ev, Connected):
                    if not ev.ok:
                        raise UplinkError(f"broker refused the connection: {ev.reason}; check credentials and ACL")
                    c.subscribe(topic_filter, qos=1)
                elif isinstance(ev, PubAck):
                    last = time.monotonic()
                    if on_subscribed is not None:
                        on_subscribed()
                elif isinstance(ev, Message):
                    on_message(ev.topic, ev.payload)
                    count += 1
                    last = time.monotonic()
                    if max_messages is not None and count >= max_messages:
                        return count
                elif isinstance(ev, Disconnected):
                    raise UplinkError(f"broker closed the connection ({ev.reason})")
            if time.monotonic() - last > idle_timeout_s:
                return count
        return count
    finally:
        try:
            c.disconnect()
        except Exception:  # pragma: no cover - best effort
            pass
