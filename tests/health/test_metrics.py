"""Prometheus metrics: the exposition parsed with prometheus_client's own text parser, names and types
checked against Prometheus' naming rules, and values against the inputs (table-driven) and against a
running agent scraped over real HTTP."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from edge import __version__
from edge.agent.runner import Agent
from edge.config import parse_config
from edge.config.health import MetricsConfig
from edge.health.metrics import AgentMetrics, CameraCounters, MetricsInputs, MetricsServer
from edge.health.tamper import FAULTS
from edge.integrations.model import BoxState, CameraState, ZoneState
from tests.integrations.test_home_assistant import street_config
from tests.uplink.helpers import wait_until

HEALTH = {
    "cpu_percent": 12.5,
    "load": [0.5, 0.4, 0.3],
    "temperature_c": 55.0,
    "throttled": {"raw": "0x0", "undervoltage": False, "throttled": True},
    "memory": {"total_bytes": 100, "available_bytes": 60},
    "disk": {"path": "/", "total_bytes": 1000, "free_bytes": 400},
    "uptime_s": 99.0,
}
BAY = ZoneState("cam0", "bay", "bike_bay", ("bicycle",), count=7, counts={"bicycle": 7}, capacity=6,
                occupancy=1.167, overflow=True)  # fmt: skip
PLAZA = ZoneState("cam0", "plaza", "crowd", ("person",), count=3, counts={"person": 3}, density=0.25, los="B")
KERB = ZoneState("cam0", "kerb", "no_parking", ("motorcycle", "car", "bus", "truck"), count=1,
                 counts={"car": 1}, violations=1)  # fmt: skip
INPUTS = MetricsInputs(
    health=HEALTH,
    box=BoxState(
        cameras=(
            CameraState(
                "cam0", online=True, tamper_checked=True, faults=("covered",), zones=(BAY, PLAZA, KERB)
            ),
        ),
        door_open=False,
    ),
    cameras=(
        CameraCounters(
            "cam0", captured=120, processed=110, dropped=10, skipped=40, errors=2,
            model_output={"state": "garbage", "passes": 9, "bad_passes": 9, "nonfinite_values": 0,
                          "dropped_rows": {"non_finite": 0, "score_range": 27, "huge_box": 3}},
        ),
        CameraCounters("motion", captured=5, processed=5, dropped=0, skipped=0, errors=0),  # model-free
    ),
    outbox={
        "pending": 3,
        "bytes": 2048,
        "limit_bytes": 10**6,
        "oldest_age_s": 1.5,
        "dropped": {"alarm": 0, "info": 4, "feature": 9},
        "write_failures": 0,
    },
    uplink={
        "connected": True,
        "disconnected_for_s": 0.0,
        "sent": 50,
        "acked": 47,
        "rejected": 0,
        "reconnects": 2,
        "connect_failures": 1,
        "fallback_sent": 0,
        "latest_sent": 12,
        "commands_ok": 3,
        "commands_rejected": 1,
        "commands_rate_limited": 0,
        "commands_repeated": 0,
        "commands_dropped": 0,
    },
    events={"features": 5, "bike_bay_status": 9, "rejected": 1},
    config_hash="abc123",
)


def parse(text: str) -> dict[str, Any]:
    """family name -> family, as Prometheus' text parser reads them."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The value of one sample (``name`` with its suffix: ``_total``, ``_bucket``, ``_count`` ...)."""
    for fam in families.values():
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise KeyError(f"{name}{labels} not exposed")


