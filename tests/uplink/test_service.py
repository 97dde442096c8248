"""Uplink without a broker (JSONL sink), the fallback link, backoff and config safety."""

from __future__ import annotations

import ast
import json
import random
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.config.uplink import UplinkConfig
from edge.events.builder import EventBuilder
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink, backoff_delay
from tests.fixtures.broker import free_port
from tests.uplink.helpers import Consumer, wait_until

REPO = Path(__file__).resolve().parents[2]


def events(n: int, severity: str = "info") -> list:
    b = EventBuilder("pole-1", "lab")
    return [
        b.build(
            EventDraft(
                kind="uplink_test",
                phase="instant",
                key=str(i),
                t=0,
                ts=1.8e9 + i,
                severity=severity,
                payload={"n": i},
            )
        )  # type: ignore[arg-type]
        for i in range(n)
    ]


def test_without_a_broker_events_go_to_the_jsonl_sink(tmp_path: Path) -> None:
    cfg = UplinkConfig(outbox_path=str(tmp_path / "box" / "outbox.sqlite"))
    assert cfg.mqtt is None and cfg.sink_path == str(tmp_path / "box" / "events.jsonl")
    ob = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "lab", ob)
    up.start()
    ob.put_many(events(30))
    wait_until(lambda: up.stats()["outbox_pending"] == 0, 5, "the sink to drain the outbox")
    assert up.stop(1.0) is True
    lines = [json.loads(x) for x in Path(cfg.sink_path).read_text().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, 31))
    assert up.stats()["mode"] == "jsonl"
    ob.close()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.t

    def advance(self, dt: float) -> None:
        with self.lock:
            self.t += dt


class FakeFallback:
    """A FallbackLink (the modem) that accepts or refuses on demand and records what it carried."""

    def __init__(self) -> None:
        self.ok = False
        self.sent: list[tuple[str, bytes]] = []
        self.attempts = 0

    def available(self) -> bool:
        return True

    def send(self, topic: str, payload: bytes) -> bool:
        self.attempts += 1
        if self.ok:
            self.sent.append((topic, payload))
        return self.ok


def test_alarms_use_the_fallback_link_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    dead_port = free_port()  # nothing listens there
    cfg = UplinkConfig.model_validate(
        {
            "outbox_path": str(tmp_path / "o.sqlite"),
            "mqtt": {
                "host": "127.0.0.1",
                "port": dead_port,
                "fallback_after_s": 60,
                "backoff_min_s": 3600,
                "backoff_max_s": 3600,
            },
        }
    )
    clock = FakeClock()
    ob = Outbox(cfg.outbox_path)
    fb = FakeFallback()
    up = Uplink(cfg, "pole-1", "lab", ob, fallback=fb, clock=clock)
    up.start()
    ob.put_many(events(3) + events(2, severity="critical"))
    wait_until(lambda: up.stats()["connect_failures"] >= 1, 5, "the first failed connect")
    assert fb.attempts == 0  # not before fallback_after_s
    clock.advance(61)
    wait_until(lambda: fb.attempts >= 1, 5, "a fallback attempt")
    assert ob.stats()["pending_by_priority"]["alarm"] == 2  # refused by the link: kept
    fb.ok = True
    clock.advance(10)  # past the retry pause
    wait_until(lambda: len(fb.sent) == 2, 5, "both alarms over the fallback link")
    st = ob.stats()["pending_by_priority"]
    assert st == {"feature": 0, "info": 3, "alarm": 0}  # info waits for the broker
    assert {json.loads(p)["severity"] for _, p in fb.sent} == {"critical"}
    assert all(t == "edge/lab/pole-1/events/uplink_test" for t, _ in fb.sent)
    assert up.stats()["fallback_sent"] == 2
    up.stop(0.1)
    ob.close()


