"""Canonical object classes and groups shared by every model, rule and event.

A model's own labels are mapped onto these by its manifest's ``class_map``; anything
unmapped becomes ``OTHER`` (-1) and is ignored by the street rules.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CLASSES: tuple[str, ...] = ("person", "bicycle", "motorcycle", "car", "bus", "truck")
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
OTHER = -1

PERSON, BICYCLE, MOTORCYCLE, CAR, BUS, TRUCK = range(len(CLASSES))

GROUPS: dict[str, tuple[str, ...]] = {
    "vehicle": ("car", "bus", "truck"),
    "two_wheeler": ("bicycle", "motorcycle"),
    "parkable": ("car", "bus", "truck", "motorcycle"),
    "any": CLASSES,
}


def class_name(class_id: int) -> str:
    """Canonical name for an id, ``"other"`` for -1 or anything out of range."""
    return CLASSES[class_id] if 0 <= class_id < len(CLASSES) else "other"


def resolve(names: Iterable[str]) -> frozenset[int]:
    """Turn class and group names (``["vehicle", "motorcycle"]``) into canonical ids.

    Raises ``ValueError`` naming the unknown entry and the allowed ones.
    """
    out: set[int] = set()
    for name in names:
        if name in CLASS_ID:
            out.add(CLASS_ID[name])
        elif name in GROUPS:
            out.update(CLASS_ID[c] for c in GROUPS[name])
        else:
            allowed = ", ".join([*CLASSES, *GROUPS])
            raise ValueError(f"unknown class or group {name!r}; use one of: {allowed}")
    return frozenset(out)


def mask_of(class_ids: np.ndarray, allowed: frozenset[int]) -> np.ndarray:
    """Boolean mask of rows whose class is in ``allowed`` (vectorised)."""
    if not allowed:
        return np.zeros(class_ids.shape, dtype=bool)
    return np.isin(class_ids, np.fromiter(allowed, dtype=np.int32))
