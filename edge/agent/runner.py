"""The agent's lifecycle: it wires the parts for one site config, runs two threads per camera and
shared inference workers, and keeps the box's own duties on the main thread until every source
has ended or SIGTERM.

The parts, each in its own module:
* ``edge.agent.camera``: one camera's components (``build_camera``) and shared state;
* ``edge.agent.pipeline``: one frame's step, pure (perceive: detect; interpret: track, rules, features);
* ``edge.agent.emitter``: drafts -> events -> the durable outbox (the ``EventSink``);
* ``edge.agent.commands``: upstream commands and their replies;
* ``edge.agent.duties``: the box's periodic duties (hardware, health records);
* ``edge.uplink``: drains the outbox to MQTT (or the modem, or a JSONL file).

Threads: ``capture-<cam>`` decodes frames (``edge.capture``); ``detect-<cam>`` runs
``CameraPipeline.prepare`` (motion gate, pre-processing into a pooled input buffer) and submits the
frame's inference to its model group's scheduler (``edge.agent.inference``), whose ``infer-<model>-<n>``
workers only run ``session.run``; ``rules-<cam>`` takes the frames in order, waits for each one's
inference, then runs ``complete`` (decoding, NMS) and ``interpret`` (tracker, rules) and submits the
drafts. So pre-processing of frame N+1 and decoding and rules of frame N-1 overlap the inference of
frame N, and the inference threads wait for nothing but the model. The uplink has its own threads;
the main thread ticks every 0.2 s (duties, commands) and the systemd watchdog is fed while frames
flow.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from edge import __version__
from edge.agent.camera import CameraRuntime, InFlight, SourceFactory, build_camera
from edge.agent.commands import AgentCommands
from edge.agent.duties import HardwareDuties, HealthDuties, IntegrationDuties, MetricsSource
from edge.agent.emitter import EventEmitter, agent_status_draft
from edge.agent.inference import InferenceHub, InferenceJob
from edge.agent.pipeline import StepResult
from edge.capture import open_source
from edge.config import GeoConfig, SemanticCheck, SiteConfig, config_hash, load_config
from edge.config.loader import parse_config_text
from edge.errors import CommandError, ConfigError, EdgeError
from edge.events.builder import EventBuilder
from edge.events.schema import ClockQuality
from edge.events.signing import KeyStore
from edge.hardware.manager import HardwareManager
from edge.health.metrics import AgentMetrics, MetricsServer
from edge.health.report import CameraStatusMonitor
from edge.health.supervisor import Supervisor
from edge.health.system import clock_quality
from edge.types import Frame, SourceState, SourceStatus
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink

log = logging.getLogger(__name__)

TICK_S = 0.2
SHUTDOWN_FLUSH_S = 5.0  # SIGTERM: how long to keep sending before leaving the rest in the outbox


class Agent:
    """The whole agent for one site config.

    ``on_event(event_dict)`` sees every event once it is durable in the outbox; ``on_step(StepResult)``
    sees every processed frame (replay draws with it); ``source_factory`` opens a camera's source
    (default ``edge.capture.open_source``); ``hardware`` replaces the ``HardwareManager`` the agent
    would build from the config (tests); ``pin_factory`` is the gpiozero factory it would use;
    ``config_checks`` are the semantic checks a config reload must pass (the CLI's run passes the
    model and box-file checks it started with).
    """

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        config_path: str | Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_step: Callable[[StepResult], None] | None = None,
        source_factory: SourceFactory = open_source,
        pin_factory: object | None = None,
        hardware: HardwareManager | None = None,
        config_checks: Sequence[SemanticCheck] = (),
    ) -> None:
        self.cfg = cfg
        self.config_path = Path(config_path) if config_path else None
        self.on_step = on_step
        self._open_source = source_factory
        self._config_checks = tuple(config_checks)  # what `run` checked at start, applied to reloads too
        self._stop = threading.Event()
        self._cameras_lock = threading.RLock()
        self.cameras: dict[str, CameraRuntime] = {}
        self.inference: InferenceHub | None = None  # the running cameras' shared inference
        self.started = time.monotonic()
        self.exit_code = 0
        self._stop_detail = ""  # why the agent stopped, when it was not asked to
        self._ready = False
        self._camera_status = CameraStatusMonitor()
        up = cfg.uplink
        signer = None
        if cfg.signing.enabled:
            store = KeyStore(cfg.signing.resolved_key_dir(up.outbox_path), cfg.device_id, cfg.site_id)
            signer = store.load_or_create(cfg.signing.key_file)
        self.outbox = Outbox.from_config(up, signer=signer)
        self._own_hardware = hardware is None
        if hardware is None and not cfg.hardware.is_empty():
            hardware = HardwareManager(cfg.hardware, timezone=cfg.timezone, pin_factory=pin_factory)
        self.hardware = hardware
        self.builder = EventBuilder(
            cfg.device_id,
            cfg.site_id,
            config_hash=config_hash(cfg),
            incidents=self.outbox,
            clock_quality=self._clock_quality,
            geo=self._geo,
        )
        self.uplink = Uplink(
            up, cfg.device_id, cfg.site_id, self.outbox, fallback=hardware.fallback_link() if hardware is not None else None
        )
        self.events = EventEmitter(
            self.builder, self.outbox, hardware=hardware, blinded=self._blinded, on_event=on_event
        )
        self.commands = AgentCommands(
            cameras=lambda: self.cameras,
            sink=self.events,
            reload=self.reload_config,
            evidence=lambda: self.cfg.evidence,
            outbox_pending=self.outbox.pending,
            started=self.started,
        )
        self.health = HealthDuties(
            cfg,
            lambda: self.cameras,
            self.outbox,
            self.uplink,
            self.events,
            hardware=lambda: self.hardware,
            clock_quality=self._clock_quality,
        )
        self.hardware_duties = (
            HardwareDuties(hardware, cfg, lambda: self.cameras, self.uplink, self.events)
            if hardware is not None
            else None
        )
        self.integrations = IntegrationDuties(cfg, lambda: self.cameras, self.uplink, hardware=lambda: self.hardware)
        self.metrics: AgentMetrics | None = None
        self.metrics_server: MetricsServer | None = None
        if cfg.health.metrics.enabled:
            self.metrics_source = MetricsSource(
                cfg,
                lambda: self.cameras,
                self.outbox,
                self.uplink,
                health=lambda: self.health.last_payload,
                events=lambda: self.events.counts,
                hardware=lambda: self.hardware,
            )
            self.metrics = AgentMetrics(self.metrics_source)
        self.supervisor = Supervisor(cfg.health.watchdog)

    # ------------------------------------------------------------------ what events carry
    def _clock_quality(self) -> ClockQuality:
        q = self.hardware.clock_quality() if self.hardware is not None else clock_quality()
        return q if q in ("ntp", "gps") else "unsynced"  # type: ignore[return-value]

    def _geo(self) -> GeoConfig | None:
        """The GPS fix when there is one, else the site's configured position."""
        fix = self.hardware.geo() if self.hardware is not None else None
        return fix if fix is not None else self.cfg.geo

    def _blinded(self, camera_id: str) -> bool:
        cr = self.cameras.get(camera_id)
        return cr is not None and cr.blinded

    # ------------------------------------------------------------------ camera threads
    def _detect_loop(self, cr: CameraRuntime) -> None:
        """Frame side of a camera: read, gate and pre-process, queue the inference; hands the frames
        in order to ``_rules_loop``.

        A frame is read only once the pipeline has a slot for it, so a slow pipeline pushes back to
        the capture slot, which drops (and counts) frames instead of queueing them.
        """
        try:
            while not (self._stop.is_set() or cr.stop.is_set()):
                if not cr.slots.acquire(timeout=0.5):
                    continue  # the rules thread still works on the frames ahead
                frame = self._next_frame(cr)
                if frame is None:
                    cr.slots.release()
                    if cr.state is SourceState.ENDED:
                        return
                    continue
                self._count_capture(cr, frame)
                try:
                    pending = cr.pipeline.prepare(frame)
                    job = None
                    if pending.needs_inference:
                        if cr.scheduler is not None:
                            job = InferenceJob(cr.cam.id, partial(cr.pipeline.infer, pending))
                        else:
                            cr.pipeline.infer(pending)
                except Exception as exc:  # one bad frame must not stop the camera
                    cr.slots.release()
                    self._stage_error(cr, exc)
                    continue
                cr.handoff.put(InFlight(pending, job))
                if job is not None and cr.scheduler is not None:
                    cr.scheduler.enqueue(job)  # after the hand-over: the rules thread never waits for a lost job
        finally:
            cr.handoff.put(None)

    def _next_frame(self, cr: CameraRuntime) -> Frame | None:
        """The camera's next frame; states go straight to the rules thread. None when nothing came
        within half a second, or the source ended or the camera is stopping."""
        while not (self._stop.is_set() or cr.stop.is_set()):
            item = cr.source.read(timeout_s=0.5)
            if cr.state is SourceState.OFFLINE:
                self._progress()  # waiting for a lost camera to come back is not a wedged pipeline
            if item is None:
                return None
            if isinstance(item, SourceStatus):
                cr.state = item.state
                self._progress()
                cr.handoff.put(item)
                if item.state is SourceState.ENDED:
                    return None
                continue
            return item
        return None

    @staticmethod
    def _count_capture(cr: CameraRuntime, frame: Frame) -> None:
        cr.stats.on_frame(frame.t)
        counters = getattr(cr.source, "counters", None)  # OpenCV sources count the frames they drop
        if counters is not None and counters.dropped > cr.dropped_seen:
            cr.stats.record_dropped(frame.t, counters.dropped - cr.dropped_seen)
            cr.dropped_seen = counters.dropped

    def _rules_loop(self, cr: CameraRuntime) -> None:
        """Rules side of a camera: tracker, zones, features, then events, in frame order."""
        while True:
            item = cr.handoff.get()
            if item is None:
                return
            if isinstance(item, SourceStatus):
                self._source_status(cr, item)
                continue
            cr.slots.release()
            job = item.job
            if job is not None:
                job.wait()
                if job.cancelled:
                    continue  # the agent is stopping: the frame was never inferred
            try:
                if job is not None and job.error is not None:
                    raise job.error
                result = cr.pipeline.interpret(cr.pipeline.complete(item.pending))
            except Exception as exc:  # a model or rule failure must not stop the camera: log it, go on
                self._stage_error(cr, exc)
                continue
            frame = result.frame
            cr.error = ""
            cr.frames += 1
            cr.clock = (frame.t, frame.ts)
            cr.last_step = result
            self._progress()
            cr.stats.on_processed(frame.t, result.timing_ms.get("detect", 0.0), result.inferred)
            if self.metrics is not None:
                self.metrics.observe_step(cr.cam.id, result.timing_ms, result.inferred)
            self.events.submit(result.drafts, cr.model)
            if self.on_step is not None:
                try:
                    self.on_step(result)
                except Exception as exc:  # an observer's bug (replay drawing, a test) must not stop the camera
                    self._stage_error(cr, exc)

    def _source_status(self, cr: CameraRuntime, status: SourceStatus) -> None:
        if status.state is SourceState.ENDED:
            log.info("camera ended camera=%s frames=%d", cr.cam.id, cr.frames)
            # The last, partial feature window, in the camera's own time (a file in video time is
            # far ahead of the wall clock).
            t, ts = cr.clock if cr.clock is not None else (status.t, status.ts)
            self.events.submit(cr.analytics.flush(t, ts), cr.model)
            return
        draft = self._camera_status.update(status)
        if draft is not None:
            self.events.submit([draft])

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

    def _start_camera(self, cr: CameraRuntime) -> None:
        cr.threads = [
            threading.Thread(target=self._detect_loop, args=(cr,), name=f"detect-{cr.cam.id}", daemon=True),
            threading.Thread(target=self._rules_loop, args=(cr,), name=f"rules-{cr.cam.id}", daemon=True),
        ]
        for th in cr.threads:
            th.start()

    # ------------------------------------------------------------------ lifecycle
    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Run until every source has ended, or ``stop()`` / SIGTERM. Returns the exit code."""
        log.info(
            "edge-agent %s starting device=%s site=%s cameras=%d config=%s",
            __version__, self.cfg.device_id, self.cfg.site_id, len(self.cfg.cameras), config_hash(self.cfg),
        )
        self.uplink.start()
        self._start_hardware()
        self.events.submit([agent_status_draft("started", outbox_pending=self.outbox.pending())])
        metrics = self._start_metrics()
        try:
            self.inference = InferenceHub(self.cfg.cameras)
            for cam in self.cfg.cameras:
                cr = build_camera(cam, self.cfg, self._open_source, self.inference)
                self.cameras[cam.id] = cr
                self._start_camera(cr)
        except EdgeError as exc:
            log.error("cannot start: %s", exc)
            self.exit_code = 2
            self._stop_detail = f"cannot start: {exc}"
            self._shutdown(metrics)
            return self.exit_code
        try:
            while not self._stop.is_set():
                self._tick()
                if not any(cr.alive for cr in self.cameras.values()):
                    log.info("all sources ended")
                    break
                self._stop.wait(TICK_S)
        finally:
            self._shutdown(metrics)
        return self.exit_code

    def _start_hardware(self) -> None:
        if self.hardware is None or not self._own_hardware:
            return
        try:
            self.hardware.start()
        except EdgeError as exc:
            # The cameras are worth more than the LED: keep sensing, say loudly what is missing.
            log.error("hardware unavailable, running without GPIO/serial devices: %s", exc)
            self.hardware = self.events.hardware = self.hardware_duties = None

    def _start_metrics(self) -> MetricsServer | None:
        if self.metrics is None:
            return None
        server = MetricsServer(self.cfg.health.metrics, self.metrics)
        server.start()
        self.metrics_server = server  # its port, when the config asked for any free one (port 0)
        return server

    def _shutdown(self, metrics: MetricsServer | None) -> None:
        """SIGTERM drain: stop capture, let each pipeline finish its frame, flush the outbox,
        publish ``stopped`` (the uplink does that last)."""
        self.supervisor.stopping()
        self._stop.set()
        for cr in self.cameras.values():
            cr.source.close()
        for cr in self.cameras.values():
            cr.join()
        if self.inference is not None:
            self.inference.stop()
        self.events.submit([agent_status_draft("stopping", outbox_pending=self.outbox.pending())])
        self.integrations.tick(time.monotonic(), final=True)  # the last states, retained beside "offline"
        self.uplink.stop(  # retained: status "offline", and why on .../status/reason
            flush_timeout_s=SHUTDOWN_FLUSH_S,
            reason="stopped" if self.exit_code == 0 else "error",
            detail=self._stop_detail,
        )
        if self.hardware is not None and self._own_hardware:
            self.hardware.stop()
        if metrics is not None:
            metrics.stop()
        self.supervisor.close()
        self.outbox.close()
        log.info("stopped; events emitted: %s", dict(sorted(self.events.counts.items())))

    # ------------------------------------------------------------------ main-thread duties
    def _tick(self) -> None:
        now = time.monotonic()
        if self.hardware_duties is not None:
            self.hardware_duties.tick(now)
        for cmd in self.uplink.poll_commands():
            self.commands.handle(cmd, self.uplink.reply)
        self.health.tick(now)
        self.integrations.tick(now)

    # ------------------------------------------------------------------ config reload
    def reload_config(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validate a new config and swap the cameras atomically; on any error the old ones stay."""
        if "yaml" in args:  # read with the loader's limits: no alias bomb, recursion or duplicate key gets built
            new = parse_config_text(str(args["yaml"]), source="reload_config", checks=self._config_checks)
        elif self.config_path is not None:
            new = load_config(self.config_path, checks=self._config_checks)
        else:
            raise CommandError("reload_config: this agent has no config file; send the config as 'yaml'")
        if (new.device_id, new.site_id) != (self.cfg.device_id, self.cfg.site_id):
            raise ConfigError("reload_config: device_id and site_id cannot change at run time; restart the agent")
        fresh: dict[str, CameraRuntime] = {}
        hub = InferenceHub(new.cameras)
        try:
            for cam in new.cameras:
                fresh[cam.id] = build_camera(cam, new, self._open_source, hub)
        except EdgeError as exc:
            for cr in fresh.values():
                cr.source.close()
            hub.stop()
            raise ConfigError(f"reload_config: {exc}; the running config is unchanged") from None
        with self._cameras_lock:
            for cr in self.cameras.values():
                cr.stop.set()
                cr.source.close()
            for cr in self.cameras.values():
                cr.join()
            if self.inference is not None:
                self.inference.stop()
            old_cfg, self.cfg = self.cfg, new
            self.health.cfg = self.integrations.cfg = new
            if self.metrics is not None:
                self.metrics_source.cfg = new
            self.builder.set_config_hash(config_hash(new))
            self.cameras = fresh
            self.inference = hub
            for cr in fresh.values():
                self._start_camera(cr)
        restart = [name for name in ("uplink", "hardware") if getattr(new, name) != getattr(old_cfg, name)]
        note = f"; {' and '.join(restart)} changes take effect at the next restart" if restart else ""
        log.info("config reloaded config=%s cameras=%d%s", config_hash(new), len(new.cameras), note)
        self.events.submit(
            [agent_status_draft("config_reloaded", f"config {config_hash(new)}{note}", self.outbox.pending())]
        )
        return {"config_hash": config_hash(new), "cameras": [c.id for c in new.cameras], "restart_required": restart}
