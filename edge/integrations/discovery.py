"""Home Assistant MQTT discovery: one retained config message per entity.

Topic: ``{discovery_prefix}/{component}/{node_id}/{object_id}/config`` where ``node_id`` is the box
(its device id) and ``object_id`` names the entity (camera, zone, what); both are reduced to
``[a-zA-Z0-9_-]`` as Home Assistant requires. Every config carries a ``unique_id`` built from the
site, device, camera and zone ids (stable across restarts), a ``device`` block (the box, or one of its
cameras ``via_device`` the box), an ``origin``, the state topic with a ``value_template``, and
availability from the box's retained status topic (``online``/``offline``); zone entities are also
unavailable while their camera delivers no frames. An entity that disappears from the config is
removed in Home Assistant by an empty retained message on its config topic (the caller sends it).

Entities:
* box: ``binary_sensor`` connected (the status topic itself, device_class connectivity, diagnostic;
  the one entity that is never unavailable) and ``binary_sensor`` door (device_class door) when an
  enclosure door switch is wired;
* camera: ``binary_sensor`` tamper (device_class tamper, the active faults as attributes) and
  ``binary_sensor`` online (device_class connectivity, diagnostic);
* zone: ``sensor`` count (state_class measurement), one count per class when the zone watches more
  than one, ``binary_sensor`` occupied (device_class occupancy); with a capacity ``sensor`` occupancy
  (%); bike bays ``binary_sensor`` overflow (device_class problem); crowd zones with an area
  ``sensor`` density (persons/m²) and ``sensor`` level of service (device_class enum, A-F);
  no-parking zones ``sensor`` violations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from edge.integrations.model import LOS_LEVELS, BoxState, CameraState, ZoneState
from edge.integrations.state import StateTopics

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
PAYLOAD_AVAILABLE = "online"
PAYLOAD_NOT_AVAILABLE = "offline"
DENSITY_UNIT = "persons/m²"


def topic_id(text: str) -> str:
    """``text`` reduced to Home Assistant's node/object id alphabet ``[a-zA-Z0-9_-]``; a short hash of
    the original is appended when anything had to be replaced, so two ids cannot collapse into one."""
    safe = _UNSAFE.sub("_", text)
    if safe != text:
        safe = f"{safe}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return safe


@dataclass(frozen=True, slots=True)
class DiscoveryContext:
    """What every config of this box shares."""

    discovery_prefix: str
    site_id: str
    device_id: str
    device_name: str
    version: str
    status_topic: str
    states: StateTopics

    @property
    def node_id(self) -> str:
        return topic_id(self.device_id)

    @property
    def box_identifier(self) -> str:
        return f"edge_{self.site_id}_{self.device_id}"

    def topic(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{topic_id(object_id)}/config"

    def unique_id(self, *parts: str) -> str:
        return ":".join(("edge", self.site_id, self.device_id, *parts))


def _box_device(ctx: DiscoveryContext) -> dict[str, Any]:
    return {
        "identifiers": [ctx.box_identifier],
        "name": ctx.device_name,
        "manufacturer": "edge",
        "model": "street sensing box",
        "sw_version": ctx.version,
        "serial_number": ctx.device_id,
    }


def _camera_device(ctx: DiscoveryContext, camera_id: str) -> dict[str, Any]:
    return {
        "identifiers": [f"{ctx.box_identifier}_{camera_id}"],
        "name": f"{ctx.device_name} {camera_id}",
        "manufacturer": "edge",
        "model": "camera",
        "via_device": ctx.box_identifier,
    }


def _box_available(ctx: DiscoveryContext) -> dict[str, Any]:
    return {
        "topic": ctx.status_topic,
        "payload_available": PAYLOAD_AVAILABLE,
        "payload_not_available": PAYLOAD_NOT_AVAILABLE,
    }


def _entity(
    ctx: DiscoveryContext,
    *,
    unique: tuple[str, ...],
    name: str,
    device: dict[str, Any],
    state_topic: str,
    value_template: str,
    camera_topic: str | None = None,
    available: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One entity's config. ``camera_topic``: also unavailable while that camera is offline;
    ``available`` False: always available (the box's own connectivity sensor)."""
    doc: dict[str, Any] = {
        "name": name,
        "unique_id": ctx.unique_id(*unique),
        "state_topic": state_topic,
        "value_template": value_template,
        "device": device,
        "origin": {"name": "edge", "sw_version": ctx.version},
    }
    if not available:
        pass
    elif camera_topic is None:
        doc.update(
            availability_topic=ctx.status_topic,
            payload_available=PAYLOAD_AVAILABLE,
            payload_not_available=PAYLOAD_NOT_AVAILABLE,
        )
    else:
        doc["availability"] = [
            _box_available(ctx),
            {
                "topic": camera_topic,
                "value_template": "{{ 'online' if value_json.online else 'offline' }}",
                "payload_available": PAYLOAD_AVAILABLE,
                "payload_not_available": PAYLOAD_NOT_AVAILABLE,
            },
        ]
        doc["availability_mode"] = "all"
    doc.update(extra)
    return doc


