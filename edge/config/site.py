"""The site config: one YAML file per box. Components each receive their own sub-model."""

from __future__ import annotations

import re
import zoneinfo
from typing import Literal
from urllib.parse import urlparse

from pydantic import field_validator, model_validator

from edge import plugins
from edge.config.base import Field, Point, StrictModel, check_polygon
from edge.config.detector import DetectorConfig
from edge.config.hardware import HardwareConfig
from edge.config.health import HealthConfig, TamperConfig
from edge.config.integrations import TOPIC_LEVEL_FORBIDDEN, IntegrationsConfig
from edge.config.rules import RulesConfig
from edge.config.signing import SigningConfig
from edge.config.uplink import UplinkConfig
from edge.config.zones import CalibrationConfig, LineConfig, ZoneConfig

CONFIG_VERSION = 1
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Network URL schemes OpenCV opens itself; other schemes need a source plug-in (``edge.plugins``).
OPENCV_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "rtmp", "http", "https")


def check_id(v: str) -> str:
    """Ids go into MQTT topics and file names: letters, digits, '-', '_', '.'; no '/', '+', '#'."""
    if not _ID.match(v):
        raise ValueError(
            f"{v!r} is not a valid id: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return v


class GeoConfig(StrictModel):
    """Where the box stands. A GPS fix, when present, overrides it in events."""

    lat: float = Field(..., ge=-90, le=90, description="Latitude in decimal degrees (WGS-84).")
    lon: float = Field(..., ge=-180, le=180, description="Longitude in decimal degrees (WGS-84).")
    alt_m: float | None = Field(None, description="Altitude in metres, if known.")


class EvidenceConfig(StrictModel):
    """Evidence crops. Off by default: no image leaves the box unless this is enabled."""

    enabled: bool = Field(False, description="Keep a redacted crop of each violating vehicle (people pixelated).")
    path: str = Field("/var/lib/edge/evidence", description="Directory for evidence JPEGs on the box.")
    upload: bool = Field(False, description="Also allow evidence to be sent upstream (the snapshot command).")
    retention_days: float = Field(
        30.0, gt=0, description="Evidence JPEGs older than this many days are deleted from the box."
    )
    max_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024 * 1024,
        description="Most bytes of evidence JPEGs kept on the box; the oldest are deleted first beyond it.",
    )