@pytest.mark.parametrize("attempt", [0, 1, 3, 10, 50])
def test_backoff_is_jittered_exponential_and_capped(attempt: int) -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)]
    base = min(60.0, 2.0**attempt)
    assert all(base / 2 <= d <= base for d in delays)
    assert len({round(d, 6) for d in delays}) > 150  # jittered, not a fixed schedule


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"host": "broker.city.example"}, "plaintext MQTT to 'broker.city.example' is refused"),
        ({"host": "10.0.0.5", "tls": {"ca_file": "ca.pem", "cert_file": "c.pem"}}, "cert_file and key_file"),
        ({"host": "localhost", "password": "x"}, "needs a username"),
        ({"host": "localhost", "backoff_min_s": 10, "backoff_max_s": 1}, "backoff_max_s"),
        ({"host": "localhost", "qos": 2}, "Extra inputs"),
    ],
)
def test_config_refuses(mqtt: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UplinkConfig.model_validate({"mqtt": mqtt})


@pytest.mark.parametrize(
    "mqtt",
    [
        {"host": "127.0.0.1"},
        {"host": "localhost", "port": 1884},
        {"host": "::1"},
        {"host": "broker.lab", "allow_insecure": True},
        {"host": "broker.city", "tls": {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"}},
    ],
)
def test_config_accepts(mqtt: dict) -> None:
    cfg = UplinkConfig.model_validate({"mqtt": mqtt})
    assert cfg.mqtt is not None
    assert cfg.mqtt.effective_port == mqtt.get("port", 8883 if "tls" in mqtt else 1883)


def test_every_uplink_config_field_is_described() -> None:
    from edge.config import uplink as mod

    for model in (mod.UplinkConfig, mod.MqttConfig, mod.TlsConfig):
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"


def test_paho_is_imported_only_by_the_mqtt_adapter_and_callbacks_only_enqueue() -> None:
    importers = []
    for py in (REPO / "edge").rglob("*.py"):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "paho" or n.startswith("paho.") for n in names):
                importers.append(py.relative_to(REPO).as_posix())
    assert sorted(set(importers)) == ["edge/uplink/mqtt.py"]
    src = ast.parse((REPO / "edge/uplink/mqtt.py").read_text())
    for fn in ast.walk(src):
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("_on_"):
            calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
            outer = [c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "put"]
            assert len(outer) == 1, f"{fn.name} must only enqueue"


@pytest.mark.broker
def test_inflight_window_is_bounded_and_jsonl_copy_kept(mosquitto, tmp_path: Path, monkeypatch) -> None:
    from edge.uplink import mqtt

    cfg = UplinkConfig.model_validate(
        {
            "outbox_path": str(tmp_path / "o.sqlite"),
            "jsonl_path": str(tmp_path / "copy.jsonl"),
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "inflight_max": 4, "unrouted_retry_s": 0},
        }
    )
    ob = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "lab", ob)
    seen: list[int] = []
    orig = mqtt.PahoSession.publish

    def spy(self, topic: str, payload: bytes, **kw):  # type: ignore[no-untyped-def]
        if "/events/" in topic:
            seen.append(up.stats()["inflight"])  # in flight before this one is added
        return orig(self, topic, payload, **kw)

    monkeypatch.setattr(mqtt.PahoSession, "publish", spy)
    ob.put_many(events(200))
    up.start()
    wait_until(lambda: up.stats()["outbox_pending"] == 0, 20, "the outbox to drain")
    up.stop(2)
    assert len(seen) >= 200 and max(seen) <= 3  # never more than 4 awaiting PUBACK
    copy = [json.loads(x)["seq"] for x in (tmp_path / "copy.jsonl").read_text().splitlines()]
    assert sorted(set(copy)) == list(range(1, 201))
    ob.close()


def test_missing_tls_file_is_a_clear_error_and_backs_off(tmp_path) -> None:
    """A box whose certificate is missing says which file, and retries with backoff (no traceback loop)."""
    from edge.config.uplink import MqttConfig, TlsConfig, UplinkConfig
    from edge.uplink.outbox import Outbox
    from edge.uplink.service import Uplink

    ca = tmp_path / "ca.pem"
    ca.write_text("not really a CA")
    cfg = UplinkConfig(
        outbox_path=str(tmp_path / "o.sqlite"),
        mqtt=MqttConfig(host="127.0.0.1", port=1, tls=TlsConfig(ca_file=str(ca), cert_file=str(tmp_path / "box.crt"),
                                                                key_file=str(tmp_path / "box.key"))),
    )
    outbox = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "site", outbox)
    up.start()
    try:
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not up.last_error:
            time.sleep(0.05)
        assert "uplink.mqtt.tls.cert_file" in up.last_error and "does not exist" in up.last_error
        time.sleep(1.0)
        assert up.stats()["connect_failures"] <= 3, "a broken TLS set-up is retried with backoff, not in a tight loop"
    finally:
        up.stop(0.5)
        outbox.close()


