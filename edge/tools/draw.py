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
) -> None:
    """Text on a filled box (readable on any background); ``org`` is the box's bottom-left. In place."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = image.shape[:2]
    x = int(min(max(org[0], 0), max(w - tw - 4, 0)))
    y = int(min(max(org[1], th + base + 2), h - 1))
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
    cv2.putText(image, text, (x + 2, y - base), _FONT, scale, text_colour, 1, cv2.LINE_AA)


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
    """Short text for a zone's live state: ``count=3 cap=15 overflow`` (numbers rounded)."""
    parts: list[str] = []
    for k, v in _state_fields(state).items():
        if k in ("zone_id", "id", "kind", "camera_id") or v is None:
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
        put_label(out, f"{zone.id} [{zone.kind}]", (int(top[0]), int(top[1]) - 2), colour)
        extra = format_state(states.get(zone.id), max_items=3) if states else ""
        if extra:  # the live state goes just inside the zone, under its name
            put_label(out, extra, (int(top[0]) + 3, int(top[1]) + 18), (40, 40, 40), scale=0.4)
    for line in lines:
        a, b = to_pixels([line.a, line.b], w, h)
        cv2.arrowedLine(
            out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (255, 255, 0), 2, cv2.LINE_AA, 0, 0.03
        )
        put_label(out, line.id, (int(a[0]), int(a[1]) - 4), (150, 150, 0))
    return out


def track_label(tracks: Tracks, i: int) -> str:
    """``#12 car P 34s``: id, class, parked (stationary) flag and how long it has been stationary."""
    text = f"#{int(tracks.track_id[i])} {class_name(int(tracks.class_id[i]))}"
    if bool(tracks.stationary[i]):
        text += f" P {float(tracks.stationary_s[i]):.0f}s"
    else:
        speed = float(tracks.speed_mps[i])
        if np.isfinite(speed):
            text += f" {speed:.1f}m/s"
    return text


def draw_tracks(image: np.ndarray, tracks: Tracks, *, highlight: Iterable[int] = ()) -> np.ndarray:
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
        put_label(out, track_label(tracks, i), (x1, y1 - 1), colour, scale=0.4, text_colour=(0, 0, 0))
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
    out = draw_tracks(out, tracks, highlight=highlight)
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