class CameraConfig(StrictModel):
    """One camera: where frames come from, which model looks at them, and its zones."""

    id: str = Field(..., description="Camera id, unique on this box; appears in topics and events.")
    source: str | int = Field(
        ...,
        description=(
            "V4L2 index (0) or path (/dev/video0), rtsp://, http(s):// URL, a video file, "
            "an image file (held for hold_s), or sim://street for the synthetic street."
        ),
    )
    playback: Literal["video_time", "realtime"] = Field(
        "video_time",
        description="For files: 'video_time' replays as fast as the CPU allows with the file's own timestamps; 'realtime' paces to the wall clock.",
    )
    hold_s: float = Field(600.0, gt=0, description="For a still image: how many simulated seconds to hold it.")
    loop: bool = Field(False, description="For files: start again at the end instead of ending the run.")
    detect_fps: float = Field(5.0, gt=0, le=60, description="Frames per second handed to the detector (sub-sampled).")
    resolution: tuple[int, int] | None = Field(
        None, description="Requested capture size [width, height] in pixels; None keeps the camera's default."
    )
    model: str = Field(
        "yolox_nano_416",
        description="Model manifest name (models/<name>.yaml), a manifest path, or 'motion' for the model-free motion backend.",
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="How the model is run.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Zones this camera watches.")
    lines: list[LineConfig] = Field(default_factory=list, description="Counting lines for in/out flows.")
    masks: list[list[Point]] = Field(
        default_factory=list, description="Exclusion polygons (normalised); detections anchored inside are ignored."
    )
    calibration: CalibrationConfig | None = Field(None, description="Ground-plane calibration (homography).")
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="Camera tamper and blind detection.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First delay before reconnecting a lost camera.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest delay between reconnect attempts (backoff cap).")
    online_stable_s: float = Field(
        10.0,
        ge=0,
        description=(
            "After a lost camera delivers frames again, how long (seconds of its own time: video time "
            "for files) they must keep flowing before its offline episode ends; failures within it stay "
            "in the same episode, so a flapping source is one camera_status episode. 0 ends it at the first frame."
        ),
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | int) -> str | int:
        if isinstance(v, int):
            if v < 0:
                raise ValueError(f"a V4L2 device index must be >= 0, got {v}")
            return v
        if not v.strip():
            raise ValueError("is empty; give a device index, /dev/videoN, a URL or a file path")
        if "://" in v:
            url = urlparse(v)
            plugged = plugins.names(plugins.SOURCES)
            if url.scheme not in OPENCV_SCHEMES and url.scheme not in plugged:
                raise ValueError(
                    f"URL scheme {url.scheme!r} is not supported; use one of {', '.join(OPENCV_SCHEMES)}"
                    + (f" or an installed source plug-in ({', '.join(plugged)})" if plugged else "")
                )
            if not url.hostname and url.scheme in OPENCV_SCHEMES:
                raise ValueError(f"URL {v!r} has no host")
        elif re.match(r"^[a-z]+:/?[^/]", v) and not re.match(r"^[A-Za-z]:[\\/]", v):
            raise ValueError(f"{v!r} looks like a malformed URL; write scheme://host/path")
        return v

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[Point]]) -> list[list[Point]]:
        for poly in v:
            check_polygon(poly)
        return v

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] < 16 or v[1] < 16 or v[0] > 8192 or v[1] > 8192):
            raise ValueError(f"width and height must be within 16..8192, got {v[0]}x{v[1]}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> CameraConfig:
        seen: set[str] = set()
        for i, z in enumerate(self.zones):
            if z.id in seen:
                raise ValueError(f"zones[{i}].id: duplicate zone id {z.id!r}; zone ids must be unique per camera")
            seen.add(z.id)
        for i, ln in enumerate(self.lines):
            if ln.id in seen:
                raise ValueError(f"lines[{i}].id: id {ln.id!r} is already used by a zone or line of this camera")
            seen.add(ln.id)
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s: must be >= reconnect_min_s")
        return self


class SiteConfig(StrictModel):
    """Everything one box needs to know. See configs/ for commented examples."""

    config_version: Literal[1] = Field(..., description="Config format version; this agent reads version 1.")
    device_id: str = Field(..., description="This box's id; unique in the city; the MQTT topic's device level.")
    site_id: str = Field(..., description="The site (street, plaza) the box belongs to; the topic's site level.")
    timezone: str = Field(
        "Asia/Shanghai", description="IANA time zone used for zone schedules and quiet hours (e.g. Asia/Shanghai)."
    )
    geo: GeoConfig | None = Field(None, description="Fixed position of the box; a GPS fix overrides it.")
    cameras: list[CameraConfig] = Field(..., min_length=1, description="The cameras of this box (at least one).")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Street rule parameters.")
    uplink: UplinkConfig = Field(default_factory=UplinkConfig, description="Where events go (MQTT, outbox, files).")
    hardware: HardwareConfig = Field(default_factory=HardwareConfig, description="GPIO lines and serial devices.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health, tamper and supervision.")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, description="Evidence crops (off by default).")
    signing: SigningConfig = Field(
        default_factory=SigningConfig, description="Signed events: the box's Ed25519 key (on by default)."
    )
    integrations: IntegrationsConfig = Field(
        default_factory=IntegrationsConfig,
        description="Retained state topics and Home Assistant discovery (opt-in; see docs/integrations.md).",
    )

    @field_validator("device_id", "site_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return check_id(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Asia/Shanghai") from None
        return v

    @model_validator(mode="after")
    def _unique_cameras(self) -> SiteConfig:
        seen: set[str] = set()
        for i, cam in enumerate(self.cameras):
            if cam.id in seen:
                raise ValueError(f"cameras[{i}].id: duplicate camera id {cam.id!r}")
            seen.add(cam.id)
        return self

    @model_validator(mode="after")
    def _state_topics(self) -> SiteConfig:
        """State topics are MQTT topics with the zone id as a level: a broker, and ids fit for a topic level."""
        if not self.integrations.state_topics.enabled:
            return self
        if self.uplink.mqtt is None:
            raise ValueError(
                "integrations.state_topics.enabled: state topics are retained MQTT messages and this box has no "
                "broker; configure uplink.mqtt or turn them off"
            )
        for i, cam in enumerate(self.cameras):
            for j, z in enumerate(cam.zones):
                bad = [c for c in TOPIC_LEVEL_FORBIDDEN if c in z.id]
                if bad:
                    raise ValueError(
                        f"cameras[{i}].zones[{j}].id: {z.id!r} contains {''.join(bad)!r}, which cannot be in an "
                        "MQTT topic level (the zone's state topic); rename the zone or turn "
                        "integrations.state_topics off"
                    )
        return self