def _on_off(expr: str) -> str:
    return "{{ 'ON' if " + expr + " else 'OFF' }}"


def _camera_entities(ctx: DiscoveryContext, cam: CameraState) -> dict[str, dict[str, Any]]:
    cid = cam.camera_id
    dev = _camera_device(ctx, cid)
    topic = ctx.states.camera(cid)
    out = {
        ctx.topic("binary_sensor", f"{cid}_online"): _entity(
            ctx,
            unique=(cid, "online"),
            name="online",
            device=dev,
            state_topic=topic,
            value_template=_on_off("value_json.online"),
            device_class="connectivity",
            entity_category="diagnostic",
        )
    }
    if cam.tamper_checked:
        out[ctx.topic("binary_sensor", f"{cid}_tamper")] = _entity(
            ctx,
            unique=(cid, "tamper"),
            name="tamper",
            device=dev,
            state_topic=topic,
            value_template=_on_off("value_json.tampered"),
            device_class="tamper",
            json_attributes_topic=topic,
            json_attributes_template="{{ {'faults': value_json.faults} | tojson }}",
        )
    return out


def _zone_entities(ctx: DiscoveryContext, cam: CameraState, z: ZoneState) -> dict[str, dict[str, Any]]:
    cid, zid = cam.camera_id, z.zone_id
    common: dict[str, Any] = {
        "device": _camera_device(ctx, cid),
        "state_topic": ctx.states.zone(cid, zid),
        "camera_topic": ctx.states.camera(cid),
    }
    out: dict[str, dict[str, Any]] = {}

    def add(component: str, what: str, name: str, template: str, **extra: Any) -> None:
        out[ctx.topic(component, f"{cid}_{zid}_{what}")] = _entity(
            ctx, unique=(cid, zid, what), name=f"{zid} {name}", value_template=template, **common, **extra
        )

    add("sensor", "count", "count", "{{ value_json.count }}", state_class="measurement", icon="mdi:counter")
    if len(z.classes) > 1:
        for cls in z.classes:
            add(
                "sensor",
                f"count_{cls}",
                f"{cls} count",
                "{{ value_json.counts.get('" + cls + "', 0) }}",
                state_class="measurement",
                icon="mdi:counter",
            )
    add("binary_sensor", "occupied", "occupied", _on_off("value_json.count > 0"), device_class="occupancy")
    if z.capacity is not None and z.occupancy is not None:
        add(
            "sensor",
            "occupancy",
            "occupancy",
            "{{ (value_json.occupancy * 100) | round(1) }}",
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:percent",
        )
    if z.overflow is not None:
        add("binary_sensor", "overflow", "overflow", _on_off("value_json.overflow"), device_class="problem")
    if z.has_density:
        add(
            "sensor",
            "density",
            "density",
            "{{ value_json.density }}",
            unit_of_measurement=DENSITY_UNIT,
            state_class="measurement",
            suggested_display_precision=2,
            icon="mdi:account-group",
        )
        add(
            "sensor",
            "los",
            "level of service",
            "{{ value_json.los }}",
            device_class="enum",
            options=list(LOS_LEVELS),
        )
    if z.violations is not None:
        add(
            "sensor",
            "violations",
            "violations",
            "{{ value_json.violations }}",
            state_class="measurement",
            icon="mdi:car-off",
        )
    return out


def discovery_documents(ctx: DiscoveryContext, box: BoxState) -> dict[str, dict[str, Any]]:
    """Every discovery config topic of this box -> its document."""
    out: dict[str, dict[str, Any]] = {
        ctx.topic("binary_sensor", "connected"): _entity(
            ctx,
            unique=("connected",),
            name="connected",
            device=_box_device(ctx),
            state_topic=ctx.status_topic,
            value_template="{{ value }}",
            payload_on=PAYLOAD_AVAILABLE,
            payload_off=PAYLOAD_NOT_AVAILABLE,
            device_class="connectivity",
            entity_category="diagnostic",
            available=False,
        )
    }
    if box.door_open is not None:
        out[ctx.topic("binary_sensor", "door")] = _entity(
            ctx,
            unique=("door",),
            name="enclosure door",
            device=_box_device(ctx),
            state_topic=ctx.states.box,
            value_template=_on_off("value_json.door_open"),
            device_class="door",
        )
    for cam in box.cameras:
        out.update(_camera_entities(ctx, cam))
        for z in cam.zones:
            out.update(_zone_entities(ctx, cam, z))
    return out