def scrape_inputs(inputs: MetricsInputs) -> dict[str, Any]:
    m = AgentMetrics(lambda: inputs)
    from prometheus_client import generate_latest

    return parse(generate_latest(m.registry).decode())


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        ("edge_cpu_usage_ratio", {}, 0.125),
        ("edge_load_average", {"window": "15m"}, 0.3),
        ("edge_soc_temperature_celsius", {}, 55.0),
        ("edge_throttled", {"flag": "throttled"}, 1.0),
        ("edge_throttled", {"flag": "undervoltage"}, 0.0),
        ("edge_memory_available_bytes", {}, 60.0),
        ("edge_disk_free_bytes", {}, 400.0),
        ("edge_outbox_messages", {}, 3.0),
        ("edge_outbox_oldest_age_seconds", {}, 1.5),
        ("edge_outbox_dropped_total", {"priority": "feature"}, 9.0),
        ("edge_broker_connected", {}, 1.0),
        ("edge_uplink_messages_acked_total", {}, 47.0),
        ("edge_uplink_commands_total", {"result": "rejected"}, 1.0),
        ("edge_events_total", {"kind": "bike_bay_status"}, 9.0),
        ("edge_events_rejected_total", {}, 1.0),
        ("edge_camera_frames_processed_total", {"camera": "cam0"}, 110.0),
        ("edge_camera_frames_skipped_total", {"camera": "cam0"}, 40.0),
        ("edge_camera_pipeline_errors_total", {"camera": "cam0"}, 2.0),
        ("edge_camera_online", {"camera": "cam0"}, 1.0),
        ("edge_camera_tamper_active", {"camera": "cam0", "fault": "covered"}, 1.0),
        ("edge_camera_tamper_active", {"camera": "cam0", "fault": "moved"}, 0.0),
        ("edge_camera_model_garbage", {"camera": "cam0"}, 1.0),
        ("edge_camera_model_rows_dropped_total", {"camera": "cam0", "reason": "score_range"}, 27.0),
        ("edge_camera_model_rows_dropped_total", {"camera": "cam0", "reason": "huge_box"}, 3.0),
        ("edge_zone_objects", {"camera": "cam0", "zone": "bay"}, 7.0),
        ("edge_zone_class_objects", {"camera": "cam0", "zone": "kerb", "class": "car"}, 1.0),
        (
            "edge_zone_class_objects",
            {"camera": "cam0", "zone": "kerb", "class": "bus"},
            0.0,
        ),  # watched, none now
        ("edge_zone_occupancy_ratio", {"camera": "cam0", "zone": "bay"}, 1.167),
        ("edge_zone_overflow", {"camera": "cam0", "zone": "bay"}, 1.0),
        ("edge_zone_density_persons_per_square_meter", {"camera": "cam0", "zone": "plaza"}, 0.25),
        ("edge_zone_level_of_service", {"camera": "cam0", "zone": "plaza", "level": "B"}, 1.0),
        ("edge_zone_level_of_service", {"camera": "cam0", "zone": "plaza", "level": "C"}, 0.0),
        ("edge_zone_violations", {"camera": "cam0", "zone": "kerb"}, 1.0),
        ("edge_enclosure_door_open", {}, 0.0),
        ("edge_config_info", {"config_hash": "abc123"}, 1.0),
        (
            "edge_build_info",
            {"version": __version__, "python_version": __import__("platform").python_version()},
            1.0,
        ),
    ],
)
def test_values_from_inputs(name: str, labels: dict[str, str], expected: float) -> None:
    assert value(scrape_inputs(INPUTS), name, **labels) == pytest.approx(expected)


def test_a_model_free_camera_has_no_model_guard_series() -> None:
    fams = scrape_inputs(INPUTS)
    with pytest.raises(KeyError):
        value(fams, "edge_camera_model_garbage", camera="motion")
    assert value(fams, "edge_camera_frames_processed_total", camera="motion") == 5.0


def test_naming_rules() -> None:
    """Counters end in _total, no gauge pretends to be one, durations are histograms in seconds, a
    missing reading is left out rather than reported as 0."""
    fams = scrape_inputs(INPUTS)
    for fam in fams.values():
        for s in fam.samples:
            assert s.name.startswith(("edge_", "process_", "python_")), s.name
            if fam.type == "counter":
                assert s.name.endswith(("_total", "_created")), s.name
            else:
                assert not s.name.endswith("_total"), f"{s.name} is a {fam.type}"
            assert "_ms" not in s.name and "percent" not in s.name and "_p95" not in s.name, s.name
    assert fams["edge_outbox_dropped"].type == "counter"
    assert fams["edge_inference_duration_seconds"].type == "histogram"
    assert fams["edge_pipeline_step_duration_seconds"].type == "histogram"
    missing = MetricsInputs(health={"cpu_percent": None, "load": []}, box=BoxState(()), cameras=(), outbox={},
                            uplink=None, events={})  # fmt: skip
    fams = scrape_inputs(missing)
    assert "edge_cpu_usage_ratio" not in fams and "edge_broker_connected" not in fams
    assert "edge_enclosure_door_open" not in fams  # no switch: no door metric, not a closed door


def test_histograms_in_seconds() -> None:
    m = AgentMetrics(lambda: INPUTS)
    for ms in (3.0, 40.0, 40.0, 900.0):
        m.observe_step("cam0", {"detect": ms, "checks": 1.0, "analytics": 2.0}, inferred=True)
    m.observe_step("cam0", {"detect": 0.1, "checks": 1.0, "analytics": 2.0}, inferred=False)  # gated
    from prometheus_client import generate_latest

    fams = parse(generate_latest(m.registry).decode())
    assert value(fams, "edge_inference_duration_seconds_count", camera="cam0") == 4
    assert value(fams, "edge_inference_duration_seconds_sum", camera="cam0") == pytest.approx(0.983)
    assert value(fams, "edge_inference_duration_seconds_bucket", camera="cam0", le="0.05") == 3
    assert value(fams, "edge_inference_duration_seconds_bucket", camera="cam0", le="0.5") == 3
    assert value(fams, "edge_inference_duration_seconds_bucket", camera="cam0", le="1.0") == 4
    assert value(fams, "edge_pipeline_step_duration_seconds_count", camera="cam0") == 5
    assert value(fams, "edge_pipeline_step_duration_seconds_sum", camera="cam0") == pytest.approx(
        0.9831 + 0.015
    )


