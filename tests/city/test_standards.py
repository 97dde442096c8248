"""FIWARE Smart Data Models from the agent's records, checked field by field against excerpts of the
published schemas (names, types, bounds, required fields, enumerations: tests/city/data/) and for
what each number means, on records of a real street day and on hand-made ones."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from city.standards import (
    MappingError,
    bay_status_value,
    bike_hire_docking_station,
    crowd_flow_from_density,
    crowd_flow_from_line,
    crowd_flow_from_zone,
    on_street_parking,
    parking_spot,
)
from tests.fixtures.street_day import StreetDay

PUBLISHED = json.loads((Path(__file__).parent / "data" / "published_schemas.json").read_text(encoding="utf-8"))
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def conforms(entity: dict[str, Any]) -> None:
    """The published model's required fields, property names, types, bounds and enumerations."""
    model = PUBLISHED["fiware"][entity["type"]]
    schema = {"type": "object", "required": model["required"], "properties": model["properties"]}
    jsonschema.Draft202012Validator(schema).validate(entity)
    unknown = set(entity) - set(model["property_names"])
    assert not unknown, f"{entity['type']}: fields the model does not define: {unknown}"
    for k, prop in model["properties"].items():  # date-time fields (no format checker is installed)
        if prop.get("format") == "date-time" and k in entity:
            assert ISO_UTC.match(entity[k]), (k, entity[k])


def _features(street_day: StreetDay) -> list[dict[str, Any]]:
    return [e for e in street_day.events if e["kind"] == "features"]


