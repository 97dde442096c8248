from __future__ import annotations

import pytest

from edge.health.stats import CameraStats


def test_rates_and_percentiles_over_window() -> None:
    st = CameraStats("cam0", window_s=10.0)
    for i in range(150):  # 15 fps captured for 10 s
        st.record_captured(i / 15)
    for i in range(50):  # 5 fps processed; latencies 1..50 ms, every 5th skipped by gating
        t = i / 5
        st.record_processed(t, None if i % 5 == 4 else float(i + 1))
    st.record_dropped(5.0, 20)
    snap = st.snapshot(10.0)
    assert snap["fps_captured"] == pytest.approx(15.0, rel=0.02)
    assert snap["fps_processed"] == pytest.approx(5.0, rel=0.02)
    assert snap["fps_dropped"] == pytest.approx(2.0, rel=0.02)
    lat = [float(i + 1) for i in range(50) if i % 5 != 4]
    import numpy as np

    assert snap["inference_p50_ms"] == pytest.approx(float(np.percentile(lat, 50)), abs=1e-3)
    assert snap["inference_p95_ms"] == pytest.approx(float(np.percentile(lat, 95)), abs=1e-3)
    assert snap["skipped_fraction"] == pytest.approx(0.2)
    assert snap["totals"] == {"captured": 150, "processed": 50, "dropped": 20, "skipped": 10}


def test_old_samples_leave_the_window() -> None:
    st = CameraStats("cam0", window_s=5.0)
    for i in range(10):
        st.record_processed(float(i), 100.0)
    for i in range(10, 20):
        st.record_processed(float(i), 10.0)
    snap = st.snapshot(19.0)
    assert snap["inference_p95_ms"] == pytest.approx(10.0)
    assert snap["fps_processed"] == pytest.approx(6 / 5.0)  # t = 14..19 inclusive
    assert snap["totals"]["processed"] == 20


def test_empty_stats_are_none_not_zero() -> None:
    snap = CameraStats("cam0").snapshot(0.0)
    assert snap["inference_p50_ms"] is None and snap["inference_p95_ms"] is None
    assert snap["fps_processed"] == 0.0
