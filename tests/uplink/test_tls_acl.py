"""TLS with client certificates plus a per-device ACL: nobody let in, nothing executed by mistake."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.config.uplink import UplinkConfig
from edge.errors import UplinkError
from edge.events.builder import EventBuilder
from edge.types import EventDraft
from edge.uplink.mqtt import probe_broker
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker
from tests.uplink.helpers import Consumer, wait_until

pytestmark = pytest.mark.broker
BASE = "edge/lab/pole-1"


def box_cfg(b: Broker, tmp: Path, name: str | None = "pole-1", **extra: Any) -> UplinkConfig:
    assert b.tls is not None
    tls: dict[str, Any] = {"ca_file": str(b.tls.ca)}
    if name is not None:
        cert, key = b.tls.client(name)
        tls.update(cert_file=str(cert), key_file=str(key))
    mqtt = {
        "host": "127.0.0.1",
        "port": b.port,
        "tls": tls,
        "backoff_min_s": 0.1,
        "backoff_max_s": 0.5,
        **extra,
    }
    return UplinkConfig.model_validate({"outbox_path": str(tmp / "outbox.sqlite"), "mqtt": mqtt})


def platform(b: Broker) -> Consumer:
    assert b.tls is not None
    cert, key = b.tls.client("platform")
    return Consumer(b.host, b.port, tls=(str(b.tls.ca), str(cert), str(key))).start()


def raw_client(b: Broker, name: str) -> paho.Client:
    """A bare MQTT client holding ``name``'s certificate (an attacker with a stolen box cert)."""
    assert b.tls is not None
    cert, key = b.tls.client(name)
    c = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"raw-{name}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    c.tls_set(ca_certs=str(b.tls.ca), certfile=str(cert), keyfile=str(key))
    c.reconnect_delay_set(0.05, 0.2)
    c.connect(b.host, b.port)
    c.loop_start()
    wait_until(c.is_connected, 5, f"{name}'s raw client to connect")
    return c


def publish_connected(c: paho.Client, topic: str, payload: bytes) -> None:
    """Publish at QoS 1 until the broker has answered it. The broker drops the connection after a
    denied publish, sometimes just after its PUBACK: a publish that finds the client disconnected,
    or loses its connection before the answer, is sent again once the client has reconnected."""
    deadline = time.monotonic() + 15
    while True:
        wait_until(c.is_connected, 5, "the raw client to (re)connect")
        info = c.publish(topic, payload, qos=1)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            info.wait_for_publish(5)
            if info.is_published():
                return
        assert time.monotonic() < deadline, f"could not publish on {topic} (rc {info.rc})"
        time.sleep(0.05)


def put_events(ob: Outbox, n: int) -> None:
    b = EventBuilder("pole-1", "lab", incidents=ob)
    ob.put_many(
        [
            b.build(
                EventDraft(
                    kind="uplink_test", phase="instant", key=str(i), t=0, ts=1.8e9 + i, payload={"n": i}
                )
            )
            for i in range(n)
        ]
    )


@pytest.fixture
def box(mosquitto_tls: Broker, tmp_path: Path):
    cfg = box_cfg(mosquitto_tls, tmp_path, command_max_bytes=2048)
    ob = Outbox(cfg.outbox_path, topic_prefix=cfg.topic_prefix)
    up = Uplink(cfg, "pole-1", "lab", ob)
    up.start()
    wait_until(lambda: up.connected, 10, "the box to connect over TLS")
    yield up
    up.stop(2)
    ob.close()


def test_box_delivers_over_mutual_tls(mosquitto_tls: Broker, box: Uplink) -> None:
    c = platform(mosquitto_tls)
    put_events(box.outbox, 25)
    wait_until(lambda: len(c.unique_seqs()) == 25, 10, "25 events at the platform")
    assert c.on_topic(f"{BASE}/status")[-1:] == [b"online"]
    wait_until(lambda: box.stats()["outbox_pending"] == 0, 5, "acks to empty the outbox")
    c.stop()


def test_box_cannot_publish_under_another_box(mosquitto_tls: Broker, box: Uplink, tmp_path: Path) -> None:
    c = platform(mosquitto_tls)
    # The doctor probe names the ACL problem...
    with pytest.raises(UplinkError, match="Not authorized"):
        probe_broker(box_cfg(mosquitto_tls, tmp_path), "pole-2", "lab", 5)
    probe_broker(box_cfg(mosquitto_tls, tmp_path), "pole-1", "lab", 5)
    # ...and a raw client with pole-1's certificate cannot write pole-2's events, status or commands.
    raw = raw_client(mosquitto_tls, "pole-1")
    # (mosquitto answers a denied publish with "Not authorized" and drops the connection.)
    for topic in (
        "edge/lab/pole-2/events/parking_violation",
        "edge/lab/pole-2/status",
        "edge/other/pole-2/health",
    ):
        publish_connected(raw, topic, b'{"forged":true}')
    publish_connected(raw, f"{BASE}/events/marker", b"{}")  # allowed, and arrives after
    wait_until(lambda: bool(c.on_topic(f"{BASE}/events/marker")), 5, "the marker")
    forged = [t for t, p, _ in c.messages if b"forged" in p]
    assert forged == []
    raw.disconnect()
    raw.loop_stop()
    c.stop()


