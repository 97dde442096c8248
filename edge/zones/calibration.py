"""A camera's ground plane: the homography from its calibration config, for any frame size.

The solver and the projections are ``edge.geometry``'s; this binds them to the config, whose image
points are fractions of the frame. The fit is done once, on those normalised points, so the
tracker, the zone areas and the motion backend share one homography whatever the frame size.
"""

from __future__ import annotations

import numpy as np

from edge.config.zones import CalibrationConfig
from edge.errors import ConfigError
from edge.geometry import Homography


class GroundPlane:
    """Pixels <-> metres for one camera; ``at(width, height)`` gives the pixel homography of a frame size."""

    def __init__(self, cal: CalibrationConfig, where: str = "calibration") -> None:
        image = np.asarray(cal.image_points, np.float64)
        ground = np.asarray(cal.ground_points_m, np.float64)
        try:
            self.unit = Homography.fit(image, ground)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}; re-pick the ground points with 'edge-agent calibrate'") from None
        self.rms_error_m = float(np.sqrt(np.mean(self.unit.residuals_m(image, ground) ** 2)))
        self._at: dict[tuple[int, int], Homography] = {}

    def at(self, width: int, height: int) -> Homography:
        """The homography for pixels of a ``width`` x ``height`` frame (cached per size)."""
        h = self._at.get((width, height))
        if h is None:
            h = self._at[(width, height)] = self.unit.scaled_from_unit(width, height)
        return h


def ground_plane(cal: CalibrationConfig | None, where: str = "calibration") -> GroundPlane | None:
    """The ground plane of a camera's ``calibration`` config, or None for an uncalibrated camera."""
    return GroundPlane(cal, where) if cal is not None else None
