"""People counting on real footage: YOLOX-Nano over the Intel one-by-one clip, with a line across
the way in (people walk in from under the camera, one at a time, towards a table).

Ground truth, checked by eye on a contact sheet of every 20th frame: six people enter (at about
8 s, 24 s, 52 s, 74 s, 92 s and 134 s of video) and nobody walks back out across the line.
Person five is first detected with the feet already past the line, so a line can count at most
five of them reliably; the test allows that one miss and no false count, at three frame rates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.agent.runner import Agent
from edge.config import parse_config
from tests.fixtures.assets import require_asset


@pytest.mark.slow
@pytest.mark.parametrize("fps", [2.5, 5, 10])
def test_line_counts_the_entries(tmp_path: Path, assets: Path, fps: float) -> None:
    clip = require_asset("media/intel_one-by-one-person-detection.mp4")
    require_asset("models/yolox_nano_416.onnx")
    cfg = parse_config({
        "config_version": 1, "device_id": "door", "site_id": "lab",
        "cameras": [{
            "id": "hall", "source": str(clip), "detect_fps": fps, "model": "yolox_nano_416",
            # The way in is the bottom of the view: a line just above the frame's bottom edge.
            "lines": [{"id": "entry", "a": [1.0, 0.97], "b": [0.0, 0.97], "classes": ["person"]}],
        }],
        "uplink": {"outbox_path": str(tmp_path / "outbox.sqlite")},
        "health": {"health_interval_s": 1e9},
    })
    events: list[dict[str, Any]] = []
    assert Agent(cfg, on_event=events.append).run() == 0
    crossings = [e["payload"] for e in events if e["kind"] == "line_crossing"]
    ins = [c for c in crossings if c["direction"] == "in"]
    outs = [c for c in crossings if c["direction"] == "out"]
    assert outs == [], "nobody leaves across the line: an 'out' is a jitter count"
    assert 5 <= len(ins) <= 6, f"{len(ins)} entries counted; six people walk in"
    assert len({c["track_id"] for c in ins}) == len(ins), "each person counted once"
    feats = [e for e in events if e["kind"] == "features"]
    assert sum(f["payload"]["lines"]["entry"]["in"] for f in feats) == len(ins)
