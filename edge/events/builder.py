"""Transitions become ``edge.event/1`` Events.

The builder gives each message a fresh UUIDv7 ``event_id`` and each episode (all phases sharing
``EventDraft.key``) one ``incident_id``. The key -> incident map lives in an ``IncidentStore``;
the outbox implements it in its SQLite file, so an open violation that updates after a restart
keeps its incident id. ``seq`` stays 0 here: the outbox assigns it when the event is made durable.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from edge.events.categories import case_category
from edge.events.evidence import evidence_fields
from edge.events.schema import (
    ClockQuality,
    Event,
    EventValidationError,
    GeoPoint,
    ModelRef,
    check_finite,
    validate_payload,
)
from edge.events.uuid7 import Uuid7Factory
from edge.types import EventDraft

log = logging.getLogger(__name__)
SHA_PREFIX_LEN = 12
MAX_REASON = 512  # envelope schema maxLength of severity_reason


class IncidentStore(Protocol):
    """Persistent map of episode key -> incident_id."""

    def get_incident(self, key: str) -> str | None: ...

    def put_incident(self, key: str, incident_id: str) -> None: ...

    def drop_incident(self, key: str) -> None: ...


class MemoryIncidentStore:
    """An in-memory IncidentStore (tests, and boxes without an outbox)."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}

    def get_incident(self, key: str) -> str | None:
        return self._map.get(key)

    def put_incident(self, key: str, incident_id: str) -> None:
        self._map[key] = incident_id

    def drop_incident(self, key: str) -> None:
        self._map.pop(key, None)

    def __len__(self) -> int:
        return len(self._map)


def utc_ms(ts: float) -> str:
    """UTC epoch seconds -> ``2026-11-22T08:15:03.120Z``."""
    if not math.isfinite(ts):
        raise ValueError(f"timestamp must be a finite number of epoch seconds, got {ts!r}")
    ms = round(ts * 1000)
    d = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def model_ref(model: Any) -> ModelRef | None:
    """A detector (or mapping, or ModelRef) as the envelope's ``model``: name and sha256 prefix."""
    if model is None:
        return None
    if isinstance(model, ModelRef):
        return model
    name = getattr(model, "name", None)
    sha = getattr(model, "sha256", None)
    if isinstance(model, Mapping):
        name, sha = model.get("name"), model.get("sha256")
    if not name:
        raise ValueError(f"model must have a name and sha256 (a Detector or ModelRef), got {model!r}")
    return ModelRef(name=str(name), sha256=str(sha or "").lower()[:SHA_PREFIX_LEN])


def _geo_point(geo: Any) -> GeoPoint | None:
    if geo is None:
        return None
    if isinstance(geo, GeoPoint):
        return geo
    if isinstance(geo, Mapping):
        lat, lon = float(geo["lat"]), float(geo["lon"])
    elif isinstance(geo, tuple | list):
        lat, lon = float(geo[0]), float(geo[1])
    else:
        lat, lon = float(geo.lat), float(geo.lon)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"lat={lat} lon={lon} is not a finite position")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"lat={lat} lon={lon} is off the globe (lat -90..90, lon -180..180)")
    return GeoPoint(lat=lat, lon=lon)


