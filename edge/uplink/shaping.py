"""What a box spends on the wire: feature records trimmed or held back, messages compressed.

* ``FeatureShaper`` is applied to a built ``features`` Event before it enters the outbox (so a record
  that is held back never gets a ``seq`` and consumers see no gap): it drops the parts listed in
  ``uplink.features.omit`` and, with ``only_on_change``, holds back a record equal to the last one sent
  for that camera (up to ``max_silence_s`` of event time). Every other kind passes untouched.
* ``encode_for_wire`` compresses the payload of the kinds in ``uplink.compress`` with zlib when the
  message is published; ``decode_from_wire`` is what a consumer does with it. The outbox and the
  JSONL sink keep plain JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any

from edge.config.uplink import FEATURE_TOP_PARTS, FeatureUplinkConfig
from edge.events.schema import Event
from edge.events.topics import FEATURES_KIND

ZLIB_CONTENT_TYPE = "application/zlib"
ZLIB_LEVEL = 9
MAX_INFLATED_BYTES = 16 * 1024 * 1024  # a consumer never inflates a message beyond this


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class FeatureShaper:
    """Trims and de-duplicates ``features`` records of one box (one instance per outbox)."""

    def __init__(self, cfg: FeatureUplinkConfig) -> None:
        self.cfg = cfg
        self._top = [p for p in cfg.omit if p in FEATURE_TOP_PARTS]
        self._zone = [p.split(".", 1)[1] for p in cfg.omit if p.startswith("zones.")]
        self._last: dict[str | None, tuple[str, float]] = {}  # camera -> (content key, event time)
        self._held: dict[str | None, int] = {}
        self.held_back = 0

    @property
    def active(self) -> bool:
        return bool(self.cfg.omit) or self.cfg.only_on_change

    def __call__(self, event: Event) -> Event | None:
        """The event to store (possibly trimmed), or None when the record is held back as unchanged."""
        if event.kind != FEATURES_KIND or not self.active:
            return event
        payload = self._trim(event.payload)
        if self.cfg.only_on_change:
            cam = event.camera_id
            key = json.dumps({k: v for k, v in payload.items() if k != "interval_s"}, sort_keys=True)
            t = _epoch(event.ts)
            last = self._last.get(cam)
            if last is not None and last[0] == key and t - last[1] < self.cfg.max_silence_s:
                self._held[cam] = self._held.get(cam, 0) + 1
                self.held_back += 1
                return None
            held = self._held.pop(cam, 0)
            if held:
                payload["unchanged_before"] = held
            self._last[cam] = (key, t)
        if payload == event.payload:
            return event
        return event.model_copy(update={"payload": payload})

    def _trim(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.cfg.omit:
            return dict(payload)
        out = {k: v for k, v in payload.items() if k not in self._top}
        if self._zone and isinstance(payload.get("zones"), dict):
            out["zones"] = {
                zid: {k: v for k, v in z.items() if k not in self._zone} if isinstance(z, dict) else z
                for zid, z in payload["zones"].items()
            }
        out["omitted"] = list(self.cfg.omit)
        return out


def encode_for_wire(kind: str, payload: bytes, compress: frozenset[str] | set[str]) -> tuple[bytes, str | None]:
    """(bytes to publish, MQTT 5 content type or None). Compressed only when it is smaller."""
    if kind not in compress:
        return payload, None
    packed = zlib.compress(payload, ZLIB_LEVEL)
    if len(packed) >= len(payload):
        return payload, None
    return packed, ZLIB_CONTENT_TYPE


def decode_from_wire(payload: bytes, content_type: str | None) -> bytes:
    """The JSON envelope of a received message (inflated when its content type says zlib).
    Raises ValueError for a corrupt stream or one that inflates beyond ``MAX_INFLATED_BYTES``."""
    if content_type != ZLIB_CONTENT_TYPE:
        return payload
    d = zlib.decompressobj()
    try:
        out = d.decompress(payload, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise ValueError(f"content type {ZLIB_CONTENT_TYPE} but not a zlib stream ({exc})") from None
    if d.unconsumed_tail or not d.eof:
        raise ValueError(
            f"zlib payload truncated or inflates beyond {MAX_INFLATED_BYTES} bytes; message refused"
        )
    return out
