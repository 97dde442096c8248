"""Multi-object tracking (ByteTrack-style, lifetimes in seconds, stationary-place memory)."""

from edge.tracking.tracker import ByteTracker

__all__ = ["ByteTracker"]
