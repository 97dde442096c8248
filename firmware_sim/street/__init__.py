"""The synthetic street: a scripted, rendered street scene with ground truth, for the demo and tests.

``open_street_source(cam)`` is the capture hook for ``sim://street`` camera sources.
"""

from firmware_sim.street.render import StreetRenderer
from firmware_sim.street.scenario import (
    Actor,
    ExpectedEpisode,
    Scenario,
    ScriptedCommand,
    default_scenario,
    queue_scenario,
)
from firmware_sim.street.source import StreetOptions, StreetSource, open_street_source

__all__ = [
    "Actor",
    "ExpectedEpisode",
    "Scenario",
    "ScriptedCommand",
    "StreetOptions",
    "StreetRenderer",
    "StreetSource",
    "default_scenario",
    "open_street_source",
    "queue_scenario",
]
