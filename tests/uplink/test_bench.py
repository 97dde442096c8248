"""The outbox/uplink benchmark behind README's table measures what it says, against a real broker:
every latency sample is an event that went outbox -> broker -> subscriber (figures are not checked
here; benchmarks are not timed tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.uplink.bench import bench_broker


def test_latency_run_receives_every_event(tmp_path: Path, mosquitto: Any) -> None:
    res = bench_broker(tmp_path, "127.0.0.1", mosquitto.port, n=200, rate=100.0, seconds=1.0)
    assert res["drain_per_s"] > 0
    # 100 events at 100/s: each one reached the subscriber (it acknowledges by hand, as the
    # session's Receive Maximum requires; without the acks it stalled after 16 and had no samples)
    assert res["latency_samples"] == 100
    assert 0 < res["latency_p50_ms"] <= res["latency_p95_ms"]
