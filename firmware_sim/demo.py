"""``edge-agent demo``: the whole agent on the synthetic street, with nothing to download.

It lives with the street it shows and reaches ``edge-agent`` through the ``edge.commands`` entry
point (``edge`` never imports the simulator). The street of ``firmware_sim/street`` (cars parking in a no-parking zone, a bike bay that
overflows and is cleared, bikes dumped outside it, a crowd that gathers and surges) is rendered
frame by frame and analysed by the model-free motion backend through the real agent
(``edge.agent.runner.Agent``: detector, tracker, rules, event builder, outbox, uplink). Events
are printed as they happen; the summary compares them with the street's ground truth.

``--broker HOST:PORT`` also publishes them to MQTT. ``--real`` runs the default ONNX model on a
real clip from the shared assets instead (no ground truth there: events and fps only).
The exit code is 0 when every expected episode was found and nothing spurious was, else 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from edge.agent.pipeline import StepResult
from edge.agent.runner import Agent
from edge.capture import open_source
from edge.config import CameraConfig, SiteConfig, parse_config
from edge.config.uplink import is_local_host
from edge.errors import CommandError, ConfigError
from edge.ports import FrameSource
from edge.tools.assets import assets_dir
from edge.types import Frame, SourceState, SourceStatus
from firmware_sim.street import ScriptedCommand, default_scenario, open_street_source
from firmware_sim.street.source import StreetOptions
from firmware_sim.street.truth import compare, event_time

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "street" / "demo-street.yaml"
REAL_CLIP = "media/intel_one-by-one-person-detection.mp4"
REAL_MODEL = "yolox_nano_416"
QUIET_KINDS = (
    "features",
    "device_health",
    "agent_status",
    "bike_bay_status",
    "crowd_density",
    "line_crossing",
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the agent on a synthetic street (no model or camera needed) and check it against ground truth",
        description=(
            "The whole agent on a synthetic street, with nothing to download: cars parking in a "
            "no-parking zone, a bike bay that overflows and is cleared, bikes dumped outside it, a crowd "
            "that gathers and surges. The street is rendered frame by frame and analysed by the "
            "model-free motion backend through the real agent; events print as they happen and the "
            "summary compares them with the street's ground truth. Exit code 0 when every expected "
            "episode was found and nothing spurious was, else 1."
        ),
    )
    p.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="site config to run (default: the street's own, firmware_sim/street/demo-street.yaml)"
    )
    p.add_argument("--broker", metavar="HOST:PORT", help="also publish the events to this MQTT broker")
    p.add_argument(
        "--real", action="store_true", help=f"use {REAL_MODEL} on a real clip from EDGE_ASSETS instead"
    )
    p.add_argument(
        "--out", default="demo-out", help="directory for the outbox, events.jsonl and summary.json"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="playback speed vs real time (default 0: as fast as possible)",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of video time")
    p.add_argument("--seed", type=int, default=0, help="seed of the street's sensor noise")
    p.add_argument(
        "--verbose", action="store_true", help="also print the periodic records (features, status, density)"
    )
    p.set_defaults(func=cmd_demo)


@dataclass
class DemoResult:
    """What a demo run produced (also written to ``summary.json``)."""

    exit_code: int
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    wall_s: float = 0.0
    rejected: int = 0  # drafts the event builder refused (a payload broke its schema)
    truth_ok: bool | None = None
    truth_lines: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def kinds(self) -> Counter[str]:
        return Counter(str(e.get("kind")) for e in self.events)


def _parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--broker {text!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; pass --config with a site config, or leave --config out to run the street"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a YAML mapping")
    return data


def _real_camera(clip: Path) -> dict[str, Any]:
    """One camera on the real indoor clip: the floor as a crowd zone, a line across the room."""
    return {
        "id": "clip",
        "source": str(clip),
        "detect_fps": 10,
        "model": REAL_MODEL,
        "zones": [
            {
                "id": "floor",
                "kind": "crowd",
                "area_m2": 12.0,
                "polygon": [[0, 0.55], [1, 0.55], [1, 1], [0, 1]],
            },
        ],
        "lines": [{"id": "middle", "a": [0.5, 0.5], "b": [0.5, 1.0]}],
    }


def build_demo_config(args: argparse.Namespace) -> SiteConfig:
    """The demo config with its outputs under ``--out`` and the options applied to the source."""
    data = _read_yaml(Path(args.config))
    out = Path(args.out).resolve()
    up = dict(data.get("uplink") or {})
    up["outbox_path"] = str(out / "outbox.sqlite")
    up["jsonl_path"] = str(out / "events.jsonl")
    if args.broker:
        host, port = _parse_broker(args.broker)
        mqtt: dict[str, Any] = {"host": host, "port": port}
        if not is_local_host(host):
            mqtt["allow_insecure"] = True  # a lab broker for the demo; production configs use TLS
        up["mqtt"] = mqtt
    data["uplink"] = up
    health = dict(data.get("health") or {})
    health["disk_path"] = str(out)
    data["health"] = health
    cams = list(data.get("cameras") or [])
    if args.real:
        clip = assets_dir() / REAL_CLIP
        if not clip.exists():
            raise ConfigError(
                f"--real needs the shared assets: {clip} not found. Set EDGE_ASSETS to the folder that holds "
                f"media/ and models/ (see its MANIFEST.md), or run the demo without --real"
            )
        models = str(assets_dir() / "models")
        cur = os.environ.get("EDGE_MODEL_PATH", "")
        if models not in cur.split(":"):
            os.environ["EDGE_MODEL_PATH"] = f"{cur}:{models}" if cur else models
        cams = [_real_camera(clip)]
    else:
        for cam in cams:
            src = str(cam.get("source", ""))
            if src.startswith("sim://"):
                base = src.split("?", 1)[0]
                opts = [f"seed={args.seed}"]
                if args.duration is not None:
                    opts.append(f"duration={args.duration:g}")
                if args.speed > 0:
                    opts.append(f"speed={args.speed:g}")
                cam["source"] = f"{base}?{'&'.join(opts)}"
    data["cameras"] = cams
    return parse_config(data, source=str(args.config))


def _video_t(event: dict[str, Any], start_ts: float) -> float | None:
    if not event.get("camera_id"):
        return None  # box-level records carry wall-clock time
    try:
        return event_time(event, start_ts)
    except (TypeError, ValueError):
        return None


def format_event(event: dict[str, Any], start_ts: float | None) -> str:
    """One readable line per event."""
    t = _video_t(event, start_ts) if start_ts is not None else None
    when = f"{t:7.1f}s" if t is not None else str(event.get("ts", ""))[11:19].rjust(8)
    payload = event.get("payload") or {}
    detail = event.get("severity_reason") or ""
    if not detail and isinstance(payload, dict):
        scalars = [
            (k, v) for k, v in payload.items() if isinstance(v, str | int | float) and not isinstance(v, bool)
        ]
        detail = " ".join(f"{k}={round(v, 2) if isinstance(v, float) else v}" for k, v in scalars[:5])
    state = str(payload.get("state", "")) if event.get("kind") == "dispatch_task" else ""
    if state and not str(detail).startswith(state):
        detail = f"{state}: {detail}"
    return (
        f"{when}  {event.get('kind', '?'):<18} {event.get('phase', ''):<7} {event.get('zone_id') or '-':<16} "
        f"{event.get('severity', ''):<8} {detail}"
    )


class _Limited:
    """Ends a frame source after ``duration_s`` of video time (``--duration`` for real clips)."""

    def __init__(self, source: FrameSource, duration_s: float) -> None:
        self.source = source
        self.camera_id = source.camera_id
        self.duration_s = duration_s
        self._t0: float | None = None
        self._ended = False

    def read(self, timeout_s: float = 1.0) -> Frame | SourceStatus | None:
        if self._ended:
            return None
        item = self.source.read(timeout_s)
        if isinstance(item, Frame):
            if self._t0 is None:
                self._t0 = item.t
            if item.t - self._t0 > self.duration_s:
                self._ended = True
                return SourceStatus(self.camera_id, SourceState.ENDED, item.t, item.ts, "--duration reached")
        return item

    def close(self) -> None:
        self.source.close()


class _Commander:
    """Sends the scenario's scripted commands at their video time, from the pipeline thread."""

    def __init__(self, agent: Agent, commands: list[ScriptedCommand], out: TextIO) -> None:
        self.agent = agent
        self.pending = sorted(commands, key=lambda c: c.t)
        self.out = out

    def on_step(self, result: StepResult) -> None:
        while self.pending and result.frame.t >= self.pending[0].t:
            cmd = self.pending.pop(0)
            self._send(cmd, result)

    def _send(self, cmd: ScriptedCommand, result: StepResult) -> None:
        analytics = result.analytics
        frame = result.frame
        tasks = [
            t for t in analytics.open_tasks() if t.get("bay_id") == cmd.zone_id and t.get("state") == "open"
        ]
        if not tasks:
            print(f"{frame.t:7.1f}s  (operator) no open task for {cmd.zone_id} to {cmd.name}", file=self.out)
            return
        task_id = str(tasks[0]["task_id"])
        try:
            reply, drafts = analytics.command(
                cmd.name, {"task_id": task_id, "by": "demo-operator"}, frame.t, frame.ts
            )
        except CommandError as exc:
            print(f"{frame.t:7.1f}s  (operator) {cmd.name} {task_id} refused: {exc}", file=self.out)
            return
        print(
            f"{frame.t:7.1f}s  (operator) {cmd.name} {task_id} -> {reply.get('state', reply)}", file=self.out
        )
        cr = self.agent.cameras.get(frame.camera_id)
        self.agent.events.submit(drafts, cr.model if cr is not None else None)


