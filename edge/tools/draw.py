"""Annotate frames for people: zones, counting lines, tracks with ids and states, counts.

cv2 only (no matplotlib on a Pi). Every function takes a BGR uint8 image and returns a
new annotated copy; the input is never modified. Zones arrive normalised (0..1) as in the
config and are scaled to the image here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from edge.classes import class_name
from edge.config.zones import LineConfig, ZoneConfig
from edge.types import Tracks
from edge.zones.geometry import compile_zones

Colour = tuple[int, int, int]

# BGR colours per zone kind; anything new falls back to grey.
ZONE_COLOURS: dict[str, Colour] = {
    "no_parking": (40, 40, 230),
    "bike_bay": (230, 160, 30),
    "bike_watch": (200, 120, 200),
    "crowd": (30, 200, 240),
    "count": (80, 200, 80),
}
_DEFAULT_ZONE: Colour = (170, 170, 170)
KIND_WORDS = {
    "no_parking": "no parking",
    "bike_bay": "bike bay",
    "bike_watch": "bike watch area",
    "crowd": "crowd",
    "count": "count",
}
# BGR colours per canonical class id (person, bicycle, motorcycle, car, bus, truck).
CLASS_COLOURS: tuple[Colour, ...] = (
    (60, 220, 60),
    (240, 170, 0),
    (200, 90, 240),
    (0, 140, 255),
    (0, 90, 255),
    (30, 60, 200),
)
_OTHER: Colour = (200, 200, 200)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {image.shape} dtype {image.dtype}")


def zone_colour(kind: str) -> Colour:
    return ZONE_COLOURS.get(kind, _DEFAULT_ZONE)


def class_colour(class_id: int) -> Colour:
    return CLASS_COLOURS[class_id] if 0 <= class_id < len(CLASS_COLOURS) else _OTHER


def to_pixels(points: Sequence[tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Normalised [x, y] points -> int32 (N, 2) pixel coordinates."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    scale = np.array([width - 1, height - 1], dtype=np.float64)
    return np.rint(arr * scale).astype(np.int32)


def put_label(
    image: np.ndarray,
    text: str,
    org: tuple[int, int],
    colour: Colour,
    *,
    scale: float = 0.45,
    text_colour: Colour = (255, 255, 255),
) -> int:
    """Text on a filled box (readable on any background), kept inside the image; ``org`` is the
    box's bottom-left. In place; returns the box's bottom row (where a label under it can start)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = image.shape[:2]
    x = int(min(max(org[0], 0), max(w - tw - 4, 0)))
    y = int(min(max(org[1], th + base + 2), h - 1))
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
    cv2.putText(image, text, (x + 2, y - base), _FONT, scale, text_colour, 1, cv2.LINE_AA)
    return y


def _state_fields(state: Any) -> dict[str, Any]:
    """A zone-state view (dataclass, mapping, pydantic model or plain value) as a flat dict."""
    if state is None:
        return {}
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dict(dataclasses.asdict(state))
    if isinstance(state, Mapping):
        return dict(state)
    dump = getattr(state, "model_dump", None)
    if callable(dump):
        out = dump()
        return dict(out) if isinstance(out, Mapping) else {}
    return {"state": state}


def format_state(state: Any, *, max_items: int = 4) -> str:
    """Short text for a state this module does not know (numbers rounded, internal ids left out)."""
    parts: list[str] = []
    for k, v in _state_fields(state).items():
        if k in _INTERNAL or v is None:
            continue
        if isinstance(v, bool):
            if v:
                parts.append(k)
        elif isinstance(v, int | np.integer):
            parts.append(f"{k}={int(v)}")
        elif isinstance(v, float | np.floating):
            parts.append(f"{k}={float(v):.2f}".rstrip("0").rstrip("."))
        elif isinstance(v, str):
            parts.append(f"{k}={v}" if k != "state" else v)
        elif isinstance(v, Mapping):
            inner = " ".join(f"{ik}={iv}" for ik, iv in v.items() if isinstance(iv, int | float | str))
            if inner:
                parts.append(inner)
        if len(parts) >= max_items:
            break
    return " ".join(parts)


# Fields of ``CameraAnalytics.zone_states()`` that are plumbing, never shown to a person.
_INTERNAL = frozenset(
    {"zone_id", "id", "kind", "camera_id", "polygon_px", "track_ids", "active", "los_table", "count_smoothed"}
)
LOS_WORDS = {
    "A": "free flow",
    "B": "minor conflicts",
    "C": "some restriction",
    "D": "restricted",
    "E": "very restricted",
    "F": "jammed",
}


def fmt_density(value: float) -> str:
    """Persons per m2 to two significant figures (0.0012, 0.083, 1.4), never a misleading 0.00."""
    v = float(value)
    if v <= 0:
        return "0"
    if v < 1e-4:
        return "<0.0001"
    return f"{v:.2g}" if v < 10 else f"{v:.0f}"


