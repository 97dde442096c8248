"""One error tree for the whole agent.

Each error also inherits the closest Python built-in, so callers that only know
``ValueError`` / ``OSError`` still catch them (the gpiozero convention).
Every message should say what is wrong *and* what to do about it.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(EdgeError, ValueError):
    """A site config is invalid. ``problems`` holds one ``path: message`` line per problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


class ModelError(EdgeError, ValueError):
    """A model file or manifest cannot be used (missing, wrong sha256, wrong layout...)."""


class CaptureError(EdgeError, OSError):
    """A frame source cannot be opened or stopped delivering frames."""


class HardwareError(EdgeError, OSError):
    """A GPIO line or serial device is missing, silent or misbehaving."""


class CodecError(EdgeError, ValueError):
    """A serial frame or sentence is malformed (bad header, length, checksum...)."""


class UplinkError(EdgeError, ConnectionError):
    """The broker or fallback uplink refused or cannot be reached."""


class CommandError(EdgeError, ValueError):
    """An upstream command is unknown, malformed, oversized or not allowed."""