@pytest.mark.parametrize("cert", [None, "stranger-without-ca"])
def test_client_without_a_valid_certificate_is_refused(
    mosquitto_tls: Broker, tmp_path: Path, cert: str | None
) -> None:
    cfg = box_cfg(mosquitto_tls, tmp_path, name=None)
    if cert is not None:  # a certificate signed by some other CA
        from tests.fixtures.broker import make_tls

        other = make_tls(tmp_path / "other-pki")
        crt, key = other.client("pole-1")
        assert cfg.mqtt is not None and cfg.mqtt.tls is not None
        tls = cfg.mqtt.tls.model_copy(update={"cert_file": str(crt), "key_file": str(key)})
        cfg = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"tls": tls})})
    with pytest.raises(UplinkError):
        probe_broker(cfg, "pole-1", "lab", 5)


def test_plaintext_client_is_refused_by_the_tls_listener(mosquitto_tls: Broker, tmp_path: Path) -> None:
    cfg = UplinkConfig.model_validate(
        {"mqtt": {"host": "127.0.0.1", "port": mosquitto_tls.port, "connect_timeout_s": 2}}
    )
    with pytest.raises(UplinkError):
        probe_broker(cfg, "pole-1", "lab", 3)


def _replies(c: Consumer, name: str) -> list[dict]:
    return [json.loads(p) for p in c.on_topic(f"{BASE}/cmd/{name}/reply")]


def test_commands_are_validated_and_bad_ones_execute_nothing(mosquitto_tls: Broker, box: Uplink) -> None:
    c = platform(mosquitto_tls)
    send = c.client.publish
    send(f"{BASE}/cmd/reload_config", b'{"id":"bad-1","config":', qos=1)  # malformed JSON
    send(f"{BASE}/cmd/reload_config", json.dumps({"id": "big", "yaml": "y" * 4000}).encode(), qos=1)
    send(f"{BASE}/cmd/ack_task", b'{"id":"bad-2","task_id":"t","shell":"rm -rf /"}', qos=1)
    send(f"{BASE}/cmd/format_disk", b'{"id":"bad-3"}', qos=1)
    wait_until(lambda: len(_replies(c, "reload_config")) == 2, 10, "two reload_config error replies")
    wait_until(lambda: _replies(c, "ack_task") and _replies(c, "format_disk"), 10, "error replies")
    malformed, big = _replies(c, "reload_config")
    assert malformed == {**malformed, "id": "bad-1", "ok": False} and "JSON" in malformed["error"]  # id written first: echoed
    assert big["ok"] is False and "byte limit" in big["error"]
    assert _replies(c, "ack_task")[0]["id"] == "bad-2" and "shell" in _replies(c, "ack_task")[0]["error"]
    assert "unknown command" in _replies(c, "format_disk")[0]["error"]
    assert box.poll_commands() == []  # nothing reaches the runner
    assert box.stats()["commands_rejected"] == 4

    # Another box's certificate cannot command this box at all.
    raw = raw_client(mosquitto_tls, "pole-2")
    publish_connected(raw, f"{BASE}/cmd/ack_task", b'{"id":"evil","task_id":"t"}')
    raw.disconnect()
    raw.loop_stop()

    # Valid commands: ping is answered by the uplink, the others go to the runner, which replies.
    send(f"{BASE}/cmd/ping", b'{"id":"p1"}', qos=1)
    send(f"{BASE}/cmd/ack_task", b'{"id":"a1","task_id":"t-9","by":"ops"}', qos=1)
    wait_until(lambda: bool(_replies(c, "ping")), 10, "the ping reply")
    assert _replies(c, "ping")[0]["ok"] is True and _replies(c, "ping")[0]["result"]["pong"] is True
    got: list = []
    wait_until(lambda: bool(got.extend(box.poll_commands()) or got), 10, "the ack_task command")
    assert [(x.name, x.id, x.args) for x in got] == [("ack_task", "a1", {"task_id": "t-9", "by": "ops"})]
    box.reply(got[0], ok=True, result={"state": "acknowledged"})
    wait_until(lambda: len(_replies(c, "ack_task")) == 2, 10, "the runner's reply")
    assert _replies(c, "ack_task")[1] == {
        **_replies(c, "ack_task")[1],
        "id": "a1",
        "ok": True,
        "result": {"state": "acknowledged"},
    }
    c.stop()
