"""Per-camera frame-rate and inference-latency statistics over a sliding time window."""

from __future__ import annotations

from collections import deque

import numpy as np


class CameraStats:
    """Counts captured / processed / dropped / skipped frames and inference latency.

    Call the ``record_*`` methods with the monotonic time of the event; ``snapshot(t)``
    gives rates (frames per second) and latency percentiles over the last ``window_s``
    seconds, plus lifetime totals.
    """

    def __init__(self, camera_id: str, window_s: float = 60.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.camera_id = camera_id
        self.window_s = window_s
        self._captured: deque[float] = deque()
        self._processed: deque[float] = deque()
        self._dropped: deque[tuple[float, int]] = deque()
        self._skipped: deque[float] = deque()
        self._latency: deque[tuple[float, float]] = deque()
        self.totals = {"captured": 0, "processed": 0, "dropped": 0, "skipped": 0}
        self._first_t: float | None = None
        self.last_t: float | None = None

    def _start(self, t: float) -> None:
        if self._first_t is None:
            self._first_t = t
        if self.last_t is None or t > self.last_t:
            self.last_t = t

    def record_captured(self, t: float) -> None:
        self._start(t)
        self._captured.append(t)
        self.totals["captured"] += 1

    def record_dropped(self, t: float, n: int = 1) -> None:
        """``n`` frames were overwritten in the one-slot buffer before the pipeline took them."""
        if n <= 0:
            return
        self._start(t)
        self._dropped.append((t, n))
        self.totals["dropped"] += n

    def record_processed(self, t: float, inference_ms: float | None = None) -> None:
        """A frame went through the pipeline; ``inference_ms`` when the detector ran on it,
        None when motion gating skipped the detector."""
        self._start(t)
        self._processed.append(t)
        self.totals["processed"] += 1
        if inference_ms is None:
            self._skipped.append(t)
            self.totals["skipped"] += 1
        else:
            self._latency.append((t, float(inference_ms)))

    # names the runner uses
    def on_frame(self, t: float) -> None:
        """A frame reached the pipeline (alias of ``record_captured``)."""
        self.record_captured(t)

    def on_processed(self, t: float, detect_ms: float, inferred: bool) -> None:
        """The pipeline finished a frame; ``inferred`` False when gating skipped the detector."""
        self.record_processed(t, detect_ms if inferred else None)

    def _trim(self, t: float) -> None:
        lo = t - self.window_s
        for q in (self._captured, self._processed, self._skipped):
            while q and q[0] < lo:
                q.popleft()
        for q2 in (self._dropped, self._latency):
            while q2 and q2[0][0] < lo:
                q2.popleft()

    def snapshot(self, t: float | None = None) -> dict[str, object]:
        """Rates and percentiles over the window ending at ``t`` (a dict for the health record).

        ``t`` is in the frames' own time base; None means the latest recorded time (frames
        from a file replayed at CPU speed carry video time, not the wall clock)."""
        if t is None:
            t = self.last_t if self.last_t is not None else 0.0
        self._trim(t)
        span = self.window_s if self._first_t is None else min(self.window_s, max(t - self._first_t, 1e-9))
        lat = np.fromiter((v for _, v in self._latency), np.float64, count=len(self._latency))
        processed = len(self._processed)
        return {
            "camera_id": self.camera_id,
            "fps_captured": round(len(self._captured) / span, 3),
            "fps_processed": round(processed / span, 3),
            "fps_dropped": round(sum(n for _, n in self._dropped) / span, 3),
            "inference_p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
            "inference_p95_ms": round(float(np.percentile(lat, 95)), 3) if lat.size else None,
            "skipped_fraction": round(len(self._skipped) / processed, 4) if processed else 0.0,
            "window_s": round(span, 3),
            "totals": dict(self.totals),
        }
