"""The agent's records as FIWARE Smart Data Models (NGSI v2 key-value form): pure functions.

| agent record | Smart Data Model |
|---|---|
| ``features`` zone of kind ``crowd``/``count``, a ``features`` line, a ``crowd_density`` event | ``CrowdFlowObserved`` (dataModel.Transportation) |
| ``features`` zone of kind ``no_parking``/``count`` (kerb zones, car-park count zones) | ``OnStreetParking`` (dataModel.Parking) |
| the same zone as one spot | ``ParkingSpot`` (dataModel.Parking) |
| ``bike_bay_status`` / ``bike_bay_overflow`` event, or a ``features`` zone of kind ``bike_bay`` | ``BikeHireDockingStation`` (dataModel.Transportation) |

Field meanings follow the models' published definitions (``tests/city/`` checks names, types,
bounds, required fields and enumerations against excerpts of the published schemas):

* ``CrowdFlowObserved.peopleCount`` is the number of people seen in the zone during the window
  (those present at its end plus those who left: ``count.person + out``); on a line it is the
  crossings, split into ``peopleCountTowards`` (the line's ``in``) and ``peopleCountAway`` (``out``).
  ``occupancy`` is the fraction of the window during which someone was in the zone (the agent's
  ``occupancy`` of non-bay zones means exactly that), ``congested`` is Fruin level of service E or F,
  ``dateObservedFrom``/``To`` bound the window and ``dateObserved`` is the ISO 8601 interval.
  ``direction`` (inbound/outbound with respect to the city centre) is the city's knowledge, passed in.
* ``OnStreetParking`` needs the number of legal spots of the kerb (the city's registry; the box does
  not know it). ``occupiedSpotNumber`` never exceeds ``totalSpotNumber`` as the model requires:
  vehicles beyond the legal spots (anything stopped in a no-stopping zone) are parking violations,
  reported as ``parking_violation`` events with the case category 机动车乱停放, not as occupancy.
* ``BikeHireDockingStation.status``: ``empty`` (0 bikes), ``full`` (at or over capacity, so an
  overflowing bay is ``full``), ``almostFull`` (>= 80 %), ``almostEmpty`` (<= 20 %), else ``working``.
* ``location`` is a GeoJSON Point ``[lon, lat]``: the box's position from the event's ``geo``
  unless the city passes the zone's own geometry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

ID_PREFIX = "urn:ngsi-ld"
CONGESTED_LOS = frozenset({"E", "F"})
ALMOST = 0.2  # almostFull at >= 80 % of capacity, almostEmpty at <= 20 %
KERB_CATEGORY = {"loading_bay": ["forLoadUnload"], "time_limited": ["shortTerm"]}


class MappingError(ValueError):
    """A record cannot be mapped: the message names what is missing and what to pass."""


def _parse_ts(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _iso(d: dt.datetime) -> str:
    return d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def entity_id(entity_type: str, event: Mapping[str, Any], zone_id: str) -> str:
    """A stable NGSI id per device, camera and zone: ``urn:ngsi-ld:<Type>:<device>:<camera>:<zone>``."""
    parts = [str(event.get("device_id")), str(event.get("camera_id") or "box"), zone_id]
    return ":".join([ID_PREFIX, entity_type, *parts])


def point(event: Mapping[str, Any]) -> dict[str, Any] | None:
    geo = event.get("geo")
    if not isinstance(geo, Mapping):
        return None
    return {"type": "Point", "coordinates": [float(geo["lon"]), float(geo["lat"])]}


def _location(event: Mapping[str, Any], location: Mapping[str, Any] | None, required: bool, what: str) -> dict[str, Any] | None:
    if location is not None:
        return dict(location)
    loc = point(event)
    if loc is None and required:
        raise MappingError(
            f"{what} needs a location: the event has no geo (configure geo: on the box) and no location= was given"
        )
    return loc


def _common(entity_type: str, event: Mapping[str, Any], zone_id: str) -> dict[str, Any]:
    return {
        "id": entity_id(entity_type, event, zone_id),
        "type": entity_type,
        "dataProvider": str(event.get("device_id")),
        "name": zone_id,
    }


def _zone(event: Mapping[str, Any], zone_id: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    if event.get("kind") != "features":
        raise MappingError(f"expected a features record, got kind {event.get('kind')!r}")
    zones = (event.get("payload") or {}).get("zones") or {}
    z = zones.get(zone_id)
    if z is None:
        raise MappingError(f"zone {zone_id!r} is not in this features record (zones: {', '.join(zones) or 'none'})")
    if z.get("kind") not in kinds:
        raise MappingError(f"zone {zone_id!r} is a {z.get('kind')} zone; this model takes {' or '.join(kinds)} zones")
    return dict(z)


def _window(event: Mapping[str, Any]) -> tuple[str, str]:
    end = _parse_ts(str(event["ts"]))
    interval = float((event.get("payload") or {}).get("interval_s") or 0.0)
    return _iso(end - dt.timedelta(seconds=interval)), _iso(end)


# ----------------------------------------------------------------------------- CrowdFlowObserved
def crowd_flow_from_zone(
    event: Mapping[str, Any],
    zone_id: str,
    *,
    direction: Literal["inbound", "outbound"] | None = None,
    location: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``CrowdFlowObserved`` for a crowd or count zone of a ``features`` record (one window)."""
    z = _zone(event, zone_id, ("crowd", "count"))
    start, end = _window(event)
    present = int((z.get("count") or {}).get("person", 0))
    out = _common("CrowdFlowObserved", event, zone_id)
    out.update(
        dateObserved=f"{start}/{end}",
        dateObservedFrom=start,
        dateObservedTo=end,
        peopleCount=present + int(z.get("out") or 0),
        occupancy=min(1.0, max(0.0, float(z.get("occupancy") or 0.0))),
        congested=z.get("los") in CONGESTED_LOS,
    )
    if direction is not None:
        out["direction"] = direction
    loc = _location(event, location, False, "CrowdFlowObserved")
    if loc is not None:
        out["location"] = loc
    return out


