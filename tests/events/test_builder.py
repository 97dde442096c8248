"""EventBuilder: ids, incidents across phases and restarts, time format, model/geo/clock context."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from edge.events.builder import EventBuilder, MemoryIncidentStore, utc_ms
from edge.events.schema import EventValidationError, validate_event
from edge.events.uuid7 import Uuid7Factory, uuid7_time_ms
from edge.types import EventDraft

TS = 1_795_335_303.120


def tr(phase: str, key: str = "viol:cam0:17", ts: float = TS, **kw) -> EventDraft:
    return EventDraft(
        kind="agent_status", phase=phase, key=key, t=ts - TS, ts=ts, payload={"state": "started"}, **kw
    )


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_795_335_303.12, "2026-11-22T08:15:03.120Z"),
        (1_795_335_303.9996, "2026-11-22T08:15:04.000Z"),  # rounds to the nearest ms
        (1_795_335_303.0004, "2026-11-22T08:15:03.000Z"),
    ],
)
def test_utc_ms(ts: float, text: str) -> None:
    assert utc_ms(ts) == text


def test_utc_ms_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        utc_ms(float("nan"))


def test_uuid7_layout_and_order() -> None:
    f = Uuid7Factory()
    ids = [f.new(1_700_000_000_000) for _ in range(5000)]  # one millisecond: the counter keeps order
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert uuid7_time_ms(f.new(1_800_000_000_123)) == 1_800_000_000_123


def test_incident_shared_by_phases_and_instant_equals_event_id() -> None:
    store = MemoryIncidentStore()
    b = EventBuilder("pole-1", "site", incidents=store)
    start, upd, end = b.build(tr("start")), b.build(tr("update", ts=TS + 5)), b.build(tr("end", ts=TS + 9))
    assert start.incident_id == upd.incident_id == end.incident_id
    assert len({start.event_id, upd.event_id, end.event_id}) == 3
    assert len(store) == 0  # closed episodes leave the map
    again = b.build(tr("start", ts=TS + 20))
    assert again.incident_id != start.incident_id
    other = b.build(tr("start", key="viol:cam0:18"))
    assert other.incident_id != again.incident_id
    inst = b.build(tr("instant", key="x"))
    assert inst.incident_id == inst.event_id


def test_incident_survives_a_new_builder_on_the_same_store() -> None:
    store = MemoryIncidentStore()
    first = EventBuilder("pole-1", "site", incidents=store).build(tr("start"))
    after_restart = EventBuilder("pole-1", "site", incidents=store).build(tr("update", ts=TS + 60))
    assert after_restart.incident_id == first.incident_id


def test_context_fields() -> None:
    det = SimpleNamespace(name="yolox_nano_416", sha256="695E750A4F" + "0" * 54)
    geo_states = iter([None, {"lat": 30.54, "lon": 104.06}])
    b = EventBuilder(
        "pole-17",
        "gaoxin-south",
        config_hash="a1b2c3",
        clock_quality=lambda: "gps",
        geo=lambda: next(geo_states),
    )
    e1 = b.build(
        tr(
            "start",
            started_ts=TS - 120,
            camera_id="cam0",
            zone_id="bay-3",
            severity="major",
            severity_reason="r",
        ),
        model=det,
    )
    assert e1.model is not None and e1.model.name == "yolox_nano_416" and e1.model.sha256 == "695e750a4f00"
    assert e1.geo is None and e1.clock == "gps" and e1.config_hash == "a1b2c3"
    assert e1.started_ts == utc_ms(TS - 120) and e1.ts == utc_ms(TS)
    assert (e1.camera_id, e1.zone_id, e1.severity, e1.seq) == ("cam0", "bay-3", "major", 0)
    b.set_config_hash("ffee")
    e2 = b.build(tr("update"))
    assert e2.geo is not None and (e2.geo.lat, e2.geo.lon) == (30.54, 104.06)
    assert e2.config_hash == "ffee" and e2.clock == "gps"
    validate_event(e1.to_dict())
    assert e1.to_dict()["schema"] == "edge.event/1"


def test_bad_payload_is_refused_with_the_reason() -> None:
    b = EventBuilder("pole-1", "site")
    bad = EventDraft(kind="agent_status", phase="instant", key="k", t=0, ts=TS, payload={"state": "exploded"})
    with pytest.raises(EventValidationError, match="state"):
        b.build(bad)


def test_a_broken_transition_raises_an_edge_error_and_leaves_the_incident_map_alone() -> None:
    from edge.errors import EdgeError

    store = MemoryIncidentStore()
    b = EventBuilder("pole-1", "site", incidents=store, geo=lambda: {"latitude": 1})  # a broken GPS source
    with pytest.raises(EdgeError):
        b.build(tr("start", ts=float("nan")))
    assert len(store) == 0
    ok = b.build(tr("start", severity_reason="r" * 2000))
    assert ok.geo is None and len(ok.severity_reason) == 512  # degraded, never crashes the loop
    validate_event(ok.to_dict())


# ---- no NaN anywhere in an event ------------------------------------------------------------
NAN, INF = float("nan"), float("inf")


def strict_loads(data: bytes | str) -> object:
    """A strict JSON parser: NaN, Infinity and -Infinity are not JSON."""

    def refuse(word: str) -> object:
        raise ValueError(f"{word} is not JSON")

    return json.loads(data, parse_constant=refuse)


def sensor_features(value: float) -> EventDraft:
    return EventDraft(
        kind="sensor_status",
        phase="start",
        key="sensor_status/gps",
        t=0,
        ts=TS,
        payload={"device": "gps", "status": "offline", "url": "socket://x:1", "reason": "r", "extra": value},
    )


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_non_finite_payload_is_refused_naming_the_field(validate: bool, bad: float) -> None:
    b = EventBuilder("pole-1", "site", validate=validate)
    draft = EventDraft(
        kind="uplink_test",
        phase="instant",
        key="k",
        t=0,
        ts=TS,
        payload={"nonce": "n", "probe": {"rtt": [1.0, bad]}},
    )
    with pytest.raises(EventValidationError) as exc:
        b.build(draft)
    assert "uplink_test payload probe/rtt/1 is not a finite number" in str(exc.value)


def test_nan_geo_is_left_out_not_sent_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A GPS that says (nan, nan) must not cost the event: geo is null, counted, logged once per change."""
    positions = iter(
        [{"lat": NAN, "lon": NAN}, (INF, 1.0), {"lat": 95.0, "lon": 1.0}, {"lat": 30.5, "lon": 104.0}]
    )
    b = EventBuilder("pole-1", "site", geo=lambda: next(positions))
    with caplog.at_level("INFO", logger="edge.events.builder"):
        events = [b.build(tr("instant", key=f"k{i}")) for i in range(4)]
    assert [e.geo for e in events[:3]] == [None, None, None]
    assert events[3].geo is not None and events[3].geo.lat == 30.5
    assert b.geo_refused == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert len([m for m in msgs if "refused" in m]) == 1 and "lat=nan lon=nan is not a finite" in msgs[0]
    assert any("usable again" in m for m in msgs)
    for e in events:
        doc = strict_loads(e.to_json())
        validate_event(doc)  # type: ignore[arg-type]


