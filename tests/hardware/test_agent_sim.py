"""The whole agent on simulated hardware: firmware_sim radar/GPS/modem on sockets, mock GPIO pins
driven by a scenario, a real mosquitto, a still image as the camera."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config.site import SiteConfig
from edge.hardware.manager import HardwareManager
from edge.hardware.pins import MockFactory
from tests.fixtures.broker import Broker
from tests.hardware.conftest import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_agent_on_simulated_box(
    mosquitto: Broker, radar_sim: Any, gps_sim: Any, modem_sim: Any, tmp_path: Path
) -> None:
    from edge.agent.runner import Agent

    img = tmp_path / "cam0.png"
    cv2.imwrite(str(img), np.full((240, 320, 3), 90, np.uint8))
    radar = radar_sim({"timeline": [{"at_s": 0, "state": "stationary", "distance_cm": 150, "energy": 40}]})
    gps = gps_sim({"rate_hz": 5, "position": {"lat": 30.5402, "lon": 104.0611, "alt_m": 498}})
    modem = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]})
    cfg = SiteConfig.model_validate(
        {
            "config_version": 1,
            "device_id": "pole-1",
            "site_id": "lab",
            "geo": {"lat": 1.0, "lon": 2.0},
            "cameras": [
                {
                    "id": "cam0",
                    "source": str(img),
                    "model": "motion",
                    "playback": "realtime",
                    "hold_s": 20,
                    "calibration": {
                        "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                        "ground_points_m": [[0, 20], [16, 20], [16, 0], [0, 0]],
                    },
                }
            ],
            "uplink": {
                "outbox_path": str(tmp_path / "o.sqlite"),
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": mosquitto.port,
                    "backoff_min_s": 0.2,
                    "fallback_after_s": 0.5,
                    "backoff_max_s": 0.5,
                },
            },
            "hardware": {
                "pin_factory": "mock",
                "mock_scenario": str(
                    Path(__file__).resolve().parents[2] / "firmware_sim/scenarios/gpio_box.yaml"
                ),
                "status_led": {"pin": 5},
                "tamper_switch": {"pin": 27, "pull": "none", "severity": "critical"},
                "pir": {"pin": 17, "pull": "none"},
                "radar": {"url": radar.url},
                "gps": {"url": gps.url},
                "modem": {
                    "url": modem.url,
                    "poll_interval_s": 0.5,
                    "fallback": {"host": "cell.example", "client_id": "pole-1"},
                },
                "reconnect_min_s": 0.1,
            },
        }
    )
    hw = HardwareManager(cfg.hardware, cfg.timezone, pin_factory=MockFactory(), ntp_status=lambda: False)
    events: list[dict[str, Any]] = []
    agent = Agent(cfg, on_event=events.append, hardware=hw)
    hw.start()
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    try:
        wait_for(lambda: agent.uplink.connected, 10, "the primary broker")
        mosquitto.stop()  # the primary broker goes away before the enclosure door opens (at 5 s)
        wait_for(
            lambda: any(e["kind"] == "tamper" and e["phase"] == "start" for e in events),
            15,
            "tamper start from the door",
        )
        tamper = next(e for e in events if e["kind"] == "tamper")
        assert tamper["payload"]["state"] == "open"
        assert tamper["geo"]["lat"] == pytest.approx(30.5402, abs=1e-6)  # GPS fix overrides config geo
        assert tamper["clock"] == "gps"
        assert hw.radar_presence() is True  # radar presence -> features
        assert {f.key for f in hw.features(0.0)} >= {"radar.presence", "radar.distance_m", "pir.motion"}
        # the critical tamper event leaves through the simulated modem's AT+QMTPUB
        wait_for(lambda: len(modem.sim.received) >= 1, 15, "tamper start over the cellular fallback")
        sent = json.loads(modem.sim.received[0]["payload"])
        assert sent["event_id"] == tamper["event_id"] and sent["kind"] == "tamper"
        wait_for(
            lambda: agent.uplink.stats()["fallback_sent"] >= 1, 5, "the modem's PUBACK (+QMTPUB: 0,<id>,0)"
        )
        # the modem simulator restarts; the link recovers and carries the door-closed event
        port = modem.port
        modem.stop()
        modem2 = modem_sim({"timeline": [{"at_s": 0, "registration": 1, "csq": 20}]}, port=port)
        wait_for(lambda: any(e["kind"] == "tamper" and e["phase"] == "end" for e in events), 15, "tamper end")
        end = next(e for e in events if e["kind"] == "tamper" and e["phase"] == "end")
        wait_for(lambda: len(modem2.sim.received) >= 1, 20, "tamper end over the restarted modem")
        assert json.loads(modem2.sim.received[0]["payload"])["event_id"] == end["event_id"]
        assert end["incident_id"] == tamper["incident_id"]
        assert len(modem2.sim.received) == 1  # the acknowledged start was not sent again
    finally:
        agent.stop()
        th.join(15)
        hw.stop()
