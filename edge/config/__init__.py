"""Site configuration: pydantic models and the YAML loader."""

from edge.config.loader import SemanticCheck, config_hash, load_config, parse_config
from edge.config.site import CameraConfig, EvidenceConfig, GeoConfig, SiteConfig

__all__ = [
    "CameraConfig",
    "EvidenceConfig",
    "GeoConfig",
    "SemanticCheck",
    "SiteConfig",
    "config_hash",
    "load_config",
    "parse_config",
]
