"""``edge-agent demo`` end to end: the real agent on the synthetic street, against ground truth.

The full run is the README's first command: ``python -m edge demo``. It must find every
violation, overflow, dispatch task (open -> acknowledged -> resolved), bike outside the bay and
crowd surge of the scenario, inside their time windows, and nothing spurious.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.errors import ConfigError
from firmware_sim.demo import build_demo_config, format_event, run_demo
from firmware_sim.street import default_scenario
from firmware_sim.street.source import DEFAULT_START_TS
from tests.fixtures.broker import Broker, mosquitto  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


def _args(tmp_path: Path, **kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "config": str(REPO / "firmware_sim" / "street" / "demo-street.yaml"),
        "broker": None,
        "real": False,
        "out": str(tmp_path / "out"),
        "speed": 0.0,
        "duration": None,
        "seed": 0,
        "verbose": False,
    }
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.slow
def test_demo_matches_the_street_ground_truth(tmp_path: Path) -> None:
    """The README's first command, in a fresh process, in a fresh working directory."""
    out = tmp_path / "demo-out"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "--log-level", "WARNING", "demo", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth_ok"] is True, summary["truth"]
    expected = default_scenario().expected
    assert len(summary["truth"]) == len(expected)  # one line per expected episode, none spurious
    assert all(" found at " in line for line in summary["truth"])
    assert "SPURIOUS" not in proc.stdout and "MISSING" not in proc.stdout
    assert f"OK: {len(expected)}/{len(expected)} expected episodes found, 0 spurious" in proc.stdout
    # events were printed as they happened, and made durable in the outbox's JSONL sink
    assert proc.stdout.count("parking_violation  start") == 2
    assert "(operator) ack_task" in proc.stdout
    lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines() if x.strip()]
    kinds = {e["kind"] for e in lines}
    assert {
        "parking_violation",
        "bike_bay_overflow",
        "dispatch_task",
        "bike_outside_bay",
        "crowd_surge",
    } <= kinds
    assert summary["events"]["parking_violation"] >= 4  # two starts, two ends at least
    task_states = [e["payload"]["state"] for e in lines if e["kind"] == "dispatch_task"]
    assert task_states[:3] == ["open", "acknowledged", "resolved"]
    assert summary["fps"] > 0


def test_demo_publishes_to_a_real_broker(tmp_path: Path, mosquitto: Broker) -> None:  # noqa: F811
    """--broker: the first 100 s of the street (car-A's violation starts at ~71 s) reach MQTT."""
    import paho.mqtt.client as mqtt

    raw: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-test-sub")
    client.on_connect = lambda c, *_: c.subscribe("edge/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: raw.append((msg.topic, bytes(msg.payload)))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        cfg = build_demo_config(_args(tmp_path, broker=f"{mosquitto.host}:{mosquitto.port}", duration=100.0))
        assert cfg.uplink.mqtt is not None and cfg.uplink.mqtt.port == mosquitto.port
        stream = io.StringIO()
        result = run_demo(cfg, out_dir=tmp_path / "out", stream=stream)
        assert result.exit_code == 0, stream.getvalue()
        assert result.truth_ok is None  # a partial run is not judged against the whole story
        deadline = threading.Event()
        for _ in range(50):
            if any(t.endswith("/events/parking_violation") for t, _ in raw):
                break
            deadline.wait(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    got = [(t, json.loads(p)) for t, p in raw if "/events/" in t]
    topics = {t for t, _ in got}
    assert "edge/demo-street/demo-pole-1/events/parking_violation" in topics
    starts = [p for t, p in got if t.endswith("/events/parking_violation") and p["phase"] == "start"]
    assert len(starts) == 1 and starts[0]["zone_id"] == "kerb-no-parking"
    assert starts[0]["model"]["name"] == "motion"
    # the same events went to MQTT as to the demo's own printout
    printed = [e for e in result.events if e["kind"] == "parking_violation" and e["phase"] == "start"]
    assert [e["event_id"] for e in printed] == [s["event_id"] for s in starts]


def test_duration_and_seed_go_into_the_street_source(tmp_path: Path) -> None:
    cfg = build_demo_config(_args(tmp_path, duration=30.0, seed=7, speed=2.0))
    assert cfg.cameras[0].source == "sim://street?seed=7&duration=30&speed=2"
    assert cfg.uplink.outbox_path == str((tmp_path / "out" / "outbox.sqlite").resolve())
    assert cfg.uplink.mqtt is None


@pytest.mark.parametrize("broker", ["localhost", "host:port", ":1883", "h:70000"])
def test_bad_broker_is_a_config_error(tmp_path: Path, broker: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        build_demo_config(_args(tmp_path, broker=broker))


def test_real_without_assets_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ASSETS", str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match="EDGE_ASSETS"):
        build_demo_config(_args(tmp_path, real=True))


@pytest.mark.assets
@pytest.mark.slow
def test_real_runs_the_default_model_on_the_real_clip(
    tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_ASSETS", str(assets))
    cfg = build_demo_config(_args(tmp_path, real=True, duration=15.0))
    assert cfg.cameras[0].model == "yolox_nano_416"
    stream = io.StringIO()
    result = run_demo(cfg, out_dir=tmp_path / "out", stream=stream, duration_s=15.0)
    assert result.exit_code == 0, stream.getvalue()
    assert 140 <= result.frames <= 160  # 15 s of a 10 fps clip
    densities = [e for e in result.events if e["kind"] == "crowd_density"]
    assert densities and densities[0]["model"]["name"] == "yolox_nano_416"
    assert "no ground-truth verdict" in stream.getvalue()


def test_event_lines_are_readable() -> None:
    ev = {
        "kind": "parking_violation",
        "phase": "start",
        "zone_id": "kerb-no-parking",
        "camera_id": "street",
        "severity": "major",
        "severity_reason": "parked 1 min in no-stopping zone",
        "ts": DEFAULT_START_TS + 71.25,
        "payload": {},
    }
    line = format_event(ev, DEFAULT_START_TS)
    assert line.split()[:4] == ["71.2s", "parking_violation", "start", "kerb-no-parking"]
    assert line.endswith("parked 1 min in no-stopping zone")


@pytest.mark.slow
def test_a_demo_that_misses_the_truth_fails(tmp_path: Path) -> None:
    """With a 200 s grace time no car overstays: the expected violations are missing -> exit 1."""
    data = yaml.safe_load((REPO / "firmware_sim" / "street" / "demo-street.yaml").read_text())
    data["rules"]["parking"]["grace_s"] = 200
    cfg_path = tmp_path / "strict.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    cfg = build_demo_config(_args(tmp_path, config=str(cfg_path)))
    stream = io.StringIO()
    result = run_demo(cfg, out_dir=tmp_path / "out", stream=stream)
    assert result.truth_ok is False
    assert result.exit_code == 1
    missing = [line for line in result.truth_lines if "MISSING" in line]
    assert len(missing) == 2 and all(line.startswith("parking_violation") for line in missing)
    assert "MISMATCH: 5/7 expected episodes found, 0 spurious" in stream.getvalue()