def test_step_histogram_sums_the_stages_only() -> None:
    """The agent's timings also carry the parts of detect (pre, infer, post), the wait for the shared
    inference (queue) and the end-to-end latency: a step is detect + checks + analytics."""
    m = AgentMetrics(lambda: INPUTS)
    timing = {"pre": 1.0, "queue": 30.0, "infer": 20.0, "post": 2.0, "detect": 23.0, "checks": 1.0, "analytics": 4.0}
    m.observe_step("cam0", {**timing, "latency": 58.0}, inferred=True)
    from prometheus_client import generate_latest

    fams = parse(generate_latest(m.registry).decode())
    assert value(fams, "edge_pipeline_step_duration_seconds_sum", camera="cam0") == pytest.approx(0.028)
    assert value(fams, "edge_inference_duration_seconds_sum", camera="cam0") == pytest.approx(0.023)


def test_endpoint_on_loopback() -> None:
    srv = MetricsServer(MetricsConfig(enabled=True, port=0), AgentMetrics(lambda: INPUTS))
    srv.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert value(parse(body), "edge_outbox_messages") == 3
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        srv.stop()


def test_non_loopback_bind_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MetricsConfig(host="0.0.0.0")


def _samples(fams: dict[str, Any], family: str, suffix: str = "") -> Iterable[Sample]:
    return [s for s in fams[family].samples if s.name == family + suffix]


@pytest.mark.broker
@pytest.mark.slow
def test_scrape_a_running_agent(tmp_path: Path, mosquitto: Any) -> None:
    """The street in real time (x4): scrape /metrics over HTTP while bikes roll into the bay and
    compare with what the agent itself holds."""
    data = street_config(tmp_path, mosquitto.port, duration_s=200)
    data["cameras"][0]["source"] += "&speed=4"
    data["health"].update(health_interval_s=1, metrics={"enabled": True, "port": 0})
    agent = Agent(parse_config(data))
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    try:
        wait_until(
            lambda: agent.metrics_server is not None and agent.health.last_payload is not None, 20, "metrics"
        )
        assert agent.metrics_server is not None
        url = f"http://127.0.0.1:{agent.metrics_server.port}/metrics"
        cam = lambda: agent.cameras["street"]  # noqa: E731
        wait_until(
            lambda: cam().analytics.zone_states()["bay-1"].get("count", 0) >= 2, 60, "bikes in the bay"
        )

        def scrape() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
            before, zones_before = dict(cam().stats.totals), cam().analytics.zone_states()
            with urllib.request.urlopen(url, timeout=5) as resp:
                fams = parse(resp.read().decode())
            return fams, before, zones_before, cam().analytics.zone_states()

        for _ in range(20):  # a scrape between two frames that changed nothing in the zones
            fams, before, zb, za = scrape()
            if all(zb[z].get("count") == za[z].get("count") for z in zb):
                break
        after = dict(cam().stats.totals)

        assert (
            value(
                fams,
                "edge_build_info",
                version=__version__,
                python_version=__import__("platform").python_version(),
            )
            == 1
        )
        assert value(fams, "edge_broker_connected") == 1
        assert value(fams, "edge_camera_online", camera="street") == 1
        for fault in FAULTS:
            assert value(fams, "edge_camera_tamper_active", camera="street", fault=fault) == 0
        processed = value(fams, "edge_camera_frames_processed_total", camera="street")
        assert before["processed"] <= processed <= after["processed"]
        assert fams["edge_camera_frames_processed"].type == "counter"
        # the step histogram saw every processed frame (observed right after the counter)
        steps = value(fams, "edge_pipeline_step_duration_seconds_count", camera="street")
        assert processed - 2 <= steps <= processed
        buckets = [s.value for s in _samples(fams, "edge_pipeline_step_duration_seconds", "_bucket")]
        assert buckets == sorted(buckets) and buckets[-1] == steps  # cumulative, +Inf holds them all
        infer = value(fams, "edge_inference_duration_seconds_count", camera="street")
        assert 0 < infer <= steps
        assert (
            value(fams, "edge_pipeline_step_duration_seconds_sum", camera="street") / steps < 1.0
        )  # seconds, not ms
        for zid, st in za.items():
            assert value(fams, "edge_zone_objects", camera="street", zone=zid) == st["count"], zid
        bay = za["bay-1"]
        assert (
            value(fams, "edge_zone_class_objects", camera="street", zone="bay-1", **{"class": "bicycle"})
            == bay["by_class"]["bicycle"]
        )
        assert value(fams, "edge_zone_occupancy_ratio", camera="street", zone="bay-1") == pytest.approx(
            bay["occupancy"]
        )
        assert (
            value(fams, "edge_zone_level_of_service", camera="street", zone="plaza", level=za["plaza"]["los"])
            == 1
        )
        assert (
            value(fams, "edge_events_total", kind="bike_bay_status") <= agent.events.counts["bike_bay_status"]
        )
        assert value(fams, "edge_cpu_usage_ratio") <= 1.0
        assert value(fams, "edge_outbox_messages") >= 0
        assert "process_resident_memory_bytes" in fams
    finally:
        agent.stop()
        th.join(30)
