"""Every payload the agent writes is strict JSON (no NaN, no Infinity), even when a sensor or the
position source hands it non-finite numbers: the real runner, event builder, SQLite outbox and
JSONL sink on a still image, with a hardware stand-in that returns NaN now and then.

The stand-in is deliberate: the real GPS and radar codecs can no longer produce NaN (see
tests/hardware/test_fault_campaign.py), so only a stand-in can test the guard behind them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.agent.runner import Agent
from edge.config import parse_config
from edge.events.schema import validate_event
from edge.types import EventDraft, FeatureValue

NAN = float("nan")


def strict_loads(line: bytes | str) -> Any:
    def refuse(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    return json.loads(line, parse_constant=refuse)


class FlakyHardware:
    """A box whose GPS says (nan, nan) on every other read and whose radar distance is NaN on every
    third feature record."""

    def __init__(self) -> None:
        self.geo_calls = 0
        self.feature_calls = 0

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def fallback_link(self) -> None:
        return None

    def clock_quality(self) -> str:
        return "gps"

    def geo(self) -> dict[str, float]:
        self.geo_calls += 1
        return {"lat": NAN, "lon": NAN} if self.geo_calls % 2 else {"lat": 30.54, "lon": 104.06}

    def time_offset_s(self) -> None:
        return None

    def poll(self, t: float, ts: float) -> list[EventDraft]:
        return []

    def heartbeat(self) -> None: ...
    def enclosure_open(self) -> bool:
        return False

    def set_status(self, state: str) -> None: ...
    def set_scene_brightness(self, luma: float) -> None: ...
    def motion_active(self) -> bool:
        return False

    def radar_presence(self) -> bool | None:
        return True

    def alarm(self, tr: EventDraft) -> None: ...
    def health(self) -> dict[str, Any]:
        return {"radar": {"status": "online"}}

    def features(self, t: float) -> list[FeatureValue]:
        self.feature_calls += 1
        dist = NAN if self.feature_calls % 3 == 0 else 2.5
        return [
            FeatureValue("radar.presence", None, 1.0, "1", 1.0, t),
            FeatureValue("radar.distance_m", None, dist, "m", 1.0, t),
        ]


def test_every_payload_the_agent_writes_is_strict_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), np.full((120, 160, 3), 80, np.uint8))
    cfg = parse_config(
        {
            "config_version": 1,
            "device_id": "pole-nan",
            "site_id": "lab",
            "cameras": [
                {
                    "id": "cam0",
                    "source": str(img),
                    "playback": "realtime",
                    "hold_s": 3600,
                    "detect_fps": 5,
                    "model": "motion",
                    "calibration": {
                        "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                        "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]],
                    },
                    "zones": [{"id": "z", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                }
            ],
            "rules": {"feature_interval_s": 0.3},
            "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
            "health": {"health_interval_s": 1},
        }
    )
    hw = FlakyHardware()
    seen: list[dict[str, Any]] = []
    agent = Agent(cfg, on_event=seen.append, hardware=hw)
    caplog.set_level(logging.WARNING)
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            agent.events.counts["features"] >= 4 and agent.events.counts["device_health"] >= 1
        ):
            time.sleep(0.05)
    finally:
        agent.stop()
        th.join(20)
    # A NaN sensor reading is left out of the feature record; the record itself is kept.
    assert agent.events.counts["rejected"] == 0, agent.events.counts
    assert agent.events.counts["features"] >= 4
    sink = tmp_path / "events.jsonl"
    lines = sink.read_bytes().splitlines()
    assert len(lines) >= 6  # agent_status started, features, device_health
    docs = [strict_loads(ln) for ln in lines]  # a NaN anywhere would raise here
    for d in docs:
        validate_event(d)
    assert {"agent_status", "features", "device_health"} <= {d["kind"] for d in docs}
    geos = [d["geo"] for d in docs]
    assert None in geos and {"lat": 30.54, "lon": 104.06} in geos  # a NaN fix is left out, not sent
    feats = [d for d in docs if d["kind"] == "features"]
    distances = [d["payload"]["sensors"].get("radar.distance_m") for d in feats]
    assert None in distances and set(distances) == {None, 2.5}, distances  # NaN readings left out, 2.5 kept
    assert all(d["payload"]["sensors"]["radar.presence"] == 1.0 for d in feats)
    assert [r for r in caplog.records if "position" in r.getMessage() and "refused" in r.getMessage()]
    # what the runner handed to observers matches what was written
    assert {d["event_id"] for d in seen} == {d["event_id"] for d in docs}
