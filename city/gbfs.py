"""A GBFS v3.0 view of the bike bays, so a bike operator's own tools can read bay occupancy.

Each bay is a *virtual station* (a painted area, no docks): ``station_information`` gives its name,
position, ``capacity`` and, when the city knows the bay's outline, ``station_area``;
``station_status`` gives ``num_vehicles_available`` (bikes seen in the bay), ``num_docks_available``
(room left: capacity minus bikes, never below 0), ``vehicle_types_available`` and ``last_reported``
(the time of the box's latest ``bike_bay_status``). ``vehicle_types`` defines the two types the box
tells apart: ``bicycle`` (human) and ``e-bike`` (the agent's ``motorcycle`` class in a bay).

``station_status(..., operator="yellow")`` is one operator's view: its own bikes only (from the
livery counts), without a per-type split (the box does not count types per operator), so that
view is published without ``vehicle_types.json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERSION = "3.0"
VEHICLE_TYPE_OF_CLASS = {"bicycle": "bicycle", "motorcycle": "e-bike"}


@dataclass(frozen=True, slots=True)
class Bay:
    """What the city's registry knows about a bay (the box knows ids and capacities, not geography)."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int
    area: Sequence[Sequence[float]] | None = None  # outline as [[lon, lat], ...], closed or not
    language: str = "zh"


def _rfc3339(ts: float | str) -> str:
    if isinstance(ts, str):
        d = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    else:
        d = dt.datetime.fromtimestamp(float(ts), tz=dt.UTC)
    return d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _feed(data: dict[str, Any], last_updated: float | str, ttl_s: int) -> dict[str, Any]:
    return {"last_updated": _rfc3339(last_updated), "ttl": int(ttl_s), "version": VERSION, "data": data}


def vehicle_types(last_updated: float | str, *, e_bike_range_m: float, ttl_s: int = 86400) -> dict[str, Any]:
    """The two vehicle types; GBFS requires a range for electric types, which only the operator knows."""
    if e_bike_range_m <= 0:
        raise ValueError(f"e_bike_range_m must be > 0 (the fleet's typical range on a full battery), got {e_bike_range_m}")
    types = [
        {"vehicle_type_id": "bicycle", "form_factor": "bicycle", "propulsion_type": "human"},
        {
            "vehicle_type_id": "e-bike",
            "form_factor": "bicycle",
            "propulsion_type": "electric_assist",
            "max_range_meters": float(e_bike_range_m),
        },
    ]
    return _feed({"vehicle_types": types}, last_updated, ttl_s)


def station_information(bays: Iterable[Bay], last_updated: float | str, *, ttl_s: int = 86400) -> dict[str, Any]:
    stations = []
    for b in bays:
        st: dict[str, Any] = {
            "station_id": b.station_id,
            "name": [{"text": b.name, "language": b.language}],
            "lat": round(float(b.lat), 6),
            "lon": round(float(b.lon), 6),
            "capacity": int(b.capacity),
            "is_virtual_station": True,
            "parking_type": "sidewalk_parking",
        }
        if b.area:
            ring = [[float(x), float(y)] for x, y in b.area]
            if ring[0] != ring[-1]:
                ring.append(list(ring[0]))
            st["station_area"] = {"type": "MultiPolygon", "coordinates": [[ring]]}
        stations.append(st)
    return _feed({"stations": stations}, last_updated, ttl_s)


def latest_bay_status(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest ``bike_bay_status`` event of each bay (by ``ts``, then ``seq``)."""
    out: dict[str, Mapping[str, Any]] = {}
    for ev in events:
        if ev.get("kind") != "bike_bay_status":
            continue
        bay = str(ev.get("zone_id"))
        cur = out.get(bay)
        if cur is None or (str(ev.get("ts")), int(ev.get("seq") or 0)) >= (str(cur.get("ts")), int(cur.get("seq") or 0)):
            out[bay] = ev
    return out


def station_status(
    events: Iterable[Mapping[str, Any]],
    last_updated: float | str,
    *,
    operator: str | None = None,
    ttl_s: int = 60,
) -> dict[str, Any]:
    """``station_status`` from the box's ``bike_bay_status`` events (the newest of each bay)."""
    stations = []
    for bay, ev in sorted(latest_bay_status(events).items()):
        p = ev.get("payload") or {}
        capacity, total = int(p["capacity"]), int(p["count"])
        st: dict[str, Any] = {"station_id": bay}
        if operator is None:
            st["num_vehicles_available"] = total
            by_type: dict[str, int] = {}
            for cls, n in (p.get("by_class") or {}).items():
                vt = VEHICLE_TYPE_OF_CLASS.get(cls)
                if vt is not None:
                    by_type[vt] = by_type.get(vt, 0) + int(n)
            st["vehicle_types_available"] = [
                {"vehicle_type_id": vt, "count": by_type.get(vt, 0)} for vt in ("bicycle", "e-bike")
            ]
        else:
            st["num_vehicles_available"] = int((p.get("by_operator") or {}).get(operator, 0))
        st.update(
            num_docks_available=max(0, capacity - total),
            is_installed=True,
            is_renting=True,
            is_returning=True,
            last_reported=_rfc3339(str(ev["ts"])),
        )
        stations.append(st)
    return _feed({"stations": stations}, last_updated, ttl_s)
