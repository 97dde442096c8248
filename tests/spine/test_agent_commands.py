"""Commands to a running agent over a real broker: ping, reload_config (good and bad), snapshot,
task commands for unknown tasks, and malformed input. Every command gets a reply; a bad one
changes nothing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent.runner import Agent
from edge.config import config_hash, parse_config
from edge.events.schema import validate_event
from tests.uplink.helpers import Consumer, wait_until

PREFIX = "t/lab/pole-cmd"


def site(tmp_path: Path, port: int, **extra: Any) -> dict[str, Any]:
    img = tmp_path / "street.png"
    if not img.exists():
        frame = np.full((240, 320, 3), 90, np.uint8)
        cv2.rectangle(frame, (40, 150), (120, 200), (30, 30, 200), -1)
        cv2.imwrite(str(img), frame)
    data: dict[str, Any] = {
        "config_version": 1,
        "device_id": "pole-cmd",
        "site_id": "lab",
        "cameras": [
            {
                "id": "cam0",
                "source": str(img),
                "playback": "realtime",
                "hold_s": 3600,
                "detect_fps": 4,
                "model": "motion",
                "calibration": {
                    "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    "ground_points_m": [[0, 0], [16, 0], [16, 12], [0, 12]],
                },
                "zones": [{"id": "kerb", "kind": "no_parking", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
            }
        ],
        "uplink": {
            "topic_prefix": "t",
            "outbox_path": str(tmp_path / "outbox.sqlite"),
            "mqtt": {"host": "127.0.0.1", "port": port, "backoff_min_s": 0.1, "backoff_max_s": 0.5},
        },
        "health": {"health_interval_s": 3600},
    }
    data.update(extra)
    return data


class Commander:
    def __init__(self, port: int) -> None:
        self.replies: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ops-desk")
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(f"{PREFIX}/cmd/+/reply", qos=1)
        self.c.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        body = json.loads(msg.payload)
        with self.lock:
            self.replies[str(body.get("id"))] = body

    def send(self, name: str, body: bytes | dict[str, Any], rid: str | None = None) -> dict[str, Any] | None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.c.publish(f"{PREFIX}/cmd/{name}", payload, qos=1)
        if rid is None:
            return None
        wait_until(lambda: rid in self.replies, 20, f"the reply to {name} {rid}")
        with self.lock:
            return self.replies[rid]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def running(tmp_path: Path, mosquitto: Any):
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(yaml.safe_dump(site(tmp_path, mosquitto.port)))
    from edge.config import load_config

    agent = Agent(load_config(cfg_path), config_path=cfg_path)
    th = threading.Thread(target=agent.run, daemon=True)
    consumer = Consumer(mosquitto.host, mosquitto.port, topic="t/#", client_id="cmd-consumer").start()
    th.start()
    wait_until(lambda: agent.uplink.connected and "cam0" in agent.cameras and agent.cameras["cam0"].frames > 0,
               30, "the agent to connect and process a frame")
    cmd = Commander(mosquitto.port)
    yield agent, cmd, consumer, cfg_path
    cmd.close()
    agent.stop()
    th.join(timeout=30)
    consumer.stop()


@pytest.mark.broker
def test_commands_to_a_running_agent(running, tmp_path: Path) -> None:
    agent, cmd, consumer, _cfg_path = running
    old_hash = config_hash(agent.cfg)

    assert cmd.send("ping", {"id": "p1"}, "p1")["ok"] is True

    # A config that does not validate: refused with the reason, the running config unchanged.
    bad = site(tmp_path, 1)
    bad["cameras"][0]["zones"][0]["polygon"] = [[0, 0], [1, 1]]
    r = cmd.send("reload_config", {"id": "r1", "yaml": yaml.safe_dump(bad)}, "r1")
    assert r["ok"] is False and "cameras[0].zones[0].polygon: needs at least 3 points, got 2" in r["error"]
    assert config_hash(agent.cfg) == old_hash

    # Not YAML at all.
    r = cmd.send("reload_config", {"id": "r2", "yaml": "cameras: [\n  - id: x\n   bad"}, "r2")
    assert r["ok"] is False and "YAML" in r["error"]

    # Snapshot with evidence off (the default): refused, nothing written.
    r = cmd.send("snapshot", {"id": "s1"}, "s1")
    assert r["ok"] is False and "evidence is disabled" in r["error"]

    # A task nobody has.
    r = cmd.send("ack_task", {"id": "a1", "task_id": "no-such-task"}, "a1")
    assert r["ok"] is False

    # Malformed, unknown, oversized: error replies, nothing executed.
    cmd.send("reload_config", b"{not json")
    cmd.send("self_destruct", {"id": "u1"})
    r = cmd.send("ping", {"id": "big", "pad": "x" * 100_000}, None)
    time.sleep(1.0)
    assert config_hash(agent.cfg) == old_hash

    # A good config: swapped in atomically, acknowledged, later events carry the new hash.
    good = site(tmp_path, 1)
    good["uplink"] = agent.cfg.uplink.model_dump(mode="json", exclude_none=True)
    good["cameras"][0]["detect_fps"] = 2
    good["evidence"] = {"enabled": True, "path": str(tmp_path / "evidence")}
    r = cmd.send("reload_config", {"id": "r3", "yaml": yaml.safe_dump(good)}, "r3")
    assert r["ok"] is True, r
    new_hash = config_hash(parse_config(good))
    assert r["result"]["config_hash"] == new_hash == config_hash(agent.cfg)
    assert agent.cfg.cameras[0].detect_fps == 2

    # Evidence is now on: a snapshot is written on the box (not uploaded: evidence.upload is off).
    wait_until(lambda: agent.cameras["cam0"].last_step is not None, 20, "a frame after the reload")
    r = cmd.send("snapshot", {"id": "s2", "camera_id": "cam0"}, "s2")
    assert r["ok"] is True, r
    assert (tmp_path / "evidence" / r["result"]["file"]).stat().st_size > 0
    assert "jpeg_base64" not in r["result"]

    def status_events() -> list[dict[str, Any]]:
        return [e for e in consumer.events() if e["kind"] == "agent_status"]

    wait_until(lambda: any(e["payload"]["state"] == "config_reloaded" for e in status_events()), 20,
               "the config_reloaded event")
    states = [e["payload"]["state"] for e in status_events()]
    assert states.count("config_rejected") == 2 and "started" in states
    for e in consumer.events():
        validate_event(e)
    reloaded = next(e for e in status_events() if e["payload"]["state"] == "config_reloaded")
    assert reloaded["config_hash"] == new_hash
    replies = [t for t, _, _ in consumer.messages if t.endswith("/reply")]
    assert f"{PREFIX}/cmd/reload_config/reply" in replies and f"{PREFIX}/cmd/self_destruct/reply" in replies
