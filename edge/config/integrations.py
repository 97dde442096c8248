"""What the box offers to home-automation and monitoring tools besides the event stream: retained
per-zone state topics (latest values) and Home Assistant MQTT discovery. Both are off by default:
every retained message costs bytes on a fleet's broker."""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from edge.config.base import Field, StrictModel

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,3}$")
#: Characters a zone id cannot carry when it becomes a topic level of the state topics.
TOPIC_LEVEL_FORBIDDEN = ("/", "+", "#", "\x00")


class StateTopicsConfig(StrictModel):
    """Retained "latest value" topics: ``{prefix}/{site}/{device}/state/{camera}/{zone}`` and friends."""

    enabled: bool = Field(
        False,
        description=(
            "Publish a retained state per zone (count by class, occupancy, density, level of service), per camera "
            "(online, tamper) and for the box (door), each only when it changes. Memory only, never the outbox: "
            "a stale state is not replayed after an outage; the current one is sent on every (re)connect."
        ),
    )
    min_interval_s: float = Field(
        2.0,
        ge=0.2,
        le=3600,
        description=(
            "A state topic is published at most this often (box time); a change inside the interval is sent when "
            "it ends, as the latest value (intermediate values are skipped, never queued)."
        ),
    )


class HomeAssistantConfig(StrictModel):
    """Home Assistant MQTT discovery: retained ``{discovery_prefix}/{component}/{node}/{object}/config``."""

    enabled: bool = Field(
        False,
        description=(
            "Announce the box, its cameras and zones to Home Assistant (zone counts, occupancy, density, level of "
            "service, camera tamper, enclosure door), with availability from the status topic. Needs state_topics."
        ),
    )
    discovery_prefix: str = Field(
        "homeassistant",
        description="Home Assistant's discovery prefix (its MQTT integration setting; 'homeassistant' unless changed).",
    )
    device_name: str | None = Field(
        None, max_length=100, description="The box's name in Home Assistant; default its device_id."
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError(
                f"{v!r} is not a valid discovery prefix: 1-4 levels of letters, digits, '-', '_', '.', "
                "separated by '/', without '+', '#' or a leading '/'"
            )
        return v


class IntegrationsConfig(StrictModel):
    """State topics and Home Assistant discovery (both opt-in)."""

    state_topics: StateTopicsConfig = Field(
        default_factory=StateTopicsConfig, description="Retained per-zone, per-camera and box state topics."
    )
    home_assistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery."
    )

    @model_validator(mode="after")
    def _ha_needs_state(self) -> IntegrationsConfig:
        if self.home_assistant.enabled and not self.state_topics.enabled:
            raise ValueError(
                "home_assistant.enabled: Home Assistant's entities read the state topics; "
                "set integrations.state_topics.enabled: true as well"
            )
        return self