def retained(port: int, topic: str, wait_s: float = 1.0) -> list[bytes]:
    """What a platform connecting now receives on ``topic`` (retained messages only)."""
    import time as _time

    c = Consumer("127.0.0.1", port, topic=topic, client_id=f"late-{_time.monotonic_ns()}").start()
    _time.sleep(wait_s)  # retained messages arrive right after the subscription; give them a moment
    c.stop()
    return [p for _t, p, _ in c.messages]


@pytest.mark.broker
def test_clean_stop_publishes_offline_and_its_reason_retained(mosquitto, tmp_path: Path) -> None:
    """Home Assistant's availability convention: retained online/offline on .../status; why a clean
    stop happened is a separate retained message, cleared when the box connects again."""
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(tmp_path / "o.sqlite"), "mqtt": {"host": "127.0.0.1", "port": mosquitto.port}}
    )
    ob = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "lab", ob)
    up.start()
    wait_until(lambda: up.connected, 10, "the uplink to connect")
    wait_until(lambda: retained(mosquitto.port, "edge/lab/pole-1/status", 0.3) == [b"online"], 10, "online")
    up.stop(1.0, reason="error", detail="cannot start: camera cam0: no such model")
    assert retained(mosquitto.port, "edge/lab/pole-1/status") == [b"offline"]
    (why,) = retained(mosquitto.port, "edge/lab/pole-1/status/reason")
    doc = json.loads(why)
    assert (doc["status"], doc["reason"], doc["detail"]) == ("offline", "error", "cannot start: camera cam0: no such model")
    up2 = Uplink(cfg, "pole-1", "lab", ob)
    up2.start()
    wait_until(lambda: up2.connected, 10, "the uplink to connect again")
    wait_until(lambda: retained(mosquitto.port, "edge/lab/pole-1/status", 0.3) == [b"online"], 10, "online again")
    assert retained(mosquitto.port, "edge/lab/pole-1/status/reason") == []  # cleared on connect
    up2.stop(1.0)
    assert json.loads(retained(mosquitto.port, "edge/lab/pole-1/status/reason")[0])["reason"] == "stopped"
    ob.close()


@pytest.mark.broker
def test_an_error_handling_a_command_is_a_reply_not_a_lost_session(mosquitto, tmp_path: Path, monkeypatch) -> None:
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(tmp_path / "o.sqlite"), "mqtt": {"host": "127.0.0.1", "port": mosquitto.port}}
    )
    ob = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "lab", ob)
    real = up._intake.receive

    def buggy(name: str, payload: bytes, **kw):  # type: ignore[no-untyped-def]
        if b"boom" in payload:
            raise RuntimeError("a bug in command handling")
        return real(name, payload, **kw)

    monkeypatch.setattr(up._intake, "receive", buggy)
    c = Consumer("127.0.0.1", mosquitto.port, topic="edge/lab/pole-1/cmd/+/reply", client_id="ops").start()
    up.start()
    try:
        wait_until(lambda: up.connected, 10, "the uplink to connect")
        c.client.publish("edge/lab/pole-1/cmd/ping", b'{"id":"boom"}', qos=1)
        c.client.publish("edge/lab/pole-1/cmd/ping", b'{"id":"after"}', qos=1)
        wait_until(lambda: len(c.messages) == 2, 10, "two replies")
        first, second = (json.loads(p) for _t, p, _ in c.messages)
        assert first["ok"] is False and "internal error handling the command: a bug" in first["error"]
        assert second["id"] == "after" and second["ok"] is True
        assert up.stats()["reconnects"] == 1 and up.connected
    finally:
        up.stop(1.0)
        c.stop()
        ob.close()