def _noun(kind: str, n: int) -> str:
    word = {"crowd": "person", "no_parking": "vehicle", "bike_bay": "bike", "bike_watch": "bike"}.get(
        kind, "object"
    )
    plural = {"person": "people"}.get(word, word + "s")
    return f"{n} {word if n == 1 else plural}"


def zone_summary(kind: str, state: Any) -> str:
    """What a zone holds now, in words: ``3 people · 0.25 /m2 · LOS B``, ``12/15 bikes (80%) · OVERFLOW``,
    ``2 vehicles · 1 violation``, ``4 objects``; ``(not in force)`` outside its schedule."""
    st = _state_fields(state)
    if not st:
        return ""
    count = int(st.get("count") or 0)
    parts = [_noun(kind, count)]
    if kind == "crowd":
        if st.get("density") is not None:
            parts.append(f"{fmt_density(float(st['density']))} /m2")
        if st.get("los"):
            parts.append(f"LOS {st['los']}")
    elif kind == "bike_bay":
        cap = st.get("capacity")
        n = int(st.get("count", count) or 0)
        if cap:
            parts = [f"{n}/{int(cap)} bikes ({100 * n / float(cap):.0f}%)"]
        if st.get("overflow"):
            parts.append("OVERFLOW")
    elif kind == "no_parking":
        v = st.get("violations") or []
        if v:
            parts.append(f"{len(v)} violation{'s' if len(v) != 1 else ''}")
    elif kind not in ("count", "bike_watch"):
        extra = format_state({k: x for k, x in st.items() if k != "count"}, max_items=2)
        if extra:
            parts.append(extra)
    if st.get("active") is False:
        parts.append("(not in force)")
    return " · ".join(parts)


def draw_zones(
    image: np.ndarray,
    zones: Sequence[ZoneConfig],
    *,
    states: Mapping[str, Any] | None = None,
    lines: Sequence[LineConfig] = (),
    masks: Sequence[Sequence[tuple[float, float]]] = (),
    alpha: float = 0.25,
) -> np.ndarray:
    """Zones as tinted polygons with an outline and a label (id, kind, live state)."""
    _check_image(image)
    out = image.copy()
    h, w = out.shape[:2]
    overlay = out.copy()
    polys: list[tuple[np.ndarray, Colour]] = []
    for zone in zones:
        pts = to_pixels(zone.polygon, w, h)
        colour = zone_colour(zone.kind)
        cv2.fillPoly(overlay, [pts], colour)
        polys.append((pts, colour))
    for mask in masks:
        cv2.fillPoly(overlay, [to_pixels(mask, w, h)], (0, 0, 0))
    if polys or masks:
        cv2.addWeighted(overlay, alpha, out, 1.0 - alpha, 0.0, dst=out)
    for (pts, colour), zone in zip(polys, zones, strict=True):
        cv2.polylines(out, [pts], True, colour, 2, cv2.LINE_AA)
        for lane in zone.lanes:  # a no-parking zone's traffic lanes: thin, in the zone's colour
            cv2.polylines(out, [to_pixels(lane, w, h)], True, colour, 1, cv2.LINE_AA)
        top = pts[np.argmin(pts[:, 1] * w + pts[:, 0])]
        title = f"{zone.id} ({KIND_WORDS.get(zone.kind, zone.kind)})"
        bottom = put_label(out, title, (int(top[0]), int(top[1]) - 2), colour)
        extra = zone_summary(zone.kind, states.get(zone.id)) if states else ""
        if extra:  # the live state goes just inside the zone, under its name (never over it)
            put_label(out, extra, (int(top[0]) + 3, max(int(top[1]) + 18, bottom + 18)), (40, 40, 40), scale=0.4)
    for line in lines:
        a, b = to_pixels([line.a, line.b], w, h)
        cv2.arrowedLine(
            out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (255, 255, 0), 2, cv2.LINE_AA, 0, 0.03
        )
        put_label(out, line.id, (int(a[0]), int(a[1]) - 4), (150, 150, 0))
    return out


def track_label(tracks: Tracks, i: int, note: str = "") -> str:
    """``#12 car · parked 34 s``, ``#4 person · standing 8 s``, ``#5 person · 1.2 m/s``: id, class,
    how long it has stood still (or its ground speed when calibrated), and an optional ``note``."""
    name = class_name(int(tracks.class_id[i]))
    text = f"#{int(tracks.track_id[i])} {name}"
    if bool(tracks.stationary[i]):
        still = "standing" if name == "person" else "parked"
        text += f" · {still} {float(tracks.stationary_s[i]):.0f} s"
    else:
        speed = float(tracks.speed_mps[i])
        if np.isfinite(speed):
            text += f" · {speed:.1f} m/s"
    return f"{text} · {note}" if note else text


