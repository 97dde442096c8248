"""The GBFS v3.0 view of the bike bays, validated against the published GBFS v3.0 JSON schemas
(excerpt in tests/city/data/) and checked against the box's bay counts of a real street day."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from city.gbfs import Bay, latest_bay_status, station_information, station_status, vehicle_types
from tests.fixtures.street_day import StreetDay

GBFS = json.loads((Path(__file__).parent / "data" / "published_schemas.json").read_text(encoding="utf-8"))["gbfs_v3_0"]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def valid(feed: str, doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(GBFS[feed]["schema"]).validate(doc)
    stamps = [doc["last_updated"]] + [s["last_reported"] for s in doc["data"].get("stations", []) if "last_reported" in s]
    for s in stamps:  # Timestamp: RFC 3339 (no format checker is installed, so checked here)
        assert RFC3339.match(s) and dt.datetime.fromisoformat(s), s


def test_station_status_from_the_boxs_bay_counts(street_day: StreetDay) -> None:
    evs = street_day.events
    latest = latest_bay_status(evs)["bay-1"]
    feed = station_status(evs, latest["ts"])
    valid("station_status", feed)
    (st,) = feed["data"]["stations"]
    p = latest["payload"]
    assert st["station_id"] == "bay-1"
    assert st["num_vehicles_available"] == p["count"]
    assert sum(v["count"] for v in st["vehicle_types_available"]) == p["count"]  # SHOULD add up
    assert st["num_docks_available"] == max(0, p["capacity"] - p["count"])
    assert dt.datetime.fromisoformat(st["last_reported"]) == dt.datetime.fromisoformat(latest["ts"].replace("Z", "+00:00")).replace(microsecond=0)
    # during the overflow the bay had no room left
    over = [e for e in evs if e["kind"] == "bike_bay_status" and e["payload"]["count"] > e["payload"]["capacity"]]
    assert over
    st_over = station_status(over, over[-1]["ts"])["data"]["stations"][0]
    assert st_over["num_docks_available"] == 0 and st_over["num_vehicles_available"] > 6


def test_one_operators_view(street_day: StreetDay) -> None:
    evs = street_day.events
    p = latest_bay_status(evs)["bay-1"]["payload"]
    for op, n in p["by_operator"].items():
        feed = station_status(evs, 1795392480.0, operator=op)
        valid("station_status", feed)
        assert feed["data"]["stations"][0]["num_vehicles_available"] == n
        assert "vehicle_types_available" not in feed["data"]["stations"][0]
    assert station_status(evs, 1795392480.0, operator="nobody")["data"]["stations"][0]["num_vehicles_available"] == 0


def test_station_information_and_vehicle_types() -> None:
    bays = [Bay("bay-1", "人民南路地铁站B口", 30.540001, 104.060002, 6, area=[[104.0600, 30.5400], [104.0601, 30.5400], [104.0601, 30.5401], [104.0600, 30.5401]])]
    info = station_information(bays, "2026-11-23T08:00:00Z")
    valid("station_information", info)
    st = info["data"]["stations"][0]
    assert st["capacity"] == 6 and st["is_virtual_station"] is True
    ring = st["station_area"]["coordinates"][0][0]
    assert ring[0] == ring[-1] and len(ring) == 5  # closed
    vt = vehicle_types(0.0, e_bike_range_m=40000)
    valid("vehicle_types", vt)
    with pytest.raises(ValueError, match="e_bike_range_m"):
        vehicle_types(0.0, e_bike_range_m=0)
    broken = json.loads(json.dumps(vt))
    del broken["data"]["vehicle_types"][1]["max_range_meters"]  # GBFS requires a range for electric types
    with pytest.raises(jsonschema.ValidationError):
        valid("vehicle_types", broken)
