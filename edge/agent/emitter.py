"""``EventEmitter``: the agent's ``EventSink``. Drafts become events, durable in the outbox first.

For each draft, in order: the GPS time correction (a box with no RTC and no network learns from the
GPS how wrong its clock is), the box's sensor readings fused into a camera's feature record, the
event built (ids, seq, clock, geo, model), the row committed to the outbox, then the beacon and any
observer (``on_event``). Nothing here publishes: the uplink drains the outbox.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from edge import __version__
from edge.errors import EdgeError
from edge.events.builder import EventBuilder
from edge.events.schema import ModelRef
from edge.hardware.manager import HardwareManager
from edge.types import EventDraft
from edge.uplink.outbox import Outbox

log = logging.getLogger(__name__)

#: The box's sensor readings copied into each camera's feature record.
SENSOR_KEYS = ("radar.presence", "radar.distance_m", "radar.moving_energy", "radar.static_energy", "pir.motion")


class EventEmitter:
    """Implements ``edge.ports.EventSink``; safe to call from every camera's rules thread at once."""

    def __init__(
        self,
        builder: EventBuilder,
        outbox: Outbox,
        *,
        hardware: HardwareManager | None = None,
        blinded: Callable[[str], bool] = lambda camera_id: False,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.builder = builder
        self.outbox = outbox
        self.hardware = hardware  # set to None by the runner when the hardware fails to start
        self.blinded = blinded
        self.on_event = on_event
        self.counts: Counter[str] = Counter()  # events accepted by kind, and "rejected"
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()

    def submit(self, drafts: Sequence[EventDraft], model: ModelRef | None = None) -> None:
        """Build events, make them durable in the outbox, then tell the beacon and observers. Never raises."""
        if not drafts:
            return
        offset = self.time_offset_s()
        with self._lock:
            for draft in drafts:
                self._one(draft, model, offset)

    def time_offset_s(self) -> float:
        """How far the system clock is behind the GPS (0 unless more than a second)."""
        hw = self.hardware
        if hw is None:
            return 0.0
        try:
            off = hw.time_offset_s()
        except Exception:  # a GPS fault must not stop events
            log.exception("reading the GPS time offset failed")
            return 0.0
        return float(off) if off is not None and abs(off) > 1.0 else 0.0

    def _one(self, draft: EventDraft, model: ModelRef | None, offset: float) -> None:
        if offset:
            draft = dataclasses.replace(
                draft,
                ts=draft.ts + offset,
                started_ts=None if draft.started_ts is None else draft.started_ts + offset,
            )
        if draft.kind == "features" and self.hardware is not None:
            draft = self._with_sensors(draft)
        try:
            event = self.builder.build(draft, model=model if draft.camera_id else None)
            stored = self.outbox.put(event)
        except EdgeError as exc:
            # A payload that breaks its schema is a bug in its producer: loud in the log, counted, go on.
            log.error("event dropped at build kind=%s key=%s: %s", draft.kind, draft.key, exc)
            self.counts["rejected"] += 1
            return
        self.counts[draft.kind] += 1
        if self.hardware is not None:
            try:
                # The beacon lives in the box's time (max on-time, quiet hours), not in the camera's:
                # a file replayed in video time would otherwise switch it off at once.
                self.hardware.alarm(dataclasses.replace(draft, t=self._monotonic(), ts=self._wall() + offset))
            except Exception:
                log.exception("beacon failed")
        if self.on_event is not None:
            try:
                self.on_event((stored if stored is not None else event).to_dict())  # None: held back by the shaper
            except Exception:  # the event is durable already; an observer's bug must not stop its producer
                log.exception("event observer failed kind=%s", draft.kind)

    def _with_sensors(self, draft: EventDraft) -> EventDraft:
        """A camera's feature record with the box's sensor readings, fused with its tamper state:
        the radar seeing people while the camera is blinded means zero counts are not to be trusted."""
        hw = self.hardware
        assert hw is not None
        try:
            # A reading that is not a finite number is left out: it would cost the whole record.
            values = {f.key: float(f.value) for f in hw.features(draft.t) if math.isfinite(float(f.value))}
            presence = hw.radar_presence()
        except Exception:
            log.exception("reading sensors for the feature record failed")
            return draft
        if not values and presence is None:
            return draft
        sensors: dict[str, Any] = {k: v for k, v in values.items() if k in SENSOR_KEYS}
        sensors["presence_while_blind"] = bool(presence) and self.blinded(draft.camera_id or "")
        return dataclasses.replace(draft, payload={**draft.payload, "sensors": sensors})


def agent_status_draft(state: str, reason: str = "", outbox_pending: int | None = None) -> EventDraft:
    """An ``agent_status`` draft: started, stopping, config_reloaded or config_rejected (box time)."""
    payload: dict[str, Any] = {"state": state, "version": __version__}
    if reason:
        payload["reason"] = reason[:1024]
    if outbox_pending is not None:
        payload["outbox_pending"] = int(outbox_pending)
    return EventDraft(
        kind="agent_status",
        phase="instant",
        key=f"agent:{state}",
        t=time.monotonic(),
        ts=time.time(),
        severity="minor" if state == "config_rejected" else "info",
        severity_reason=f"agent {state}" + (f": {reason}" if reason else ""),
        payload=payload,
    )
