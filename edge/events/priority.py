"""Outbox priority of an event: alarms > info > feature records (evicted first)."""

from __future__ import annotations

import enum

from edge.events.topics import FEATURES_KIND

ALARM_KINDS = frozenset({"camera_tamper", "tamper"})
TASK_KINDS = frozenset({"dispatch_task"})


class Priority(enum.IntEnum):
    FEATURE = 0
    INFO = 1
    ALARM = 2


def priority_of(kind: str, phase: str, severity: str) -> Priority:
    """Alarm: severity major/critical, any tamper, or a dispatch task that is still open."""
    if severity in ("major", "critical") or kind in ALARM_KINDS:
        return Priority.ALARM
    if kind in TASK_KINDS and phase != "end":
        return Priority.ALARM
    if kind == FEATURES_KIND:
        return Priority.FEATURE
    return Priority.INFO
