"""Frame sources. ``open_source(cam)`` picks the implementation for a camera's ``source``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.errors import CaptureError

if TYPE_CHECKING:
    from edge.config.site import CameraConfig
    from edge.ports import FrameSource


def open_source(cam: CameraConfig) -> FrameSource:
    """A running frame source for ``cam``; loss and recovery arrive as ``SourceStatus`` values.

    ``sim://street...`` is the synthetic street of ``firmware_sim`` (rendered frames with
    ground truth); everything else goes to OpenCV.
    """
    src = cam.source
    if isinstance(src, str) and src.startswith("sim://"):
        try:
            from firmware_sim.street import open_street_source
        except ImportError as exc:
            raise CaptureError(
                f"camera {cam.id}: {src} needs the firmware_sim package (install the repo with pip install -e .): {exc}"
            ) from exc
        return open_street_source(cam)
    from edge.capture.opencv import OpenCvSource

    return OpenCvSource(cam)


def probe_camera(cam: CameraConfig, timeout_s: float = 10.0) -> tuple[int, int]:
    """Wait for one frame from ``cam`` and return (width, height); raise CaptureError naming why not."""
    from edge.capture.opencv import probe_camera as _probe

    return _probe(cam, timeout_s)


__all__ = ["open_source", "probe_camera"]
