"""Plug-ins found through package entry points, so the agent never imports what plugs into it.

Three groups, declared by the distribution that provides them (``pyproject.toml``):

* ``edge.sources``: a URL scheme -> ``factory(cam) -> FrameSource`` for camera sources OpenCV
  does not open (``sim`` -> the synthetic street of ``firmware_sim``), the way pyserial's URL
  handlers (``socket://``, ``loop://``) plug transports into ``serial_for_url``;
* ``edge.gpio_drivers``: a name -> ``driver(pin_factory, scenario)`` that moves mock GPIO pins
  (``scenario`` -> ``firmware_sim``'s timeline driver for ``hardware.mock_scenario``);
* ``edge.commands``: a name -> a module with ``register(subparsers)`` that adds ``edge-agent``
  sub-commands (``demo`` lives with the street it shows).

``edge`` knows the group names only; the import-linter contract in ``pyproject.toml`` forbids
``edge`` from importing ``firmware_sim``. A box that installs the package without the simulator
gets a clear error naming the missing plug-in instead of an ImportError.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from edge.errors import EdgeError

log = logging.getLogger(__name__)

SOURCES = "edge.sources"
GPIO_DRIVERS = "edge.gpio_drivers"
COMMANDS = "edge.commands"


@cache
def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The plug-in names installed in ``group``."""
    return sorted(_group(group))


def load(group: str, name: str) -> Any:
    """The object behind plug-in ``name`` of ``group``, or None when none is installed.

    Raises EdgeError naming the plug-in when it is installed but cannot be imported.
    """
    ep = _group(group).get(name)
    if ep is None:
        return None
    try:
        return ep.load()
    except Exception as exc:  # a broken plug-in is a clear error, not a traceback deep in capture
        raise EdgeError(f"plug-in {name!r} ({ep.value}) of {group} cannot be loaded: {exc}") from exc


def source_factory(scheme: str) -> Callable[[Any], Any] | None:
    """The frame-source factory registered for URL ``scheme`` (e.g. ``sim``), or None."""
    factory = load(SOURCES, scheme)
    return factory if callable(factory) else None


def gpio_driver(name: str) -> Callable[[Any, Any], Any] | None:
    """The mock-GPIO driver class registered as ``name`` (e.g. ``scenario``), or None."""
    driver = load(GPIO_DRIVERS, name)
    return driver if callable(driver) else None


def command_modules() -> list[Any]:
    """Modules that add ``edge-agent`` sub-commands; a broken one is logged and skipped."""
    mods = []
    for name in names(COMMANDS):
        try:
            mods.append(load(COMMANDS, name))
        except EdgeError as exc:
            log.warning("%s", exc)
    return mods