def test_to_json_refuses_nan_instead_of_writing_it() -> None:
    """Even an Event assembled without the builder never serialises to 'NaN'."""
    from edge.events.schema import Event

    good = EventBuilder("pole-1", "site").build(tr("instant"))
    bad = Event.model_validate({**good.to_dict(), "payload": {"state": "started", "x": {"y": NAN}}})
    with pytest.raises(EventValidationError, match="payload/x/y is not a finite number"):
        bad.to_json()
    with pytest.raises(Exception, match="finite number"):
        Event.model_validate({**good.to_dict(), "geo": {"lat": NAN, "lon": 1.0}})


def test_validate_event_names_a_non_finite_field() -> None:
    doc = EventBuilder("pole-1", "site").build(tr("instant")).to_dict()
    with pytest.raises(EventValidationError, match="geo/lat is not a finite number"):
        validate_event({**doc, "geo": {"lat": NAN, "lon": 2.0}})
    with pytest.raises(EventValidationError, match="payload extra is not a finite number"):
        validate_event({**doc, "kind": "sensor_status", "payload": sensor_features(INF).payload})


def test_outbox_refuses_a_non_finite_event_without_using_a_seq(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge.events.schema import Event
    from edge.uplink.outbox import Outbox

    good = EventBuilder("pole-1", "site").build(tr("instant"))
    bad = Event.model_validate({**good.to_dict(), "payload": {"state": "started", "v": NAN}})
    with Outbox(tmp_path / "o.sqlite") as ob:
        with pytest.raises(EventValidationError):
            ob.put(bad)
        stored = ob.put(good)
        ob.flush()
        assert stored.seq == 1 and ob.pending() == 1  # no gap: the refused event used no seq
        rows = ob.peek(10)
        assert [strict_loads(r.payload)["seq"] for r in rows] == [1]  # type: ignore[index]
