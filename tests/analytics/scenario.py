"""Scenario runner: a YAML timeline of scripted objects -> detections -> ByteTracker -> CameraAnalytics.

Time is fake: frames are generated at ``fps`` from ``start`` (local time in ``timezone``); nothing sleeps.

Scenario keys:
  name, timezone, start (local ISO time), duration_s, fps, size [w, h]
  rules: RulesConfig overrides (nested mapping)
  camera: CameraConfig fields other than id/source (zones, lines, calibration, masks)
  objects: list of {id, class, score, track: [[t, [x1,y1,x2,y2]], ...] (normalised, linear in between),
           hidden: [[t0, t1], ...], jitter: normalised amplitude, color: [b, g, r]}
  crowds: list of {class, count, area: [x1,y1,x2,y2], size: [w, h], from, arrive_s, until, leave_s}
  commands: list of {at, name, bay}: the live task of ``bay`` gets the command
  expect: ordered list of {kind, phase, zone, at: [t0, t1], severity, key (label), payload (subset),
          reason_contains}; they must appear in this order (other transitions may come between)
  exact_kinds: kinds whose transitions must be exactly the expected ones of that kind
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.classes import CLASS_ID
from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig
from edge.rules import CameraAnalytics
from edge.tracking import ByteTracker
from edge.types import Detections, EventDraft

HERE = Path(__file__).parent / "scenarios"


@dataclass
class _Obj:
    cls: int
    score: float
    keys_t: np.ndarray
    keys_box: np.ndarray
    hidden: list[tuple[float, float]]
    jitter: float
    color: tuple[int, int, int] | None
    rng: np.random.Generator

    def box_at(self, t: float) -> np.ndarray | None:
        if t < self.keys_t[0] or t > self.keys_t[-1]:
            return None
        if any(a <= t < b for a, b in self.hidden):
            return None
        box = np.array([np.interp(t, self.keys_t, self.keys_box[:, k]) for k in range(4)])
        if self.jitter:
            box = box + self.rng.uniform(-self.jitter, self.jitter, 4)
        return box


@dataclass
class Result:
    transitions: list[EventDraft]
    features: list[EventDraft]
    analytics: CameraAnalytics
    replies: list[dict[str, Any]] = field(default_factory=list)
    track_ids_seen: dict[str, set[int]] = field(default_factory=dict)


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((HERE / name).read_text())
    assert isinstance(data, dict)
    return data


def _objects(spec: dict[str, Any]) -> list[_Obj]:
    objs: list[_Obj] = []
    for i, o in enumerate(spec.get("objects", [])):
        keys = o["track"]
        objs.append(
            _Obj(
                cls=CLASS_ID[o["class"]],
                score=float(o.get("score", 0.9)),
                keys_t=np.array([k[0] for k in keys], float),
                keys_box=np.array([k[1] for k in keys], float),
                hidden=[tuple(h) for h in o.get("hidden", [])],
                jitter=float(o.get("jitter", 0.0)),
                color=tuple(o["color"]) if "color" in o else None,
                rng=np.random.default_rng(1000 + i),
            )
        )
    for c in spec.get("crowds", []):
        n = int(c["count"])
        x1, y1, x2, y2 = c["area"]
        w, h = c["size"]
        cols = int(np.ceil(np.sqrt(n * (x2 - x1) / max(y2 - y1, 1e-6))))
        rows = int(np.ceil(n / cols))
        for k in range(n):
            cx = x1 + (k % cols + 0.5) * (x2 - x1) / cols
            by = y1 + (k // cols + 1) * (y2 - y1) / rows
            box = [cx - w / 2, by - h, cx + w / 2, by]
            t0 = c["from"] + c.get("arrive_s", 0) * k / n
            t1 = c["until"] + c.get("leave_s", 0) * k / n
            objs.append(
                _Obj(
                    CLASS_ID[c.get("class", "person")],
                    0.9,
                    np.array([t0, t1]),
                    np.array([box, box], float),
                    [],
                    0.0,
                    None,
                    np.random.default_rng(k),
                )
            )
    return objs


def run(spec: dict[str, Any], *, evidence: Any = None) -> Result:
    tz = zoneinfo.ZoneInfo(spec.get("timezone", "Asia/Shanghai"))
    start = dt.datetime.fromisoformat(spec.get("start", "2026-11-23T10:00:00")).replace(tzinfo=tz)
    ts0 = start.timestamp()
    w, h = spec.get("size", [640, 360])
    rules = RulesConfig.model_validate(spec.get("rules", {}))
    cam = CameraConfig.model_validate({"id": "cam0", "source": "scenario.mp4", **spec.get("camera", {})})
    analytics = CameraAnalytics(cam, rules, spec.get("timezone", "Asia/Shanghai"), evidence=evidence)
    tracker = ByteTracker(rules.tracker)
    objs = _objects(spec)
    painted = any(o.color is not None for o in objs)
    fps = float(spec.get("fps", 2.0))
    n_frames = round(float(spec["duration_s"]) * fps) + 1
    commands = sorted(spec.get("commands", []), key=lambda c: c["at"])
    res = Result([], [], analytics)
    scale = np.array([w, h, w, h], float)
    for i in range(n_frames):
        t = i / fps
        ts = ts0 + t
        while commands and commands[0]["at"] <= t:
            c = commands.pop(0)
            task = analytics.bikes.dispatch.by_bay[c["bay"]]
            reply, trs = analytics.command(c["name"], {"task_id": task.task_id, "by": "crew-7"}, t, ts)
            res.replies.append(reply)
            res.transitions.extend(trs)
        boxes, cls, conf, colors = [], [], [], []
        for o in objs:
            b = o.box_at(t)
            if b is not None:
                boxes.append(b * scale)
                cls.append(o.cls)
                conf.append(o.score)
                colors.append(o.color)
        dets = Detections.from_arrays(np.array(boxes).reshape(-1, 4), conf, cls)
        image = None
        if painted:
            image = np.full((h, w, 3), 110, np.uint8)
            for b, col in zip(boxes, colors, strict=True):
                if col is not None:
                    x1, y1, x2, y2 = (int(v) for v in b)
                    image[max(y1, 0) : y2, max(x1, 0) : x2] = col
        tracks = tracker.update(dets, t)
        res.transitions.extend(analytics.update_at(t, ts, tracks, (w, h), image))
        rec = analytics.feature_record(t, ts)
        if rec is not None:
            res.features.append(rec)
    return res


def _match(tr: EventDraft, e: dict[str, Any], keys: dict[str, str]) -> str | None:
    """None when ``tr`` matches expectation ``e``, else why not."""
    if tr.kind != e["kind"]:
        return f"kind {tr.kind} != {e['kind']}"
    if "phase" in e and tr.phase != e["phase"]:
        return f"phase {tr.phase} != {e['phase']}"
    if "zone" in e and tr.zone_id != e["zone"]:
        return f"zone {tr.zone_id} != {e['zone']}"
    if "at" in e and not (e["at"][0] <= tr.t <= e["at"][1]):
        return f"t {tr.t} outside {e['at']}"
    if "severity" in e and tr.severity != e["severity"]:
        return f"severity {tr.severity} != {e['severity']} ({tr.severity_reason})"
    if "reason_contains" in e and e["reason_contains"] not in tr.severity_reason:
        return f"reason {tr.severity_reason!r} lacks {e['reason_contains']!r}"
    for k, v in e.get("payload", {}).items():
        if tr.payload.get(k) != v:
            return f"payload[{k}] {tr.payload.get(k)!r} != {v!r}"
    if "key" in e:
        label = e["key"]
        if label in keys and keys[label] != tr.key:
            return f"key {tr.key} differs from the key of {label}"
        if label not in keys and tr.key in keys.values():
            return f"key {tr.key} reused by a different episode"
    return None


def check(spec: dict[str, Any], res: Result) -> None:
    """Expected transitions in order; exact sequences for ``exact_kinds``."""
    expect: list[dict[str, Any]] = spec.get("expect", [])
    keys: dict[str, str] = {}
    pos = 0
    trs = res.transitions

    def show(tr: EventDraft) -> str:
        return f"t={tr.t:.1f} {tr.kind}/{tr.phase} zone={tr.zone_id} key={tr.key} sev={tr.severity} {dict(tr.payload)}"

    for e in expect:
        while pos < len(trs) and _match(trs[pos], e, keys) is not None:
            pos += 1
        if pos == len(trs):
            relevant = "\n".join(show(t) for t in trs if t.kind == e["kind"])
            raise AssertionError(f"expected {e} not found (in order); transitions of that kind:\n{relevant}")
        if "key" in e:
            keys.setdefault(e["key"], trs[pos].key)
        pos += 1
    for kind in spec.get("exact_kinds", []):
        got = [t for t in trs if t.kind == kind]
        want = [e for e in expect if e["kind"] == kind]
        assert len(got) == len(want), (
            f"{kind}: expected {len(want)} transitions, got {len(got)}:\n" + "\n".join(show(t) for t in got)
        )


_CACHE: dict[str, Result] = {}


def run_cached(name: str) -> tuple[dict[str, Any], Result]:
    """Run a scenario file once per test session (several test modules look at the same run)."""
    spec = load(name)
    if name not in _CACHE:
        _CACHE[name] = run(spec)
    return spec, _CACHE[name]
