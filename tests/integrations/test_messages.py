"""The pure side of the integrations: zone views read defensively, the state documents, the
discovery configs each zone kind gets, ids fit for Home Assistant topics, and config errors that
name the problem."""

from __future__ import annotations

from typing import Any

import pytest

from edge.config import parse_config
from edge.config.zones import ZoneConfig
from edge.errors import ConfigError
from edge.integrations.discovery import DiscoveryContext, discovery_documents, topic_id
from edge.integrations.model import BoxState, CameraState, ZoneState
from edge.integrations.state import StateTopics, encode, state_documents, state_key, zone_doc
from tests.integrations.helpers import DISCOVERY_TOPIC, render

SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def zone(kind: str, **extra: Any) -> ZoneConfig:
    return ZoneConfig.model_validate({"id": "z", "kind": kind, "polygon": SQUARE, **extra})


@pytest.mark.parametrize(
    ("view", "field", "expected"),
    [
        ({"count": 3}, "count", 3),
        ({"count": "3"}, "count", None),  # a string is not a count
        ({"count": True}, "count", None),  # nor is a bool
        ({"count": float("nan")}, "count", None),
        ({}, "count", None),  # before the first frame
        ({"count": 2, "counts": {"car": 2, "bus": 0}}, "counts", {"car": 2}),
        (
            {"count": 2, "counts": {"car": 1}, "by_class": {"bicycle": 2}},
            "counts",
            {"bicycle": 2},
        ),  # the rule's own
        ({"counts": ["car"]}, "counts", {}),
        ({"occupancy": 0.5}, "occupancy", 0.5),
        ({"density": 0.123456}, "density", 0.1235),
        ({"density": None}, "density", None),
        ({"los": "C"}, "los", "C"),
        ({"los": "G"}, "los", None),
        ({"violations": ["a", "b"]}, "violations", 2),
        ({"violations": 3}, "violations", 3),
        ({"overflow": 1}, "overflow", None),
        ({"active": False}, "active", False),
        ({"active": "no"}, "active", True),
        ({"a_key_from_a_newer_rule": {"x": 1}}, "count", None),
    ],
)
def test_zone_views_are_read_defensively(view: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(ZoneState.from_view("cam0", zone("count"), view), field) == expected


def test_zone_document_before_and_after_the_first_frame() -> None:
    z = ZoneState.from_view("cam0", zone("crowd"), {"kind": "crowd", "density": 0.0, "los": "A"})
    assert zone_doc(z, 1.8e9) is None  # no count yet: nothing is published
    z = ZoneState.from_view(
        "cam0", zone("crowd"), {"count": 4, "counts": {"person": 4}, "density": 0.5, "los": "B"}
    )
    assert zone_doc(z, 1.8e9) == {
        "kind": "crowd", "active": True, "count": 4, "counts": {"person": 4}, "density": 0.5, "los": "B",
        "ts": "2027-01-15T08:00:00.000Z",
    }  # fmt: skip


def test_state_key_ignores_the_timestamp_only() -> None:
    a = {"count": 1, "ts": "2026-11-23T00:00:00.000Z"}
    assert state_key(a) == state_key({**a, "ts": "2026-11-23T00:05:00.000Z"})
    assert state_key(a) != state_key({**a, "count": 2})
    with pytest.raises(ValueError):
        encode({"density": float("nan")})  # strict JSON: never NaN on the wire


def test_topic_ids_fit_home_assistant_and_never_collide() -> None:
    assert topic_id("pole-17_a") == "pole-17_a"
    dotted, underscored = topic_id("pole.17"), topic_id("pole_17")
    assert dotted != underscored and dotted.startswith("pole_17_")
    assert all(c.isalnum() or c in "_-" for c in topic_id("bay 3/ä+#"))


KINDS = {  # zone kind (and settings) -> the entities its zone gets, besides count and occupied
    "no_parking": ({}, {"violations", "count_motorcycle", "count_car", "count_bus", "count_truck"}),
    "bike_bay": ({"capacity": 6}, {"occupancy", "overflow"}),
    "bike_watch": ({}, set()),
    "crowd": ({}, {"density", "los"}),
    "count": ({}, {f"count_{c}" for c in ("person", "bicycle", "motorcycle", "car", "bus", "truck")}),
}
VIEWS = {
    "no_parking": {"count": 1, "counts": {"car": 1}, "violations": []},
    "bike_bay": {"count": 7, "by_class": {"bicycle": 7}, "capacity": 6, "occupancy": 1.167, "overflow": True},
    "bike_watch": {"count": 0, "counts": {}},
    "crowd": {"count": 2, "counts": {"person": 2}, "density": 0.05, "los": "A"},
    "count": {"count": 3, "counts": {"person": 2, "car": 1}},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_zone_kind_gets_its_entities(kind: str) -> None:
    extra, whats = KINDS[kind]
    zs = ZoneState.from_view("cam0", zone(kind, **extra), VIEWS[kind])
    box = BoxState(cameras=(CameraState("cam0", online=True, tamper_checked=False, ts=1.8e9, zones=(zs,)),))
    states = StateTopics("edge/lab/pole-1")
    ctx = DiscoveryContext(
        "homeassistant", "lab", "pole-1", "pole 1", "0.1.0", "edge/lab/pole-1/status", states
    )
    docs = discovery_documents(ctx, box)
    zone_uids = {
        c["unique_id"].removeprefix("edge:lab:pole-1:cam0:z:")
        for c in docs.values()
        if ":z:" in c["unique_id"]
    }
    assert zone_uids == {"count", "occupied", *whats}
    assert all(DISCOVERY_TOPIC.match(t) for t in docs)
    payloads = state_documents(states, box, 1.8e9)
    for cfg in docs.values():
        value = render(
            cfg["value_template"],
            encode(payloads[cfg["state_topic"]]) if cfg["state_topic"] in payloads else b"online",
        )
        assert value not in ("", "None"), (cfg["unique_id"], value)
    # no tamper monitor on the camera: no tamper entity (it would always say OFF)
    assert not any(c["unique_id"].endswith(":tamper") for c in docs.values())


def site(**integrations: Any) -> dict[str, Any]:
    return {
        "config_version": 1, "device_id": "pole-1", "site_id": "lab",
        "cameras": [{"id": "cam0", "source": "x.mp4", "model": "motion",
                     "zones": [{"id": "bay/3", "kind": "count", "polygon": SQUARE}]}],
        "uplink": {"outbox_path": "/tmp/outbox.sqlite", "mqtt": {"host": "127.0.0.1"}},
        "integrations": integrations,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (site(home_assistant={"enabled": True}),
         "integrations.home_assistant.enabled: Home Assistant's entities read the state topics"),
        (site(state_topics={"enabled": True}),
         "cameras[0].zones[0].id: 'bay/3' contains '/', which cannot be in an MQTT topic level"),
        ({**site(state_topics={"enabled": True}), "uplink": {"outbox_path": "/tmp/o.sqlite"}},
         "integrations.state_topics.enabled: state topics are retained MQTT messages and this box has no broker"),
        (site(home_assistant={"discovery_prefix": "home/#"}), "integrations.home_assistant.discovery_prefix:"),
        (site(state_topics={"min_interval_s": 0}), "integrations.state_topics.min_interval_s:"),
    ],
)  # fmt: skip
def test_config_errors_name_the_problem(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    text = "\n".join(err.value.problems)
    assert message in text, text


def test_integrations_are_off_by_default() -> None:
    cfg = parse_config(site())  # a zone id with '/' is fine while no state topic carries it
    assert not cfg.integrations.state_topics.enabled and not cfg.integrations.home_assistant.enabled
