"""Site configuration: pydantic models and the YAML loader."""

from edge.config.loader import config_hash, load_config, parse_config, register_check
from edge.config.site import CameraConfig, EvidenceConfig, GeoConfig, SiteConfig

__all__ = [
    "CameraConfig",
    "EvidenceConfig",
    "GeoConfig",
    "SiteConfig",
    "config_hash",
    "load_config",
    "parse_config",
    "register_check",
]
