"""The uplink's latest-value channel (retained state topics, Home Assistant discovery) on a real
broker: only the newest value of a topic goes out, a clear is sent once, everything is sent again
after a reconnect, nothing of it enters the outbox, and a broker ACL that refuses a family of topics
costs one reconnect, not a flapping connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config.uplink import UplinkConfig
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker
from tests.integrations.helpers import Recorder, retained
from tests.uplink.helpers import wait_until
from tests.uplink.test_tls_acl import box_cfg, put_events

pytestmark = pytest.mark.broker
BASE = "edge/lab/pole-1"


def make_uplink(tmp: Path, cfg: UplinkConfig) -> Uplink:
    ob = Outbox(cfg.outbox_path, topic_prefix=cfg.topic_prefix)
    return Uplink(cfg, "pole-1", "lab", ob)


def plain_cfg(b: Broker, tmp: Path) -> UplinkConfig:
    mqtt: dict[str, Any] = {"host": "127.0.0.1", "port": b.port, "backoff_min_s": 0.05, "backoff_max_s": 0.2,
                            "reconnect_window_s": 0.3, "unrouted_retry_s": 0}  # fmt: skip
    return UplinkConfig.model_validate({"outbox_path": str(tmp / "outbox.sqlite"), "mqtt": mqtt})


def test_latest_values_coalesce_clear_and_come_back_after_a_reconnect(
    mosquitto: Broker, tmp_path: Path
) -> None:
    up = make_uplink(tmp_path, plain_cfg(mosquitto, tmp_path))
    # before any connection: three values for one topic, one for another
    for n in (1, 2, 3):
        up.publish_latest(f"{BASE}/state/cam0/a", b'{"count":%d}' % n)
    up.publish_latest(f"{BASE}/state/cam0/b", b'{"count":9}')
    assert up.latest_pending() == {f"{BASE}/state/cam0/a", f"{BASE}/state/cam0/b"}
    live = Recorder(mosquitto.port, (f"{BASE}/#",), client_id="latest-live").start()
    up.start()
    try:
        wait_until(lambda: not up.latest_pending(), 10, "the latest values to be sent")
        wait_until(lambda: bool(live.on(f"{BASE}/status")), 10, "online")
        assert [p for p, _ in live.on(f"{BASE}/state/cam0/a")] == [b'{"count":3}']  # the newest only
        # the state went out before "online" on the new connection
        with live.lock:
            order = [t for t, _, _, _ in live.messages]
        assert order.index(f"{BASE}/state/cam0/a") < order.index(f"{BASE}/status")
        assert up.outbox.pending() == 0 and up.outbox.stats()["last_seq"] == 0  # never an outbox row

        up.publish_latest(f"{BASE}/state/cam0/b", b"")  # clear b
        wait_until(lambda: f"{BASE}/state/cam0/b" not in retained(mosquitto.port, f"{BASE}/#", settle_s=0.2), 10,
                   "b to be cleared")  # fmt: skip

        # the broker loses everything retained; on reconnect every current value goes again, the clear does not
        mosquitto.stop()
        (mosquitto.dir / "mosquitto.db").unlink()
        wait_until(lambda: not up.connected, 10, "the uplink to notice")
        up.publish_latest(f"{BASE}/state/cam0/a", b'{"count":4}')
        mosquitto.start()
        wait_until(lambda: up.connected and not up.latest_pending(), 20, "the reconnect")
        snap = retained(mosquitto.port, f"{BASE}/#")
        assert snap[f"{BASE}/state/cam0/a"] == b'{"count":4}'
        assert f"{BASE}/state/cam0/b" not in snap
        assert up.stats()["latest_sent"] == 4  # a:3, b:9, b:clear, a:4 (the reconnect resent a once)
    finally:
        live.stop()
        up.stop(2)
        up.outbox.close()


def test_stop_sends_the_pending_latest_values_before_offline(mosquitto: Broker, tmp_path: Path) -> None:
    up = make_uplink(tmp_path, plain_cfg(mosquitto, tmp_path))
    up.start()
    try:
        wait_until(lambda: up.connected, 10, "connect")
        live = Recorder(mosquitto.port, (f"{BASE}/#",), client_id="stop-live").start()
        for i in range(50):
            up.publish_latest(f"{BASE}/state/cam0/z{i}", b'{"count":%d}' % i)
    finally:
        up.stop(5)
        up.outbox.close()
    wait_until(lambda: any(p == b"offline" for p, _ in live.on(f"{BASE}/status")), 10, "offline")
    with live.lock:
        order = [t for t, _, _, _ in live.messages]
        payloads = [p for _, p, _, _ in live.messages]
    live.stop()
    states = [i for i, t in enumerate(order) if "/state/" in t]
    offline = next(
        i
        for i, (t, p) in enumerate(zip(order, payloads, strict=True))
        if t.endswith("/status") and p == b"offline"
    )
    assert len(states) == 50 and max(states) < offline


def test_shipped_acl_lets_a_box_publish_states_and_discovery(mosquitto_tls: Broker, tmp_path: Path) -> None:
    """With configs/mosquitto/edge.acl: the box writes its state topics and its own discovery configs; Home
    Assistant (CN=homeassistant) reads them; a discovery prefix the ACL does not allow is refused once."""
    assert mosquitto_tls.tls is not None
    up = make_uplink(tmp_path, box_cfg(mosquitto_tls, tmp_path, reconnect_window_s=0.3, unrouted_retry_s=0))
    up.start()
    try:
        wait_until(lambda: up.connected, 10, "the box to connect over TLS")
        up.publish_latest(f"{BASE}/state/cam0/bay", b'{"count":2}')
        up.publish_latest("homeassistant/sensor/pole-1/cam0_bay_count/config", b'{"name":"bay count"}')
        wait_until(lambda: not up.latest_pending(), 10, "sent")
        cert, key = mosquitto_tls.tls.client("homeassistant")
        from tests.uplink.helpers import Consumer

        ha = Consumer(mosquitto_tls.host, mosquitto_tls.port, topic="homeassistant/#", client_id="ha",
                      tls=(str(mosquitto_tls.tls.ca), str(cert), str(key))).start()  # fmt: skip
        ha_state = Consumer(mosquitto_tls.host, mosquitto_tls.port, topic=f"{BASE}/state/#", client_id="ha-states",
                            tls=(str(mosquitto_tls.tls.ca), str(cert), str(key))).start()  # fmt: skip
        wait_until(
            lambda: bool(ha.on_topic("homeassistant/sensor/pole-1/cam0_bay_count/config")), 10, "discovery"
        )
        wait_until(lambda: ha_state.on_topic(f"{BASE}/state/cam0/bay") == [b'{"count":2}'], 10, "the state")
        assert up.stats()["latest_rejected"] == 0
        ha.stop()
        ha_state.stop()

        # another box's node, and a prefix the ACL does not know: refused, the family dropped, events still flow
        connects = up.stats()["reconnects"]
        for i in range(10):
            up.publish_latest(f"ha/sensor/pole-1/x{i}/config", b"{}")
        wait_until(lambda: up.stats()["latest_rejected"] >= 1, 10, "the refusal")
        wait_until(lambda: up.connected and not up.latest_pending(), 20, "the box to carry on")
        put_events(up.outbox, 5)
        wait_until(lambda: up.outbox.pending() == 0, 10, "events delivered after the refusal")
        st = up.stats()
        assert st["latest_rejected"] >= 1 and st["reconnects"] <= connects + 2, (st, connects)
        up.publish_latest("ha/sensor/pole-1/x99/config", b"{}")  # ignored from now on
        assert up.latest_pending() == set()
    finally:
        up.stop(2)
        up.outbox.close()