def uncounted_notes(
    tracks: Tracks, zones: Sequence[ZoneConfig], states: Mapping[str, Any], width: int, height: int
) -> dict[int, str]:
    """Why a visible track standing over a zone is not in that zone's count, per track id.

    A zone counts an object by its ground point, the bottom-centre of its box. When the box is cut by
    the bottom of the picture (someone walking in from under the camera), that point is the frame's
    edge, not the feet, and lies below a zone that ends above the edge: ``feet out of view``.
    Otherwise a new arrival joins the count only after ``membership.enter_s``: ``not counted yet``.
    """
    if not len(tracks) or not zones:
        return {}
    counted: set[int] = set()
    for st in states.values():
        counted.update(int(x) for x in (_state_fields(st).get("track_ids") or []))
    compiled = compile_zones(list(zones), width, height)
    out: dict[int, str] = {}
    for i in range(len(tracks)):
        tid = int(tracks.track_id[i])
        if tid in counted:
            continue
        x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[i])
        # Points down the lower half of the box's centre line: is the object over a zone of its class?
        ys = np.linspace((y1 + y2) / 2.0, y2, 8)
        pts = np.stack([np.full(ys.size, (x1 + x2) / 2.0), ys], axis=1)
        cls = np.full(ys.size, int(tracks.class_id[i]), np.int32)
        if any(bool(z.contains(pts, cls).any()) for z in compiled):
            out[tid] = "feet out of view, not counted" if y2 >= height - 2 else "not counted yet"
    return out


def draw_tracks(
    image: np.ndarray,
    tracks: Tracks,
    *,
    highlight: Iterable[int] = (),
    notes: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Boxes coloured by class with id/state labels and the ground anchor; ``highlight`` track ids
    (e.g. those in an open violation) get a thick red frame."""
    _check_image(image)
    out = image.copy()
    hot = {int(x) for x in highlight}
    anchors = tracks.anchor if len(tracks) else np.zeros((0, 2))
    for i in range(len(tracks)):
        x1, y1, x2, y2 = (round(float(v)) for v in tracks.xyxy[i])
        colour = class_colour(int(tracks.class_id[i]))
        thick = 2
        if int(tracks.track_id[i]) in hot:
            cv2.rectangle(out, (x1 - 3, y1 - 3), (x2 + 3, y2 + 3), (0, 0, 255), 3)
        if bool(tracks.stationary[i]):
            thick = 3
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        ax, ay = anchors[i]
        cv2.circle(out, (int(ax), int(ay)), 3, colour, -1)
        note = (notes or {}).get(int(tracks.track_id[i]), "")
        put_label(out, track_label(tracks, i, note), (x1, y1 - 1), colour, scale=0.4, text_colour=(0, 0, 0))
    return out


def draw_hud(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """A semi-opaque panel with text lines at the bottom-left (time, counts, events)."""
    _check_image(image)
    out = image.copy()
    if not lines:
        return out
    scale = 0.45
    sizes = [cv2.getTextSize(s, _FONT, scale, 1)[0] for s in lines]
    width = max(s[0] for s in sizes) + 12
    line_h = max(s[1] for s in sizes) + 8
    height = line_h * len(lines) + 6
    h, w = out.shape[:2]
    x2, y1 = min(width, w), max(h - height, 0)
    roi = out[y1:h, 0:x2]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(out, text, (6, y1 + line_h * (k + 1)), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def annotate(
    image: np.ndarray,
    *,
    zones: Sequence[ZoneConfig],
    tracks: Tracks,
    lines: Sequence[LineConfig] = (),
    masks: Sequence[Sequence[tuple[float, float]]] = (),
    states: Mapping[str, Any] | None = None,
    hud: Sequence[str] = (),
    highlight: Iterable[int] = (),
) -> np.ndarray:
    """Everything on one frame: zones (with live state), lines, tracks, then the HUD."""
    out = draw_zones(image, zones, states=states, lines=lines, masks=masks)
    h, w = image.shape[:2]
    notes = uncounted_notes(tracks, zones, states, w, h) if states else {}
    out = draw_tracks(out, tracks, highlight=highlight, notes=notes)
    return draw_hud(out, hud)


def class_counts(tracks: Tracks) -> dict[str, int]:
    """Visible tracks per class name, e.g. ``{"car": 3, "person": 1}`` (sorted by name)."""
    if not len(tracks):
        return {}
    ids, counts = np.unique(tracks.class_id, return_counts=True)
    return {
        class_name(int(i)): int(c)
        for i, c in sorted(zip(ids, counts, strict=True), key=lambda p: class_name(int(p[0])))
    }
