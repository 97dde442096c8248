"""Events: the versioned envelope, its published JSON Schema, the builder and topics.

Pure: no vendor libraries (no paho, no cv2). The uplink stage turns events into outbox rows.
"""

from edge.events.schema import SCHEMA_ID, Event, EventValidationError, GeoPoint, ModelRef

__all__ = ["SCHEMA_ID", "Event", "EventValidationError", "GeoPoint", "ModelRef"]
