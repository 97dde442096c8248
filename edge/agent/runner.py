"""The agent: builds every component from the site config, runs one pipeline thread per
camera, and keeps the box's own duties (events into the outbox, health, hardware, commands,
the systemd watchdog) on the main thread.

Threads:
* capture-<cam>: decodes frames into a one-slot buffer (``edge.capture``);
* detect-<cam>: ``CameraPipeline.perceive`` (detector, motion energy for gating);
* rules-<cam>: ``CameraPipeline.interpret`` (tamper checks, tracker, rules, features), then ``emit``,
  so the rules of frame N overlap the inference of frame N+1;
* the uplink's own sender/paho threads (``edge.uplink``);
* the main thread: ``_tick`` every 0.2 s (hardware, commands, health).

Nothing here publishes directly: events go into the durable outbox, the uplink drains it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import __version__
from edge.agent.pipeline import CameraPipeline, StepResult
from edge.config import SiteConfig, config_hash, load_config, parse_config
from edge.config.site import CameraConfig
from edge.errors import CommandError, ConfigError, EdgeError
from edge.events.schema import ClockQuality
from edge.ports import FrameSource
from edge.types import EventDraft, Frame, SourceState, SourceStatus

log = logging.getLogger(__name__)

TICK_S = 0.2
_DONE = object()  # end of a camera's hand-over queue
_SENSOR_KEYS = ("radar.presence", "radar.distance_m", "radar.moving_energy", "radar.static_energy", "pir.motion")
SHUTDOWN_FLUSH_S = 5.0  # SIGTERM: how long to keep sending before leaving the rest in the outbox


@dataclass
class CameraRuntime:
    """Everything that belongs to one running camera."""

    cam: CameraConfig
    source: FrameSource
    pipeline: CameraPipeline
    stats: Any
    tamper: Any
    model_ref: dict[str, str] | None
    state: SourceState = SourceState.STARTING
    thread: threading.Thread | None = None
    rules_thread: threading.Thread | None = None
    handoff: queue.Queue[Any] = field(default_factory=lambda: queue.Queue(maxsize=2))
    frames: int = 0
    dropped_seen: int = 0
    errors: int = 0
    last_step: StepResult | None = None  # for the snapshot command
    stop: threading.Event = field(default_factory=threading.Event)  # this camera only (config reload)
    clock: tuple[float, float] | None = None  # (t, ts) of the last processed frame: the camera's own time
    error: str = ""


def _model_ref(detector: Any) -> dict[str, str] | None:
    name = getattr(detector, "name", "")
    if not name:
        return None
    return {"name": str(name), "sha256": str(getattr(detector, "sha256", "") or "")}


class Agent:
    """The whole agent for one site config.

    ``on_event(event_dict)`` sees every event after it is durable in the outbox;
    ``on_step(StepResult)`` sees every processed frame (replay draws with it).
    ``source_factory`` replaces ``edge.capture.open_source`` (replay, tests).
    """

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        config_path: str | Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_step: Callable[[StepResult], None] | None = None,
        source_factory: Callable[[CameraConfig], FrameSource] | None = None,
        pin_factory: Any = None,
        hardware: Any = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = Path(config_path) if config_path else None
        self.on_event = on_event
        self.on_step = on_step
        self._source_factory = source_factory
        self._pin_factory = pin_factory
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._cameras_lock = threading.RLock()
        self.cameras: dict[str, CameraRuntime] = {}
        self.started = time.monotonic()
        self.exit_code = 0
        self.event_counts: dict[str, int] = {}
        self._last_health = 0.0
        self._last_health_payload: dict[str, Any] | None = None
        self._ready = False
        self._pir_boost = False
        self._hardware = hardware
        self._own_hardware = hardware is None
        from edge.health.report import CameraStatusMonitor

        self._camera_status = CameraStatusMonitor()
        self._build_uplink()

    # ------------------------------------------------------------------ construction
    def _build_uplink(self) -> None:
        from edge.events.builder import EventBuilder
        from edge.uplink.outbox import Outbox

        cfg = self.cfg
        up = cfg.uplink
        self.outbox = Outbox.from_config(up)
        if self._hardware is None and _has_hardware(cfg):
            from edge.hardware.manager import HardwareManager

            self._hardware = HardwareManager(cfg.hardware, timezone=cfg.timezone, pin_factory=self._pin_factory)
        geo_fixed = {"lat": cfg.geo.lat, "lon": cfg.geo.lon} if cfg.geo else None
        self.builder = EventBuilder(
            cfg.device_id,
            cfg.site_id,
            config_hash=config_hash(cfg),
            incidents=self.outbox,
            clock_quality=self._clock_quality,
            geo=lambda: self._geo(geo_fixed),
        )
        from edge.uplink.service import Uplink

        fallback = self._hardware.fallback_link() if self._hardware is not None else None
        self.uplink = Uplink(up, cfg.device_id, cfg.site_id, self.outbox, fallback=fallback)

    def _clock_quality(self) -> ClockQuality:
        if self._hardware is not None:
            q = str(self._hardware.clock_quality())
            return q if q in ("ntp", "gps") else "unsynced"  # type: ignore[return-value]
        from edge.health.system import clock_quality

        return clock_quality()  # type: ignore[return-value]

    def _geo(self, fixed: dict[str, float] | None) -> Any:
        if self._hardware is not None:
            fix = self._hardware.geo()
            if fix is not None:
                return fix
        return fixed

    def _open_source(self, cam: CameraConfig) -> FrameSource:
        if self._source_factory is not None:
            return self._source_factory(cam)
        from edge.capture import open_source

        return open_source(cam)

    def _build_camera(self, cam: CameraConfig, cfg: SiteConfig) -> CameraRuntime:
        """All of one camera's components. Raises EdgeError naming what is wrong (model, config)."""
        from edge.agent.evidence import build_evidence_sink
        from edge.health.stats import CameraStats
        from edge.health.tamper import TamperMonitor
        from edge.rules import CameraAnalytics
        from edge.tracking import ByteTracker
        from edge.vision.gating import MotionGate
        from edge.vision.motion import MotionEnergy

        if cam.model == "motion":
            from edge.vision.motion import MotionDetector

            detector: Any = MotionDetector(cam)
        else:
            from edge.vision.detector import build_detector

            detector = build_detector(cam)
        tracker = ByteTracker(cfg.rules.tracker)
        analytics = CameraAnalytics(cam, cfg.rules, cfg.timezone, evidence=build_evidence_sink(cfg.evidence))
        analytics.bind_tracker(tracker)  # hands over the homography once the frame size is known
        tamper_cfg = cam.tamper
        if _is_still(cam) and "frozen" not in tamper_cfg.disabled_faults:
            # A held still never changes: "frozen" would be the only thing it ever reports.
            tamper_cfg = tamper_cfg.model_copy(update={"disabled_faults": [*tamper_cfg.disabled_faults, "frozen"]})
        tamper = TamperMonitor(cam.id, tamper_cfg) if tamper_cfg.enabled else None
        gate = MotionGate(cfg.health.gating) if cfg.health.gating.enabled else None
        motion = MotionEnergy(cam)
        pipeline = CameraPipeline(
            cam.id,
            detector,
            tracker,
            analytics,
            motion=motion,
            gate=gate,
            checks=[tamper] if tamper else [],
            check_interval_s=tamper_cfg.check_interval_s,
        )
        source = self._open_source(cam)
        return CameraRuntime(
            cam=cam,
            source=source,
            pipeline=pipeline,
            stats=CameraStats(cam.id, cfg.health.stats_window_s),
            tamper=tamper,
            model_ref=_model_ref(detector),
        )

    # ------------------------------------------------------------------ events
    def emit(self, transitions: list[EventDraft], model_ref: dict[str, str] | None = None) -> None:
        """Build events, make them durable in the outbox, then tell observers. Never raises."""
        if not transitions:
            return
        offset = self._time_offset()
        with self._emit_lock:
            for tr in transitions:
                if offset:
                    # No RTC and no network: the GPS says how wrong the system clock is.
                    tr = dataclasses.replace(
                        tr, ts=tr.ts + offset, started_ts=None if tr.started_ts is None else tr.started_ts + offset
                    )
                if tr.kind == "features" and self._hardware is not None:
                    tr = self._with_sensors(tr)
                try:
                    event = self.builder.build(tr, model=model_ref if tr.camera_id else None)
                    stored = self.outbox.put(event)
                except EdgeError as exc:
                    # A payload that breaks its schema is a bug in the emitter; log it loudly, keep going.
                    log.error("event dropped at build kind=%s key=%s: %s", tr.kind, tr.key, exc)
                    self.event_counts["rejected"] = self.event_counts.get("rejected", 0) + 1
                    continue
                self.event_counts[tr.kind] = self.event_counts.get(tr.kind, 0) + 1
                if self._hardware is not None:
                    try:
                        # The beacon lives in the box's time (max on-time, quiet hours), not in the
                        # camera's: a file replayed in video time would otherwise switch it off at once.
                        self._hardware.alarm(dataclasses.replace(tr, t=time.monotonic(), ts=time.time() + offset))
                    except Exception:
                        log.exception("beacon failed")
                if self.on_event is not None:
                    data = (stored if stored is not None else event).to_dict()  # None: held back by the shaper
                    self.on_event(data)

    def _time_offset(self) -> float:
        if self._hardware is None:
            return 0.0
        try:
            off = self._hardware.time_offset_s()
        except Exception:
            return 0.0
        return float(off) if off is not None and abs(off) > 1.0 else 0.0

    def _with_sensors(self, tr: EventDraft) -> EventDraft:
        """Add the box's own sensor readings to a camera's feature record, fused with tamper state:
        the radar seeing people while the camera is blinded means zero counts are not to be trusted."""
        hw = self._hardware
        try:
            values = {f.key: float(f.value) for f in hw.features(tr.t)}
            presence = hw.radar_presence()
        except Exception:
            log.exception("reading sensors for the feature record failed")
            return tr
        sensors: dict[str, Any] = {k: v for k, v in values.items() if k in _SENSOR_KEYS}
        cr = self.cameras.get(tr.camera_id or "")
        blinded = bool(cr is not None and cr.tamper is not None and cr.tamper.active)
        sensors["presence_while_blind"] = bool(presence) and blinded
        if not values and presence is None:
            return tr
        return dataclasses.replace(tr, payload={**tr.payload, "sensors": sensors})

    # ------------------------------------------------------------------ camera threads
    def _camera_loop(self, cr: CameraRuntime) -> None:
        """Capture side of a camera: read, check, detect; hands Perceptions to ``_interpret_loop``.

        Two threads per camera overlap inference of frame N+1 with tracking and rules of frame N.
        The hand-over queue is short, so a slow pipeline pushes back to the capture slot, which
        drops (and counts) frames instead of queueing them.
        """
        try:
            while not (self._stop.is_set() or cr.stop.is_set()):
                item = cr.source.read(timeout_s=0.5)
                if cr.state is SourceState.OFFLINE:
                    self._progress()  # waiting for a lost camera to come back is not a wedged pipeline
                if item is None:
                    continue
                if isinstance(item, SourceStatus):
                    cr.state = item.state
                    self._progress()
                    cr.handoff.put(item)
                    if item.state is SourceState.ENDED:
                        return
                    continue
                frame: Frame = item
                cr.stats.on_frame(frame.t)
                counters = getattr(cr.source, "counters", None)
                if counters is not None and counters.dropped > cr.dropped_seen:
                    cr.stats.record_dropped(frame.t, counters.dropped - cr.dropped_seen)
                    cr.dropped_seen = counters.dropped
                try:
                    perception = cr.pipeline.perceive(frame)
                except Exception as exc:  # one bad frame must not stop the camera
                    self._stage_error(cr, exc)
                    continue
                cr.handoff.put(perception)
        finally:
            cr.handoff.put(_DONE)

    def _interpret_loop(self, cr: CameraRuntime) -> None:
        """Rules side of a camera: tracker, zones, features, then events, in frame order."""
        while True:
            item = cr.handoff.get()
            if item is _DONE:
                return
            if isinstance(item, SourceStatus):
                if item.state is SourceState.ENDED:
                    log.info("camera ended camera=%s frames=%d", cr.cam.id, cr.frames)
                    self._flush_features(cr, item.t, item.ts)
                    continue
                tr = self._camera_status.update(item)
                if tr is not None:
                    self.emit([tr])
                continue
            try:
                result = cr.pipeline.interpret(item)
            except Exception as exc:  # a rule bug must not stop the camera: log it, go on
                self._stage_error(cr, exc)
                continue
            frame = result.frame
            cr.error = ""
            cr.frames += 1
            cr.clock = (frame.t, frame.ts)
            cr.last_step = result
            self._progress()
            cr.stats.on_processed(frame.t, result.timing_ms.get("detect", 0.0), result.inferred)
            self.emit(result.drafts, cr.model_ref)
            if self.on_step is not None:
                self.on_step(result)

    def _stage_error(self, cr: CameraRuntime, exc: Exception) -> None:
        """Log a stage failure once per change of message (with the traceback for bugs); the
        camera keeps running and the failures are counted for health."""
        cr.errors += 1
        if cr.error != str(exc):
            cr.error = str(exc)
            if isinstance(exc, EdgeError):
                log.error("pipeline error camera=%s: %s", cr.cam.id, exc)
            else:
                log.exception("pipeline bug camera=%s (frame skipped): %s", cr.cam.id, exc)

    def _progress(self) -> None:
        """The pipeline moved on: READY the first time, then keep the systemd watchdog fed."""
        if not self._ready:
            self._ready = True
            self.supervisor.ready()
        self.supervisor.progress()

    def _flush_features(self, cr: CameraRuntime, t: float, ts: float) -> None:
        """At the end of a file, report the last partial feature window too (in the camera's own
        time: a file in video time is far ahead of the wall clock)."""
        if cr.clock is not None:
            t, ts = cr.clock
        flush = getattr(cr.pipeline.analytics, "flush", None)
        if flush is not None:
            self.emit(list(flush(t, ts)), cr.model_ref)

    def _start_camera(self, cr: CameraRuntime) -> None:
        cr.thread = threading.Thread(target=self._camera_loop, args=(cr,), name=f"detect-{cr.cam.id}", daemon=True)
        cr.rules_thread = threading.Thread(
            target=self._interpret_loop, args=(cr,), name=f"rules-{cr.cam.id}", daemon=True
        )
        cr.thread.start()
        cr.rules_thread.start()

    @staticmethod
    def _join_camera(cr: CameraRuntime, timeout_s: float = 10.0) -> None:
        for th in (cr.thread, cr.rules_thread):
            if th is not None:
                th.join(timeout=timeout_s)

    @staticmethod
    def _camera_alive(cr: CameraRuntime) -> bool:
        return any(th is not None and th.is_alive() for th in (cr.thread, cr.rules_thread))

    # ------------------------------------------------------------------ lifecycle
    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Run until every source has ended, or ``stop()`` / SIGTERM. Returns the exit code."""
        from edge.health.supervisor import Supervisor

        self.supervisor = Supervisor(self.cfg.health.watchdog)
        log.info(
            "edge-agent %s starting device=%s site=%s cameras=%d config=%s",
            __version__, self.cfg.device_id, self.cfg.site_id, len(self.cfg.cameras), config_hash(self.cfg),
        )
        self.uplink.start()
        if self._hardware is not None and self._own_hardware:
            try:
                self._hardware.start()
            except EdgeError as exc:
                # The cameras are worth more than the LED: keep sensing, say loudly what is missing.
                log.error("hardware unavailable, running without GPIO/serial devices: %s", exc)
                self._hardware = None
        self.emit([self._status_draft("started")])
        metrics = self._start_metrics()
        try:
            for cam in self.cfg.cameras:
                cr = self._build_camera(cam, self.cfg)
                self.cameras[cam.id] = cr
                self._start_camera(cr)
        except EdgeError as exc:
            log.error("cannot start: %s", exc)
            self.exit_code = 2
            self._shutdown(metrics)
            return self.exit_code
        try:
            while not self._stop.is_set():
                self._tick()
                if not any(self._camera_alive(cr) for cr in self.cameras.values()):
                    log.info("all sources ended")
                    break
                self._stop.wait(TICK_S)
        finally:
            self._shutdown(metrics)
        return self.exit_code

    def _start_metrics(self) -> Any:
        mcfg = self.cfg.health.metrics
        if not mcfg.enabled:
            return None
        from edge.health.metrics import MetricsServer

        server = MetricsServer(mcfg, lambda: self._last_health_payload)
        server.start()
        return server

    def _shutdown(self, metrics: Any) -> None:
        """SIGTERM drain: stop capture, let each pipeline finish its frame, flush the outbox,
        publish ``stopped`` (the uplink does that last)."""
        self.supervisor.stopping()
        self._stop.set()
        for cr in self.cameras.values():
            cr.source.close()
        for cr in self.cameras.values():
            self._join_camera(cr)
        self.emit([self._status_draft("stopping")])
        self.uplink.stop(flush_timeout_s=SHUTDOWN_FLUSH_S)
        if self._hardware is not None and self._own_hardware:
            self._hardware.stop()
        if metrics is not None:
            metrics.stop()
        self.supervisor.close()
        self.outbox.close()
        log.info("stopped; events emitted: %s", dict(sorted(self.event_counts.items())))

    def _status_draft(self, state: str, reason: str = "") -> EventDraft:
        """An ``agent_status`` event: started, stopping, config_reloaded or config_rejected."""
        now_t, now_ts = time.monotonic(), time.time()
        payload: dict[str, Any] = {"state": state, "version": __version__}
        if reason:
            payload["reason"] = reason[:1024]
        try:
            payload["outbox_pending"] = int(self.outbox.stats()["pending"])  # type: ignore[call-overload]
        except Exception:  # a closed or broken outbox must not stop the status event
            pass
        return EventDraft(
            kind="agent_status",
            phase="instant",
            key=f"agent:{state}",
            t=now_t,
            ts=now_ts,
            severity="minor" if state == "config_rejected" else "info",
            severity_reason=f"agent {state}" + (f": {reason}" if reason else ""),
            payload=payload,
        )

    # ------------------------------------------------------------------ main-thread duties
    def _tick(self) -> None:
        now = time.monotonic()
        if self._hardware is not None:
            self._hardware_tick(now)
        for cmd in self.uplink.poll_commands():
            self._handle_command(cmd)
        if now - self._last_health >= self.cfg.health.health_interval_s:
            self._last_health = now
            self._publish_health()

    def _hardware_tick(self, now: float) -> None:
        hw = self._hardware
        ts = time.time()
        try:
            self.emit(hw.poll(now, ts))
            hw.heartbeat()
            tampered = any(cr.tamper is not None and cr.tamper.active for cr in self.cameras.values())
            offline = not self.uplink.connected and self.cfg.uplink.mqtt is not None
            degraded = any(cr.state is SourceState.OFFLINE for cr in self.cameras.values())
            hw.set_status("tamper" if tampered or hw.enclosure_open() else
                          "offline" if offline else "degraded" if degraded else "healthy")
            self._apply_pir(hw.motion_active())
            lumas = [
                cr.tamper.brightness
                for cr in self.cameras.values()
                if cr.tamper is not None and cr.tamper.brightness is not None
            ]
            if lumas:
                hw.set_scene_brightness(min(lumas))
        except Exception:
            log.exception("hardware tick failed")

    def _apply_pir(self, motion: bool) -> None:
        """PIR motion raises every camera's detect rate; it falls back when the street is quiet."""
        if motion == self._pir_boost:
            return
        self._pir_boost = motion
        pir = getattr(self.cfg.hardware, "pir", None)
        factor = pir.boost_factor if (pir is not None and motion) else 1.0
        for cr in self.cameras.values():
            setter = getattr(cr.source, "set_detect_fps", None)
            if setter is not None:
                setter(min(30.0, cr.cam.detect_fps * factor))
        log.info("PIR %s: detect rate x%.1f", "motion" if motion else "quiet", factor)

    def _publish_health(self) -> None:
        from edge.health.report import build_health_transition

        try:
            tr = build_health_transition(self)
        except Exception:
            log.exception("health sampling failed")
            return
        self._last_health_payload = dict(tr.payload)
        self.emit([tr])

    # ------------------------------------------------------------------ commands
    def _handle_command(self, cmd: Any) -> None:
        name, args = cmd.name, dict(cmd.args)
        try:
            result = self.execute_command(name, args)
        except (CommandError, ConfigError) as exc:
            if name == "reload_config":
                self.emit([self._status_draft("config_rejected", str(exc))])
            problems = getattr(exc, "problems", None) or []
            detail = "; ".join(p for p in problems if p != str(exc))
            self.uplink.reply(cmd, ok=False, error=f"{exc}: {detail}" if detail else str(exc))
            log.warning("command %s refused: %s", name, exc)
            return
        self.uplink.reply(cmd, ok=True, result=result)

    def execute_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name in ("ack_task", "resolve_task"):
            last: Exception | None = None
            for cr in self.cameras.values():
                # Tasks live in the camera's time (video time when replaying a file).
                t, ts = cr.clock if cr.clock is not None else (time.monotonic(), time.time())
                try:
                    reply, transitions = cr.pipeline.analytics.command(name, args, t, ts)
                except CommandError as exc:
                    last = exc
                    continue
                self.emit(transitions, cr.model_ref)
                return reply
            raise CommandError(str(last) if last else f"no camera knows task {args.get('task_id')!r}")
        if name == "reload_config":
            return self.reload_config(args)
        if name == "ping":
            return {"pong": True, "version": __version__, "uptime_s": round(time.monotonic() - self.started, 1)}
        if name == "snapshot":
            return self._snapshot(args)
        raise CommandError(f"unknown command {name!r}")

    def reload_config(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validate a new config and swap it in atomically; on any error the old one stays."""
        import yaml

        if "yaml" in args:
            try:
                data = yaml.safe_load(str(args["yaml"]))
            except yaml.YAMLError as exc:
                raise ConfigError(f"reload_config: YAML syntax error: {exc}") from None
            new = parse_config(data, source="reload_config")
        elif self.config_path is not None:
            new = load_config(self.config_path)
        else:
            raise CommandError("reload_config: this agent has no config file; send the config as 'yaml'")
        if (new.device_id, new.site_id) != (self.cfg.device_id, self.cfg.site_id):
            raise ConfigError("reload_config: device_id and site_id cannot change at run time; restart the agent")
        fresh: dict[str, CameraRuntime] = {}
        try:
            for cam in new.cameras:
                fresh[cam.id] = self._build_camera(cam, new)
        except EdgeError as exc:
            for cr in fresh.values():
                cr.source.close()
            raise ConfigError(f"reload_config: {exc}; the running config is unchanged") from None
        with self._cameras_lock:
            old = self.cameras
            for cr in old.values():
                cr.stop.set()
                cr.source.close()
            for cr in old.values():
                self._join_camera(cr)
            old_cfg = self.cfg
            self.cfg = new
            self.builder.set_config_hash(config_hash(new))
            self.cameras = fresh
            for cr in fresh.values():
                self._start_camera(cr)
        restart = [name for name in ("uplink", "hardware") if getattr(new, name) != getattr(old_cfg, name)]
        note = f"; {' and '.join(restart)} changes take effect at the next restart" if restart else ""
        log.info("config reloaded config=%s cameras=%d%s", config_hash(new), len(new.cameras), note)
        self.emit([self._status_draft("config_reloaded", f"config {config_hash(new)}{note}")])
        return {"config_hash": config_hash(new), "cameras": [c.id for c in new.cameras], "restart_required": restart}

    def _snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.cfg.evidence.enabled:
            raise CommandError("snapshot: evidence is disabled on this box (evidence.enabled: false)")
        cam_id = str(args.get("camera_id") or next(iter(self.cameras)))
        cr = self.cameras.get(cam_id)
        if cr is None:
            raise CommandError(f"snapshot: unknown camera {cam_id!r}; cameras: {', '.join(self.cameras)}")
        last = cr.last_step
        if last is None:
            raise CommandError(f"snapshot: camera {cam_id} has not delivered a frame yet")
        from edge.agent.evidence import save_snapshot
        from edge.classes import PERSON

        people = last.tracks.xyxy[last.tracks.class_id == PERSON]
        try:
            return save_snapshot(self.cfg.evidence, last.frame.image, people, camera_id=cam_id, ts=last.frame.ts)
        except EdgeError as exc:
            raise CommandError(str(exc)) from None


def _is_still(cam: CameraConfig) -> bool:
    if not isinstance(cam.source, str) or "://" in cam.source:
        return False
    from edge.capture.opencv import source_kind

    return source_kind(cam.source) == "image"


def _has_hardware(cfg: SiteConfig) -> bool:
    return not cfg.hardware.is_empty()
