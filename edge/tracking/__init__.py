"""Multi-object tracking (ByteTrack-style, lifetimes in seconds, stationary-place memory)."""

from edge.tracking.tracker import ByteTracker, greedy_match

__all__ = ["ByteTracker", "greedy_match"]
