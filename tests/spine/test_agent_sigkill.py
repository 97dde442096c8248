"""The whole agent killed with SIGKILL mid-publish, three times, then run to the end: the platform
receives every event exactly once after dedupe by event_id, with no gap in seq."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.events.schema import validate_event
from tests.uplink.helpers import Consumer, wait_until

REPO = Path(__file__).resolve().parents[2]


def street_config(tmp_path: Path, port: int) -> Path:
    cfg = yaml.safe_load((REPO / "firmware_sim" / "street" / "demo-street.yaml").read_text())
    # 8x real time, the first 150 s of the street: events flow steadily, a run ends in ~20 s.
    cfg["cameras"][0]["source"] = "sim://street?seed=3&speed=8&duration=150"
    cfg["uplink"] = {
        "topic_prefix": "edge",
        "outbox_path": str(tmp_path / "var" / "outbox.sqlite"),
        "mqtt": {"host": "127.0.0.1", "port": port, "backoff_min_s": 0.1, "backoff_max_s": 0.5},
    }
    cfg["health"] = {"health_interval_s": 2, "disk_path": str(tmp_path)}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "--log-level", "WARNING", "run", "--config", str(config)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.broker
@pytest.mark.slow
def test_agent_killed_mid_publish_loses_nothing(tmp_path: Path, mosquitto: Any) -> None:
    config = street_config(tmp_path, mosquitto.port)
    consumer = Consumer(mosquitto.host, mosquitto.port, topic="edge/#", client_id="platform").start()
    try:
        for kill in range(3):
            proc = start(config)
            before = len(consumer.events())
            # Kill it while it is publishing: after some new events have arrived.
            wait_until(lambda b=before: len(consumer.events()) >= b + 15, 60, f"events before kill {kill + 1}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # The last run goes to the end of the street and exits 0 after draining its outbox.
        proc = start(config)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        time.sleep(1.0)
        seqs = consumer.unique_seqs()  # also asserts one event_id per seq (no seq reused for another event)
        assert seqs, "nothing arrived"
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
        assert missing == [], f"seq gaps: {missing[:20]}"
        events = consumer.events()
        kinds = {e["kind"] for e in events}
        assert {"parking_violation", "bike_bay_overflow", "dispatch_task", "features", "device_health"} <= kinds
        for e in events:
            validate_event(e)
        status = [p for p in consumer.on_topic("edge/demo-street/demo-pole-1/status")]
        assert b"offline" in status, "the broker published the last will when the agent was killed"
        assert status[-1] == b"offline", status[-3:]  # the clean exit: offline too (availability)...
        reason = consumer.on_topic("edge/demo-street/demo-pole-1/status/reason")[-1]
        assert json.loads(reason)["reason"] == "stopped", reason  # ...and why, unlike a kill
    finally:
        consumer.stop()