def run_demo(
    cfg: SiteConfig,
    *,
    out_dir: Path,
    stream: TextIO = sys.stdout,
    verbose: bool = False,
    duration_s: float | None = None,
    handle_signals: bool = False,
) -> DemoResult:
    """Run the agent on ``cfg`` (street or real clip), print events, compare with ground truth."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("outbox.sqlite", "events.jsonl", "summary.json"):
        (out_dir / name).unlink(missing_ok=True)
    street = [c for c in cfg.cameras if isinstance(c.source, str) and c.source.startswith("sim://street")]
    rules = cfg.rules
    scenario = default_scenario(
        grace_s=rules.parking.grace_s, overflow_s=rules.bike.overflow_s, dwell_s=rules.bike.dwell_s
    )
    start_ts = StreetOptions.from_url(str(street[0].source)).start_ts if street else None
    events: list[dict[str, Any]] = []
    quiet = QUIET_KINDS if street else QUIET_KINDS[:3]  # a real clip has fewer, sparser events: show them

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if verbose or event.get("kind") not in quiet:
            print(format_event(event, start_ts), file=stream, flush=True)

    def factory(cam: CameraConfig) -> FrameSource:
        if isinstance(cam.source, str) and cam.source.startswith("sim://street"):
            return open_street_source(cam, scenario)  # the demo's own scenario, for its commands
        source = open_source(cam)
        return _Limited(source, duration_s) if duration_s is not None else source

    agent = Agent(cfg, on_event=on_event, source_factory=factory)
    commander = _Commander(agent, list(scenario.commands) if street else [], stream)
    agent.on_step = commander.on_step
    if handle_signals:
        agent.install_signal_handlers()  # Ctrl-C stops the street and still prints the summary
    what = (
        "the synthetic street (motion backend)"
        if street
        else f"{cfg.cameras[0].source} ({cfg.cameras[0].model})"
    )
    print(f"edge-agent demo: {what}; outputs in {out_dir}", file=stream)
    print(f"{'t':>8}  {'kind':<18} {'phase':<7} {'zone':<16} {'severity':<8} detail", file=stream, flush=True)
    t0 = time.perf_counter()
    code = agent.run()
    wall = time.perf_counter() - t0
    frames = sum(cr.frames for cr in agent.cameras.values())
    rejected = agent.events.counts["rejected"]
    result = DemoResult(exit_code=code, events=events, frames=frames, wall_s=wall, rejected=rejected)
    if street and start_ts is not None:
        # Judge only a street that played to its end (not cut by --duration or Ctrl-C).
        whole = int(scenario.duration_s * street[0].detect_fps) + 1
        street_frames = agent.cameras[street[0].id].frames if street[0].id in agent.cameras else 0
        if street_frames >= whole:
            report = compare(events, scenario, start_ts)
            result.truth_ok = report.ok
            result.truth_lines = report.lines()
    _print_summary(result, stream)
    summary = {
        "exit_code": code,
        "frames": frames,
        "wall_s": round(wall, 2),
        "fps": round(result.fps, 1),
        "events": dict(sorted(result.kinds().items())),
        "rejected": rejected,
        "truth_ok": result.truth_ok,
        "truth": result.truth_lines,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if code == 0 and result.truth_ok is False:
        result.exit_code = 1
    return result


def _print_summary(result: DemoResult, stream: TextIO) -> None:
    print("", file=stream)
    print("summary", file=stream)
    print(f"  frames {result.frames} in {result.wall_s:.1f} s wall: {result.fps:.0f} fps", file=stream)
    print("  events by kind:", file=stream)
    for kind, n in sorted(result.kinds().items()):
        print(f"    {kind:<20} {n:>5}", file=stream)
    if result.rejected:
        print(
            f"    {'REJECTED':<20} {result.rejected:>5}  (built events that broke their schema: see the log)",
            file=stream,
        )
    if result.truth_ok is None:
        print(
            "  (no ground-truth verdict for this run: only a whole synthetic street is judged)", file=stream
        )
        return
    print("  ground truth:", file=stream)
    for line in result.truth_lines:
        print(f"    {line}", file=stream)
    found = sum(1 for line in result.truth_lines if " found at " in line)
    total = sum(1 for line in result.truth_lines if "SPURIOUS" not in line)
    spurious = sum(1 for line in result.truth_lines if "SPURIOUS" in line)
    verdict = "OK" if result.truth_ok else "MISMATCH"
    print(
        f"  {verdict}: {found}/{total} expected episodes found, {spurious} spurious", file=stream, flush=True
    )


def cmd_demo(args: argparse.Namespace) -> int:
    if str(getattr(args, "log_level", "INFO")).upper() == "INFO":
        # The demo's own lines are the show; the agent's INFO log would drown them (DEBUG shows it all).
        logging.getLogger().setLevel(logging.WARNING)
    cfg = build_demo_config(args)
    result = run_demo(
        cfg,
        out_dir=Path(args.out).resolve(),
        verbose=args.verbose,
        duration_s=args.duration,
        handle_signals=True,
    )
    return result.exit_code
