"""Frame sources. ``open_source(cam)`` picks the implementation for a camera's ``source``.

OpenCV opens devices, files, stills and network streams (``rtsp://``, ``http://`` ...). Other URL
schemes come from plug-ins (``edge.plugins``, group ``edge.sources``): ``sim://street`` is the
synthetic street that ``firmware_sim`` registers. The agent never imports the simulator.
"""

from __future__ import annotations

from edge import plugins
from edge.capture.opencv import OpenCvSource
from edge.capture.opencv import probe_camera as _probe
from edge.config.site import OPENCV_SCHEMES, CameraConfig
from edge.errors import CaptureError
from edge.ports import FrameSource


def _scheme(source: str | int) -> str | None:
    if isinstance(source, str) and "://" in source:
        return source.split("://", 1)[0].lower()
    return None


def open_source(cam: CameraConfig) -> FrameSource:
    """A running frame source for ``cam``; loss and recovery arrive as ``SourceStatus`` values."""
    scheme = _scheme(cam.source)
    if scheme is None or scheme in OPENCV_SCHEMES:
        return OpenCvSource(cam)
    factory = plugins.source_factory(scheme)
    if factory is None:
        installed = ", ".join(f"{s}://" for s in plugins.names(plugins.SOURCES)) or "none"
        raise CaptureError(
            f"camera {cam.id}: no frame source handles {scheme}:// ({cam.source}); "
            f"plug-in sources installed: {installed}. sim:// comes with the firmware_sim package "
            "(pip install the edge repository); a real camera is a device, a file or rtsp://..."
        )
    source: FrameSource = factory(cam)
    return source


def probe_camera(cam: CameraConfig, timeout_s: float = 10.0) -> tuple[int, int]:
    """Wait for one frame from ``cam`` and return (width, height); raise CaptureError naming why not."""
    return _probe(cam, open_source(cam), timeout_s)


__all__ = ["open_source", "probe_camera"]