class EventBuilder:
    """Builds validated Events for one device.

    ``clock_quality`` and ``geo`` are callables (e.g. ``HardwareManager.clock_quality`` /
    ``.geo``) so a GPS fix or NTP sync that arrives later shows up in later events.
    ``geo`` may return a GeoPoint, a ``{lat, lon}`` mapping, an object with ``lat``/``lon``,
    a ``(lat, lon)`` pair or None.
    """

    def __init__(
        self,
        device_id: str,
        site_id: str,
        *,
        config_hash: str = "",
        incidents: IncidentStore | None = None,
        clock_quality: Callable[[], ClockQuality] | None = None,
        geo: Callable[[], Any] | None = None,
        validate: bool = True,
    ) -> None:
        self.device_id = device_id
        self.site_id = site_id
        self.config_hash = config_hash
        self._incidents: IncidentStore = incidents if incidents is not None else MemoryIncidentStore()
        self._clock_quality = clock_quality
        self._geo = geo
        self._validate = validate
        self._uuids = Uuid7Factory()
        self._context_failed = False
        self.geo_refused = 0  # positions refused (NaN, infinite, off the globe): events carried geo=null

    def set_config_hash(self, config_hash: str) -> None:
        """After a config reload: later events carry the new hash."""
        self.config_hash = config_hash

    def _incident_for(self, tr: EventDraft, event_id: str) -> tuple[str, Callable[[], None] | None]:
        """The episode's incident id, and the map update to apply once the event is built."""
        if tr.phase == "instant":
            return event_id, None
        incident = self._incidents.get_incident(tr.key)
        if incident is None:
            if tr.phase != "start":
                log.info(
                    "no incident for key=%s phase=%s (opened before a lost map); new id", tr.key, tr.phase
                )
            start_ms = round((tr.started_ts if tr.started_ts is not None else tr.ts) * 1000)
            new_id = str(self._uuids.new(start_ms))
            if tr.phase == "end":
                return new_id, None
            return new_id, lambda: self._incidents.put_incident(tr.key, new_id)
        if tr.phase == "end":
            return incident, lambda: self._incidents.drop_incident(tr.key)
        return incident, None

    def _context(self) -> tuple[ClockQuality, GeoPoint | None]:
        """Clock quality and position from the injected callables; a failing source degrades, never
        raises. A position that is not finite or off the globe is left out (geo null), counted in
        ``geo_refused`` and logged once per change, so the event itself is never lost to it."""
        clock: ClockQuality = "unsynced"
        geo: GeoPoint | None = None
        try:
            if self._clock_quality is not None:
                q = self._clock_quality()
                clock = q if q in ("ntp", "gps", "unsynced") else "unsynced"
            raw = self._geo() if self._geo is not None else None
        except Exception as exc:
            if not self._context_failed:
                log.warning("clock/geo source failed (%s); events carry clock=unsynced / geo=null", exc)
            self._context_failed = True
            return clock, None
        try:
            geo = _geo_point(raw)
        except (ValidationError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            self.geo_refused += 1
            if not self._context_failed:
                log.warning(
                    "position refused: %s; events carry geo=null until the source gives a finite "
                    "position on the globe",
                    str(exc).splitlines()[0],
                )
            self._context_failed = True
            return clock, None
        if self._context_failed:
            log.info("clock/geo source usable again")
            self._context_failed = False
        return clock, geo

    def build(self, transition: EventDraft, model: Any = None) -> Event:
        """One Event for one EventDraft. Raises EventValidationError if the payload breaks its schema."""
        tr = transition
        payload = dict(tr.payload)
        payload.update(evidence_fields(payload))  # the crop's SHA-256, covered by the signature
        category = case_category(tr.kind, payload)
        if category is not None:
            payload["case_category"] = category
        if self._validate:
            validate_payload(tr.kind, payload)  # includes the finite-number check
        else:
            check_finite(payload, f"{tr.kind} payload")
        clock, geo = self._context()
        try:
            ts = utc_ms(tr.ts)
            started = ts if tr.phase == "instant" or tr.started_ts is None else utc_ms(tr.started_ts)
            event_id = str(self._uuids.new(round(tr.ts * 1000)))
            incident_id, update_map = self._incident_for(tr, event_id)
            event = Event(
                event_id=event_id,
                incident_id=incident_id,
                seq=0,
                device_id=self.device_id,
                site_id=self.site_id,
                camera_id=tr.camera_id,
                zone_id=tr.zone_id,
                kind=tr.kind,
                phase=tr.phase,
                severity=tr.severity,
                severity_reason=tr.severity_reason[:MAX_REASON],
                ts=ts,
                started_ts=started,
                clock=clock,
                model=model_ref(model),
                config_hash=self.config_hash,
                geo=geo,
                payload=payload,
            )
        except (ValidationError, ValueError, TypeError) as exc:
            raise EventValidationError(f"{tr.kind} event for key={tr.key}: {exc}") from None
        if update_map is not None:
            update_map()
        # The envelope is correct by construction (pydantic + the formats above); the full
        # assembled-schema check (validate_event) is what the tests and consumers run.
        return event
