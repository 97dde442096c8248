"""The primary broker stops -> a critical event still leaves the box through the simulated BG96's
AT+QMTPUB, fed from the same outbox (engineer C's Uplink + this package's ModemFallbackLink)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.config.hardware import HardwareConfig
from edge.config.uplink import UplinkConfig
from edge.events.builder import EventBuilder
from edge.hardware.manager import HardwareManager
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker
from tests.hardware.conftest import wait_for

pytestmark = pytest.mark.broker


def test_critical_event_goes_through_modem_while_broker_is_down(
    mosquitto: Broker,
    modem_sim: Any,
    tmp_path: Path,
) -> None:
    sim = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 19}]})
    hw = HardwareManager(
        HardwareConfig.model_validate(
            {
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.3,
                "modem": {
                    "url": sim.url,
                    "poll_interval_s": 0.2,
                    "fallback": {"host": "cell.example", "client_id": "pole-1"},
                },
            }
        ),
        "UTC",
        ntp_status=lambda: None,
    )
    hw.start()
    cfg = UplinkConfig.model_validate(
        {
            "outbox_path": str(tmp_path / "o.sqlite"),
            "mqtt": {
                "host": "127.0.0.1",
                "port": mosquitto.port,
                "fallback_after_s": 0.5,
                "backoff_min_s": 0.2,
                "backoff_max_s": 0.5,
            },
        }
    )
    ob = Outbox(cfg.outbox_path)
    up = Uplink(cfg, "pole-1", "lab", ob, fallback=hw.fallback_link())
    builder = EventBuilder("pole-1", "lab", incidents=ob)
    up.start()
    try:
        wait_for(lambda: up.connected, 10, "primary broker")
        wait_for(hw.fallback_link().available, 5, "modem registered")
        mosquitto.stop()
        wait_for(lambda: not up.connected, 10, "primary down")
        ev = builder.build(
            EventDraft(
                kind="tamper",
                phase="start",
                key="enclosure:tamper_switch",
                t=1.0,
                ts=1.8e9,
                severity="critical",
                payload={"source": "enclosure_door", "line": "tamper_switch", "pin": 27, "state": "open"},
            )
        )
        ob.put(ev)
        wait_for(lambda: len(sim.sim.received) >= 1, 15, "the alarm through AT+QMTPUB")
        rec = sim.sim.received[0]
        body = json.loads(rec["payload"])
        assert body["event_id"] == ev.event_id and body["kind"] == "tamper" and body["severity"] == "critical"
        assert rec["topic"] == "edge/lab/pole-1/events/tamper"
        wait_for(lambda: up.stats()["fallback_sent"] == 1, 5, "outbox row acked")
        assert ob.stats()["pending_by_priority"]["alarm"] == 0  # not sent twice once the broker is back
        # the modem simulator restarts (power cycle): the link recovers and carries the next alarm
        port = sim.port
        sim.stop()
        wait_for(lambda: not hw.fallback_link().available(), 5, "modem gone")
        sim2 = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 19}]}, port=port)
        wait_for(hw.fallback_link().available, 10, "modem back")
        ev2 = builder.build(
            EventDraft(
                kind="tamper",
                phase="end",
                key="enclosure:tamper_switch",
                t=2.0,
                ts=1.8e9 + 60,
                severity="critical",
                payload={"source": "enclosure_door", "line": "tamper_switch", "pin": 27, "state": "closed"},
            )
        )
        ob.put(ev2)
        wait_for(lambda: len(sim2.sim.received) >= 1, 20, "second alarm after modem restart")
        assert json.loads(sim2.sim.received[0]["payload"])["event_id"] == ev2.event_id
        assert len(sim.sim.received) == 1  # the first one was not repeated
    finally:
        up.stop(0.5)
        hw.stop()
        ob.close()
