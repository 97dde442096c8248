"""Chinese digital urban management case categories (数字化城市管理 事件类) on the box's events.

City case platforms (数字城管 / 城市运行管理服务平台) file street problems by category. Two of them are
what this box sees: disorderly parking of motor vehicles (机动车乱停放) and of non-motor vehicles
(非机动车乱停放). The builder puts the category name into ``payload.case_category`` of the events
that are such a case, so a platform can file them without a mapping table of its own. Only the
class names are carried: the numeric codes differ between cities' code tables, so the platform
maps the name to its own code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MOTOR: Final = "机动车乱停放"  # disorderly parking of motor vehicles
NON_MOTOR: Final = "非机动车乱停放"  # disorderly parking of non-motor vehicles
CATEGORIES: Final = (MOTOR, NON_MOTOR)
NAMES_EN: Final = {MOTOR: "disorderly parking of motor vehicles", NON_MOTOR: "disorderly parking of non-motor vehicles"}

# Bicycles are non-motor vehicles; in the bike rules "motorcycle" stands for an e-bike, which is a
# non-motor vehicle (电动自行车) too. A vehicle left in a kerb zone is a motor vehicle unless it is a bicycle.
_NON_MOTOR_CLASSES: Final = frozenset({"bicycle"})
_BIKE_KINDS: Final = frozenset({"bike_outside_bay", "bike_bay_overflow"})


def case_category(kind: str, payload: Mapping[str, Any]) -> str | None:
    """The case category of an event of ``kind`` with ``payload``, or None when it is not such a case."""
    if kind == "parking_violation":
        return NON_MOTOR if payload.get("class") in _NON_MOTOR_CLASSES else MOTOR
    if kind in _BIKE_KINDS:
        return NON_MOTOR
    return None
