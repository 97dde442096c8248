"""edge: a street-level sensing agent for Raspberry Pi-class boxes."""

__version__ = "0.1.0"