def crowd_flow_from_line(
    event: Mapping[str, Any],
    line_id: str,
    *,
    direction: Literal["inbound", "outbound"] | None = None,
    location: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``CrowdFlowObserved`` for a counting line of a ``features`` record: crossings in/out in the window."""
    if event.get("kind") != "features":
        raise MappingError(f"expected a features record, got kind {event.get('kind')!r}")
    lines = (event.get("payload") or {}).get("lines") or {}
    ln = lines.get(line_id)
    if ln is None:
        raise MappingError(f"line {line_id!r} is not in this features record (lines: {', '.join(lines) or 'none'})")
    start, end = _window(event)
    towards, away = int(ln.get("in") or 0), int(ln.get("out") or 0)
    out = _common("CrowdFlowObserved", event, line_id)
    out.update(
        dateObserved=f"{start}/{end}",
        dateObservedFrom=start,
        dateObservedTo=end,
        peopleCount=towards + away,
        peopleCountTowards=towards,
        peopleCountAway=away,
    )
    if direction is not None:
        out["direction"] = direction
    loc = _location(event, location, False, "CrowdFlowObserved")
    if loc is not None:
        out["location"] = loc
    return out


def crowd_flow_from_density(event: Mapping[str, Any], *, location: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``CrowdFlowObserved`` at one instant from a ``crowd_density`` event."""
    if event.get("kind") != "crowd_density":
        raise MappingError(f"expected a crowd_density event, got kind {event.get('kind')!r}")
    p = event.get("payload") or {}
    zone_id = str(event.get("zone_id"))
    out = _common("CrowdFlowObserved", event, zone_id)
    out.update(dateObserved=_iso(_parse_ts(str(event["ts"]))), peopleCount=int(p["count"]), congested=p.get("los") in CONGESTED_LOS)
    loc = _location(event, location, False, "CrowdFlowObserved")
    if loc is not None:
        out["location"] = loc
    return out


# ----------------------------------------------------------------------------- parking
def _vehicles(z: Mapping[str, Any]) -> int:
    return sum(int(v) for k, v in (z.get("count") or {}).items() if k != "person")


def on_street_parking(
    event: Mapping[str, Any],
    zone_id: str,
    *,
    total_spots: int,
    zone_type: str | None = None,
    location: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``OnStreetParking`` for a kerb (``no_parking``) or car-park ``count`` zone of a ``features`` record.

    ``total_spots`` is the number of legal spots (0 for a no-stopping kerb); ``zone_type`` (the zone's
    ``zone_type`` in the site config) sets ``category`` for loading bays and time-limited kerbs.
    """
    if total_spots < 0:
        raise MappingError(f"total_spots must be >= 0, got {total_spots}")
    z = _zone(event, zone_id, ("no_parking", "count"))
    occupied = min(_vehicles(z), total_spots)
    out = _common("OnStreetParking", event, zone_id)
    out.update(
        totalSpotNumber=int(total_spots),
        occupiedSpotNumber=occupied,
        availableSpotNumber=int(total_spots) - occupied,
        observationDateTime=_iso(_parse_ts(str(event["ts"]))),
        location=_location(event, location, True, "OnStreetParking"),
    )
    if zone_type in KERB_CATEGORY:
        out["category"] = list(KERB_CATEGORY[zone_type])
    return out


def parking_spot(
    event: Mapping[str, Any],
    zone_id: str,
    *,
    parking_site_id: str,
    location: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``ParkingSpot`` for a one-vehicle zone: ``occupied`` when a vehicle is in it at the end of the
    window, ``free`` when not, ``unknown`` when the camera was blinded (``presence_while_blind``)."""
    z = _zone(event, zone_id, ("no_parking", "count"))
    blind = bool(((event.get("payload") or {}).get("sensors") or {}).get("presence_while_blind"))
    status = "unknown" if blind else ("occupied" if _vehicles(z) > 0 else "free")
    out = _common("ParkingSpot", event, zone_id)
    out.update(
        status=status,
        category=["onStreet"],
        refParkingSite=parking_site_id,
        location=_location(event, location, True, "ParkingSpot"),
    )
    return out


# ----------------------------------------------------------------------------- bike bays
def bay_status_value(count: int, capacity: int) -> str:
    if count <= 0:
        return "empty"
    if capacity <= 0 or count >= capacity:
        return "full"
    if count >= (1.0 - ALMOST) * capacity:
        return "almostFull"
    if count <= ALMOST * capacity:
        return "almostEmpty"
    return "working"


def bike_hire_docking_station(
    event: Mapping[str, Any],
    *,
    provider: str | None = None,
    location: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``BikeHireDockingStation`` for a bay, from a ``bike_bay_status`` or ``bike_bay_overflow`` event."""
    if event.get("kind") not in ("bike_bay_status", "bike_bay_overflow"):
        raise MappingError(f"expected a bike_bay_status or bike_bay_overflow event, got kind {event.get('kind')!r}")
    p = event.get("payload") or {}
    count, capacity = int(p["count"]), int(p["capacity"])
    zone_id = str(event.get("zone_id"))
    out = _common("BikeHireDockingStation", event, zone_id)
    out.update(
        totalSlotNumber=capacity,
        availableBikeNumber=count,
        freeSlotNumber=max(0, capacity - count),
        status=bay_status_value(count, capacity),
        stationName=zone_id,
        observationDateTime=_iso(_parse_ts(str(event["ts"]))),
    )
    if provider is not None:
        out["provider"] = provider
    loc = _location(event, location, False, "BikeHireDockingStation")
    if loc is not None:
        out["location"] = loc
    return out
