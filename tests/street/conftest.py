from __future__ import annotations

import pytest

from edge.config.site import CameraConfig
from firmware_sim.street.scenario import camera_layout


def street_camera(**overrides: object) -> CameraConfig:
    """The demo street camera (zones, line, calibration from the street's layout).

    The source is a file name here so these tests do not depend on the config's URL schemes.
    """
    data: dict[str, object] = {
        "id": "street",
        "source": "street.mp4",
        "model": "motion",
        "resolution": [640, 400],
    }
    data.update(camera_layout())
    data.update(overrides)
    return CameraConfig.model_validate(data)


@pytest.fixture
def cam() -> CameraConfig:
    return street_camera()
