"""MQTT topic layout: ``{prefix}/{site}/{device}/...``."""

from __future__ import annotations

from dataclasses import dataclass

FEATURES_KIND = "features"
HEALTH_KIND = "device_health"
COMMANDS = ("ack_task", "resolve_task", "reload_config", "snapshot", "ping")


@dataclass(frozen=True, slots=True)
class Topics:
    """All topics of one box."""

    prefix: str
    site_id: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site_id}/{self.device_id}"

    def event(self, kind: str, camera_id: str | None = None) -> str:
        """Where an event of ``kind`` is published: features and device health have their own topics."""
        if kind == FEATURES_KIND:
            return f"{self.base}/features/{camera_id or '_device'}"
        if kind == HEALTH_KIND:
            return f"{self.base}/health"
        return f"{self.base}/events/{kind}"

    @property
    def status(self) -> str:
        """Retained ``online`` / ``offline`` (the last will, and a clean stop): the availability topic."""
        return f"{self.base}/status"

    @property
    def status_reason(self) -> str:
        """Retained JSON saying why the box went offline cleanly (stopped, error); cleared on connect."""
        return f"{self.base}/status/reason"

    @property
    def cmd_filter(self) -> str:
        return f"{self.base}/cmd/#"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def reply(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/reply"

    def command_name(self, topic: str) -> str | None:
        """The command name of a ``.../cmd/{name}`` topic; None for replies and foreign topics."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :]
        if not rest or "/" in rest:
            return None
        return rest