# ------------------------------------------------------------------------------ CrowdFlowObserved
def test_crowd_zone_window_as_crowd_flow_observed(street_day: StreetDay) -> None:
    records = [e for e in _features(street_day) if e["payload"]["zones"]["plaza"]["count_max"].get("person")]
    assert records, "the crowd gathers in the plaza during the street day"
    for ev in records:
        z = ev["payload"]["zones"]["plaza"]
        out = crowd_flow_from_zone(ev, "plaza", direction="inbound")
        conforms(out)
        assert out["peopleCount"] == z["count"].get("person", 0) + z["out"]
        assert out["occupancy"] == pytest.approx(z["occupancy"])
        assert out["congested"] == (z["los"] in ("E", "F"))
        start = dt.datetime.fromisoformat(out["dateObservedFrom"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(out["dateObservedTo"].replace("Z", "+00:00"))
        assert (end - start).total_seconds() == pytest.approx(ev["payload"]["interval_s"], abs=0.002)
        assert out["dateObserved"] == f"{out['dateObservedFrom']}/{out['dateObservedTo']}"
        assert out["location"] == {"type": "Point", "coordinates": [104.06, 30.54]}  # [lon, lat]
    assert max(crowd_flow_from_zone(e, "plaza")["peopleCount"] for e in records) >= 30  # 40 people gathered


def test_counting_line_as_crowd_flow_observed(street_day: StreetDay) -> None:
    crossings = 0
    for ev in _features(street_day):
        ln = ev["payload"]["lines"]["plaza-entry"]
        out = crowd_flow_from_line(ev, "plaza-entry")
        conforms(out)
        assert (out["peopleCountTowards"], out["peopleCountAway"]) == (ln["in"], ln["out"])
        assert out["peopleCount"] == ln["in"] + ln["out"]
        crossings += out["peopleCount"]
    assert crossings > 40


def test_congestion_is_level_of_service_e_or_f() -> None:
    ev = {
        "kind": "features", "device_id": "pole-1", "camera_id": "cam0", "ts": "2026-11-23T08:10:00.000Z", "geo": None,
        "payload": {"interval_s": 60.0, "zones": {"z": {"kind": "crowd", "count": {"person": 90}, "occupancy": 1.0,
                                                       "out": 10, "los": "F"}}, "lines": {}},
    }  # fmt: skip
    out = crowd_flow_from_zone(ev, "z")
    conforms(out)
    assert out["congested"] is True and out["peopleCount"] == 100 and "location" not in out
    ev["payload"]["zones"]["z"]["los"] = "D"
    assert crowd_flow_from_zone(ev, "z")["congested"] is False


def test_crowd_density_event_as_crowd_flow_observed(street_day: StreetDay) -> None:
    evs = [e for e in street_day.events if e["kind"] == "crowd_density"]
    assert evs
    for ev in evs:
        out = crowd_flow_from_density(ev)
        conforms(out)
        assert out["peopleCount"] == ev["payload"]["count"]


# ------------------------------------------------------------------------------ parking
def _kerb(count: dict[str, int]) -> dict[str, Any]:
    return {
        "kind": "features", "device_id": "pole-0417", "camera_id": "kerb-north", "ts": "2026-11-23T07:52:00.000Z",
        "geo": {"lat": 30.6341, "lon": 104.0652},
        "payload": {"interval_s": 60.0, "lines": {},
                    "zones": {"school-gate": {"kind": "no_parking", "count": count, "occupancy": 0.5, "out": 0, "los": None}}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("count", "spots", "zone_type", "occupied", "available", "category"),
    [
        ({"car": 2}, 4, "loading_bay", 2, 2, ["forLoadUnload"]),
        ({"car": 1, "truck": 1, "person": 3}, 2, "time_limited", 2, 0, ["shortTerm"]),
        ({"car": 3}, 0, "no_stopping", 0, 0, None),  # vehicles there are violations, not occupancy
        ({}, 6, None, 0, 6, None),
    ],
)
def test_kerb_zone_as_on_street_parking(
    count: dict[str, int], spots: int, zone_type: str | None, occupied: int, available: int, category: list[str] | None
) -> None:
    out = on_street_parking(_kerb(count), "school-gate", total_spots=spots, zone_type=zone_type)
    conforms(out)
    assert (out["totalSpotNumber"], out["occupiedSpotNumber"], out["availableSpotNumber"]) == (spots, occupied, available)
    assert out["occupiedSpotNumber"] <= out["totalSpotNumber"]  # as the model requires
    assert out.get("category") == category
    assert out["location"]["coordinates"] == [104.0652, 30.6341]


def test_parking_needs_a_location_and_a_zone_of_the_right_kind() -> None:
    ev = _kerb({"car": 1})
    ev["geo"] = None
    with pytest.raises(MappingError, match="needs a location"):
        on_street_parking(ev, "school-gate", total_spots=2)
    polygon = {"type": "Polygon", "coordinates": [[[104.0, 30.0], [104.1, 30.0], [104.1, 30.1], [104.0, 30.0]]]}
    conforms(on_street_parking(ev, "school-gate", total_spots=2, location=polygon))
    with pytest.raises(MappingError, match="not in this features record"):
        on_street_parking(_kerb({}), "elsewhere", total_spots=1)


@pytest.mark.parametrize(
    ("count", "blind", "status"), [({"car": 1}, False, "occupied"), ({}, False, "free"), ({"car": 1}, True, "unknown")]
)
def test_one_spot_zone_as_parking_spot(count: dict[str, int], blind: bool, status: str) -> None:
    ev = _kerb(count)
    if blind:
        ev["payload"]["sensors"] = {"presence_while_blind": True}
    out = parking_spot(ev, "school-gate", parking_site_id="urn:ngsi-ld:OnStreetParking:pole-0417:kerb-north:school-gate")
    conforms(out)
    assert out["status"] == status and out["category"] == ["onStreet"]


def test_street_day_kerb_records_map(street_day: StreetDay) -> None:
    outs = [on_street_parking(e, "kerb-no-parking", total_spots=0, zone_type="no_stopping") for e in _features(street_day)]
    for out in outs:
        conforms(out)
    assert all(o["occupiedSpotNumber"] == 0 for o in outs)


# ------------------------------------------------------------------------------ bike bays
@pytest.mark.parametrize(
    ("count", "capacity", "status"),
    [(0, 6, "empty"), (1, 6, "almostEmpty"), (3, 6, "working"), (5, 6, "almostFull"), (6, 6, "full"), (9, 6, "full")],
)
def test_bay_status_values(count: int, capacity: int, status: str) -> None:
    assert bay_status_value(count, capacity) == status
    enum = PUBLISHED["fiware"]["BikeHireDockingStation"]["properties"]["status"]["enum"]
    assert status in enum


def test_bike_bay_events_as_docking_stations(street_day: StreetDay) -> None:
    evs = [e for e in street_day.events if e["kind"] in ("bike_bay_status", "bike_bay_overflow")]
    assert evs
    for ev in evs:
        p = ev["payload"]
        out = bike_hire_docking_station(ev, provider="city-bikes")
        conforms(out)
        assert out["totalSlotNumber"] == p["capacity"] and out["availableBikeNumber"] == p["count"]
        assert out["freeSlotNumber"] == max(0, p["capacity"] - p["count"]) <= out["totalSlotNumber"]
    peak = max(evs, key=lambda e: e["payload"]["count"])
    assert peak["payload"]["count"] > peak["payload"]["capacity"]  # the bay overflowed (9 > 6)
    assert bike_hire_docking_station(peak)["status"] == "full"
    with pytest.raises(MappingError, match="expected a bike_bay_status"):
        bike_hire_docking_station({"kind": "features"})
