"""Uplink settings: MQTT broker, TLS, outbox (owned by the uplink stage)."""

from __future__ import annotations

from edge.config.base import Field, StrictModel


class UplinkConfig(StrictModel):
    """Where events go. With no broker, events go to a JSONL file sink."""

    topic_prefix: str = Field("edge", min_length=1, description="First topic level: {prefix}/{site}/{device}/...")
    outbox_path: str = Field("/var/lib/edge/outbox.sqlite", description="SQLite outbox file (durable queue).")
    jsonl_path: str | None = Field(None, description="Also append every event to this JSONL file.")
