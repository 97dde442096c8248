from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from edge.config.health import MetricsConfig
from edge.health.metrics import MetricsServer, render_metrics

PAYLOAD = {
    "cpu_percent": 12.5,
    "load": [0.5, 0.4, 0.3],
    "temperature_c": 55.0,
    "throttled": {"raw": "0x0", "undervoltage": False, "throttled": True},
    "memory": {"total_bytes": 100, "available_bytes": 60},
    "disk": {"path": "/", "total_bytes": 1000, "free_bytes": 400},
    "uptime_s": 99.0,
    "cameras": [
        {
            "camera_id": "cam0",
            "online": True,
            "fps_processed": 5.0,
            "inference_p95_ms": None,
            "tamper": {"active": ["covered"]},
        }
    ],
    "outbox": {"depth": 3, "oldest_age_s": 1.5, "dropped": 0},
    "broker_connected": False,
}


def test_render() -> None:
    text = render_metrics(PAYLOAD)
    lines = set(text.splitlines())
    for expected in [
        "edge_cpu_percent 12.5",
        'edge_load{window="15m"} 0.3',
        "edge_soc_temperature_celsius 55",
        'edge_throttled{flag="throttled"} 1',
        'edge_throttled{flag="undervoltage"} 0',
        "edge_outbox_depth 3",
        "edge_broker_connected 0",
        'edge_camera_fps_processed{camera="cam0"} 5',
        'edge_camera_online{camera="cam0"} 1',
        'edge_camera_tamper_active{camera="cam0",fault="covered"} 1',
        "# TYPE edge_outbox_depth gauge",
    ]:
        assert expected in lines, expected
    assert "edge_camera_inference_p95_ms" not in text  # None is left out, not reported as 0


def test_http_endpoint_on_loopback() -> None:
    srv = MetricsServer(MetricsConfig(enabled=True, port=0), lambda: PAYLOAD)
    srv.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "edge_outbox_depth 3" in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        srv.stop()


def test_non_loopback_bind_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MetricsConfig(host="0.0.0.0")
