"""BG96 over AT commands against the modem simulator: health, the MQTT fallback link, recovery."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edge.config.hardware import HardwareConfig
from edge.hardware.manager import HardwareManager
from edge.ports import FallbackLink
from tests.hardware.conftest import wait_for

FALLBACK = {
    "host": "mqtt.city.example",
    "port": 8883,
    "client_id": "pole-17",
    "open_timeout_s": 3,
    "publish_timeout_s": 3,
}


@pytest.fixture
def modem_mgr() -> Any:
    made: list[HardwareManager] = []

    def make(url: str, **modem: Any) -> HardwareManager:
        cfg = HardwareConfig.model_validate(
            {
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.3,
                "modem": {
                    "url": url,
                    "poll_interval_s": 0.2,
                    "timeout_s": 1.0,
                    "fallback": FALLBACK,
                    **modem,
                },
            }
        )
        m = HardwareManager(cfg, "UTC", ntp_status=lambda: None)
        m.start()
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


def test_signal_and_registration_in_health(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 5, "csq": 23}]})
    m = modem_mgr(sim.url)
    wait_for(lambda: m.health()["modem"]["registered"], what="registration")
    h = m.health()["modem"]
    assert h["csq"] == 23 and h["rssi_dbm"] == -67 and h["registration"] == "registered_roaming"
    assert h["status"] == "online"
    assert "ATE0" in sim.sim.commands and "AT+CSQ" in sim.sim.commands and "AT+CEREG?" in sim.sim.commands


def test_registration_denied_means_no_fallback(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim("modem_rejected", speed=10)
    m = modem_mgr(sim.url)
    wait_for(lambda: m.health()["modem"]["registration"] == "denied", what="denied")
    link = m.fallback_link()
    assert link is not None and not link.available()
    assert link.send("t", b"{}") is False
    assert sim.sim.received == []


def test_fallback_publishes_with_qmtpub(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim("modem_registered", speed=10)
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    assert link is not None
    as_port: FallbackLink = link  # structurally the edge.ports.FallbackLink the uplink expects
    assert callable(as_port.available) and callable(as_port.send)
    wait_for(link.available, what="modem registered")
    payloads = [
        json.dumps({"event_id": f"0190-{i}", "kind": "parking_violation", "severity": "critical"}).encode()
        for i in range(3)
    ]
    for i, p in enumerate(payloads):
        assert link.send(f"edge/site/pole-17/events/parking_violation/{i}", p) is True
    got = sim.sim.received
    assert [json.loads(r["payload"])["event_id"] for r in got] == ["0190-0", "0190-1", "0190-2"]
    assert [r["msgid"] for r in got] == [1, 2, 3] and all(r["qos"] == 1 for r in got)
    opens = [c for c in sim.sim.commands if c.startswith("AT+QMTOPEN")]
    assert opens == ['AT+QMTOPEN=0,"mqtt.city.example",8883']  # one session for all three
    assert any(c == 'AT+QMTCONN=0,"pole-17"' for c in sim.sim.commands)


def test_fallback_refused_by_broker(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim({"broker": "refuse"})
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    wait_for(link.available, what="registered")
    assert link.send("t", b"{}") is False
    assert sim.sim.received == []
    assert m.health()["fallback"]["failed"] == 1


def test_error_replies_are_counted_not_fatal(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim(
        {
            "broker": "accept",
            "error_commands": {"+QMTOPEN=": 1, "+CSQ": -1},
            "timeline": [{"at_s": 0, "registration": 1, "csq": 17}],
        }
    )
    m = modem_mgr(sim.url)
    wait_for(lambda: m.modem.errors >= 1, what="CSQ error")
    assert m.health()["modem"]["csq"] is None
    link = m.fallback_link()
    # registration is read after CSQ, so CSQ's ERROR keeps it unknown: fallback unavailable, nothing sent
    assert link is not None and not link.available()
    assert link.send("t", b"{}") is False


def test_slow_modem_still_works_and_never_blocks_the_caller(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim(
        {"reply_delay_s": 0.6, "urc_delay_s": 0.3, "timeline": [{"at_s": 0, "registration": 1, "csq": 14}]}
    )
    m = modem_mgr(sim.url)
    t0 = time.perf_counter()
    for _ in range(50):
        m.health()
        m.poll(time.monotonic(), 0.0)
    assert time.perf_counter() - t0 < 0.2
    wait_for(lambda: m.health()["modem"]["registered"], timeout_s=6, what="slow registration")
    assert m.fallback_link().send("t", b'{"event_id":"x"}') is True


def test_qmtstat_drops_session_and_next_send_reopens(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]})
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    wait_for(link.available, what="registered")
    assert link.send("a", b"1")
    sim.sim.push_urc("+QMTSTAT: 0,1")
    wait_for(lambda: not m.modem.mqtt_connected, what="+QMTSTAT handled")
    assert link.send("b", b"2")
    assert len([c for c in sim.sim.commands if c.startswith("AT+QMTOPEN")]) == 2
    assert [r["topic"] for r in sim.sim.received] == ["a", "b"]


def test_modem_restart_recovers(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]})
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    wait_for(link.available, what="registered")
    assert link.send("before", b"1")
    port = sim.port
    sim.stop()
    wait_for(lambda: not link.available(), what="modem gone")
    assert link.send("during", b"2") is False  # nothing lost: the caller keeps the row
    again = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]}, port=port)
    wait_for(link.available, timeout_s=6, what="modem back")
    assert link.send("after", b"3")
    assert [r["topic"] for r in again.sim.received] == ["after"]
    assert "ATE0" in again.sim.commands  # re-initialised after the restart
    assert m.modem.reconnects >= 1


def test_oversized_payload_left_for_primary(modem_sim: Any, modem_mgr: Any) -> None:
    sim = modem_sim()
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    wait_for(link.available, what="registered")
    assert link.send("t", b"x" * 1600) is False
    assert sim.sim.received == []


def test_malformed_qmtstat_never_raises_out_of_the_reader(
    modem_sim: Any, modem_mgr: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's 203 bad '+QMTSTAT: 0,x' lines gave 19 tracebacks and 19 reconnects: now each is
    refused and counted, the kind is logged once, the port stays up, the session is re-opened."""
    import logging

    caplog.set_level(logging.WARNING, logger="edge")
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]})
    m = modem_mgr(sim.url)
    link = m.fallback_link()
    wait_for(link.available, what="registered")
    assert link.send("a", b"1")
    for i in range(203):
        sim.sim.push_urc(f"+QMTSTAT: 0,{'x' * (1 + i % 3)}")
    wait_for(lambda: m.modem.decoder.rejected >= 203, what="bad URCs refused")
    time.sleep(0.2)
    assert m.modem.decoder.rejected == 203 and m.modem.decoder.rejects.by_kind == {"bad_reply": 203}
    assert m.modem.reconnects == 0 and m.modem.connected
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    refusals = [r.getMessage() for r in caplog.records if "refused a line" in r.getMessage()]
    assert len(refusals) == 1 and "kind=bad_reply" in refusals[0] and "+QMTSTAT: 0,x" in refusals[0]
    closes = [r for r in caplog.records if "MQTT link closed" in r.getMessage()]
    assert len(closes) == 1  # a state change, logged once, not 203 times
    assert not m.modem.mqtt_connected  # an unreadable +QMTSTAT is still taken as a close
    assert link.send("b", b"2")
    assert [r["topic"] for r in sim.sim.received] == ["a", "b"]
    assert m.health()["modem"]["rejected_by_kind"] == {"bad_reply": 203}


def test_unreadable_poll_reply_is_counted_not_fatal(modem_sim: Any, modem_mgr: Any) -> None:
    """A +CSQ out of range (40) is refused and counted by the poller; the port stays up."""
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 40}]})
    m = modem_mgr(sim.url)
    wait_for(lambda: m.modem.decoder.rejected >= 2, what="bad +CSQ refused")
    assert set(m.modem.decoder.rejects.by_kind) == {"out_of_range"}
    assert m.modem.reconnects == 0 and m.modem.connected
    assert "unreadable reply" in m.modem.last_error and "+CSQ values out of range" in m.modem.last_error
    assert m.health()["modem"]["csq"] is None
