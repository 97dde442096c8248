"""``edge-agent privacy``: what leaves the box, asserted for every example config, checked against
what the agent really emitted on the synthetic street, and turned by the evidence settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.config import load_config, parse_config
from edge.tools.privacy import ENVELOPE_FIELDS, statement
from tests.fixtures.street_day import StreetDay

REPO = Path(__file__).resolve().parents[2]
BASE = {"agent_status", "device_health", "features", "camera_status", "camera_tamper"}
BIKES = {"bike_bay_status", "bike_bay_overflow", "dispatch_task"}
CROWD = {"crowd_density", "crowd_surge"}

# What each example config lets out, read off the files by hand: (kinds, destinations that start with).
EXPECTED = {
    "bike-bay.yaml": (BASE | BIKES | {"bike_outside_bay", "blacklisted_bike"}, ["MQTT broker mqtt.city-brain.example.cn:8883 (TLS with a client certificate)"]),
    "demo-street.yaml": (BASE | BIKES | CROWD | {"bike_outside_bay", "line_crossing", "parking_violation"}, ["JSONL file"]),
    "dev-sim.yaml": (
        BASE | BIKES | CROWD | {"parking_violation", "tamper", "sensor_status"},
        ["MQTT broker 127.0.0.1:1883 (PLAINTEXT)", "retained state topics dev/dev-lab/dev-pole-1/state/",
         "Home Assistant discovery configs homeassistant/<component>/dev-pole-1/", "JSONL file", "cellular modem",
         "Prometheus /metrics on 127.0.0.1:9108"],
    ),
    "no-parking-street.yaml": (BASE | {"parking_violation"}, ["MQTT broker mqtt.city-brain.example.cn:8883 (TLS with a client certificate)"]),
    "plaza-crowd.yaml": (BASE | CROWD | {"line_crossing"}, ["MQTT broker mqtt.city-brain.example.cn:8883 (TLS with a client certificate)"]),
}


def example(name: str) -> Path:
    """An example config: configs/, or the demo's own beside the street it watches."""
    return REPO / ("firmware_sim/street" if name == "demo-street.yaml" else "configs") / name


def test_every_example_config_has_an_expectation() -> None:
    examples = [p.name for p in (REPO / "configs").glob("*.yaml")] + ["demo-street.yaml"]
    assert sorted(examples) == sorted(EXPECTED)
    assert example("demo-street.yaml").is_file()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_privacy_statement_of_each_example_config(name: str) -> None:
    kinds, dest = EXPECTED[name]
    st = statement(load_config(example(name)))
    assert set(st.kinds) == kinds
    assert len(st.destinations) == len(dest)
    for got, want in zip(st.destinations, dest, strict=True):
        assert got.startswith(want), (got, want)
    # No example config lets an image out, and none keeps evidence.
    assert st.images_leave_box is False and st.image_paths == []
    assert st.evidence_on_box is False
    assert st.envelope_fields == list(ENVELOPE_FIELDS)  # signing is on by default
    for kind in kinds:
        assert st.kinds[kind], f"{kind}: fields listed"


def test_cli_prints_the_statement() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "edge", "privacy", "--config", "configs/bike-bay.yaml"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "images: none can leave the box" in r.stdout
    assert "  blacklisted_bike: " in r.stdout and "parking_violation" not in r.stdout


def _with(name: str, **evidence: object) -> object:
    data = yaml.safe_load(example(name).read_text(encoding="utf-8"))
    data["evidence"] = {"enabled": True, "path": "/var/lib/edge/evidence", **evidence}
    return parse_config(data, source=name)


def test_evidence_settings_decide_whether_an_image_can_leave() -> None:
    kept = statement(_with("no-parking-street.yaml"))  # type: ignore[arg-type]
    assert kept.evidence_on_box and not kept.images_leave_box
    assert kept.evidence_retention == "30 days, at most 1073741824 bytes"
    sent = statement(_with("no-parking-street.yaml", upload=True))  # type: ignore[arg-type]
    assert sent.images_leave_box and "snapshot" in sent.image_paths[0]
    no_broker = statement(_with("demo-street.yaml", upload=True))  # type: ignore[arg-type]
    assert not no_broker.images_leave_box  # upload on, but nothing can ask: JSONL only
    assert any("no command can ask" in n for n in no_broker.notes)


def test_statement_covers_what_the_agent_really_emitted(street_day: StreetDay) -> None:
    st = statement(street_day.cfg)
    seen = {e["kind"] for e in street_day.events}
    assert seen <= set(st.kinds), seen - set(st.kinds)
    assert len(seen) >= 10
    for e in street_day.events:
        assert set(e) - {"payload"} <= set(st.envelope_fields), set(e) - set(st.envelope_fields)
        assert set(e["payload"]) <= set(st.kinds[e["kind"]]), (e["kind"], set(e["payload"]) - set(st.kinds[e["kind"]]))
    # Evidence was on (kept on the box, no upload): events cite crops by name and hash only.
    assert st.evidence_on_box and not st.images_leave_box
    cited = [e["payload"] for e in street_day.events if e["payload"].get("evidence")]
    assert cited and all(p["evidence"].endswith(".jpg") and len(p["evidence_sha256"]) == 64 for p in cited)
    assert max(len(line) for line in street_day.events_path.read_text(encoding="utf-8").splitlines()) < 8000
