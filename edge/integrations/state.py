"""Retained state topics: the latest value of each zone, camera and the box, as small JSON documents.

| topic | document |
|---|---|
| ``{base}/state/{camera}/{zone}`` | ``{"kind", "active", "count", "counts": {class: n}, ...}`` + ``capacity``/``occupancy`` (zones with a capacity), ``density``/``los`` (crowd zones with an area), ``overflow`` (bike bays), ``violations`` (no-parking zones), ``ts`` |
| ``{base}/state/{camera}`` | ``{"online", "tampered", "faults": [...], "ts"}`` |
| ``{base}/state`` | ``{"door_open", "ts"}`` (only with an enclosure door switch) |

``ts`` is when the state was true (a zone's and a camera's: the camera's last frame; the box's: the
wall clock); every other field is the state. ``state_key`` is what "changed" compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge.events.builder import utc_ms
from edge.integrations.model import BoxState, CameraState, ZoneState


@dataclass(frozen=True, slots=True)
class StateTopics:
    """The state topics of one box (``base`` is ``{prefix}/{site}/{device}``)."""

    base: str

    @property
    def box(self) -> str:
        return f"{self.base}/state"

    def camera(self, camera_id: str) -> str:
        return f"{self.base}/state/{camera_id}"

    def zone(self, camera_id: str, zone_id: str) -> str:
        return f"{self.base}/state/{camera_id}/{zone_id}"


def zone_doc(z: ZoneState, ts: float | None) -> dict[str, Any] | None:
    """A zone's state document; None before its camera has processed a frame (nothing is known yet)."""
    if z.count is None:
        return None
    doc: dict[str, Any] = {"kind": z.kind, "active": z.active, "count": z.count, "counts": dict(z.counts)}
    if z.capacity is not None:
        doc["capacity"] = z.capacity
    if z.occupancy is not None:
        doc["occupancy"] = z.occupancy
    if z.density is not None:
        doc["density"] = z.density
        doc["los"] = z.los
    if z.overflow is not None:
        doc["overflow"] = z.overflow
    if z.violations is not None:
        doc["violations"] = z.violations
    if ts is not None:
        doc["ts"] = utc_ms(ts)
    return doc


def camera_doc(c: CameraState) -> dict[str, Any]:
    doc: dict[str, Any] = {"online": c.online, "tampered": c.tampered, "faults": list(c.faults)}
    if c.ts is not None:
        doc["ts"] = utc_ms(c.ts)
    return doc


def box_doc(b: BoxState, ts: float) -> dict[str, Any] | None:
    if b.door_open is None:
        return None
    return {"door_open": b.door_open, "ts": utc_ms(ts)}


def state_documents(topics: StateTopics, box: BoxState, wall_ts: float) -> dict[str, dict[str, Any]]:
    """Every state topic this box has something to say on now -> its document."""
    out: dict[str, dict[str, Any]] = {}
    bdoc = box_doc(box, wall_ts)
    if bdoc is not None:
        out[topics.box] = bdoc
    for cam in box.cameras:
        out[topics.camera(cam.camera_id)] = camera_doc(cam)
        for z in cam.zones:
            zdoc = zone_doc(z, cam.ts)
            if zdoc is not None:
                out[topics.zone(cam.camera_id, z.zone_id)] = zdoc
    return out


def state_topics_of(topics: StateTopics, box: BoxState) -> set[str]:
    """Every state topic this configuration can publish (whether or not it has a value yet)."""
    out = {topics.camera(c.camera_id) for c in box.cameras}
    out |= {topics.zone(c.camera_id, z.zone_id) for c in box.cameras for z in c.zones}
    if box.door_open is not None:
        out.add(topics.box)
    return out


def state_key(doc: dict[str, Any]) -> str:
    """What a change is judged on: the document without its timestamp."""
    return json.dumps({k: v for k, v in doc.items() if k != "ts"}, sort_keys=True, separators=(",", ":"))


def encode(doc: dict[str, Any]) -> bytes:
    """Compact JSON, no NaN (strict consumers reject it)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
