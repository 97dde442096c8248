"""Commands from upstream, executed on the agent's main thread: dispatch and the replies.

``ack_task`` / ``resolve_task`` go to the camera that knows the task, in that camera's own time
(video time when a file is replayed); ``reload_config`` calls the runner's reload; ``snapshot``
writes a redacted JPEG when evidence is on; ``ping`` answers. Every command gets exactly one
reply; a refused reload also becomes an ``agent_status`` event (``config_rejected``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from edge import __version__
from edge.agent.camera import CameraRuntime
from edge.agent.emitter import agent_status_draft
from edge.agent.evidence import save_snapshot
from edge.classes import PERSON
from edge.config.site import EvidenceConfig
from edge.errors import CommandError, ConfigError, EdgeError
from edge.events.commands import Command
from edge.ports import EventSink
from edge.rules.redact import person_boxes

log = logging.getLogger(__name__)

Reply = Callable[..., None]  # Uplink.reply(cmd, ok=..., result=... | error=...)


class AgentCommands:
    """Executes validated commands against the running cameras."""

    def __init__(
        self,
        *,
        cameras: Callable[[], Mapping[str, CameraRuntime]],
        sink: EventSink,
        reload: Callable[[dict[str, Any]], dict[str, Any]],
        evidence: Callable[[], EvidenceConfig],
        outbox_pending: Callable[[], int | None] = lambda: None,
        started: float | None = None,
    ) -> None:
        self._cameras = cameras
        self._sink = sink
        self._reload = reload
        self._evidence = evidence
        self._outbox_pending = outbox_pending
        self._started = time.monotonic() if started is None else started

    def handle(self, cmd: Command, reply: Reply) -> None:
        """Execute ``cmd`` and send its one reply (an error reply for anything refused)."""
        try:
            result = self.execute(cmd.name, dict(cmd.args))
        except (CommandError, ConfigError) as exc:
            if cmd.name == "reload_config":
                self._sink.submit([agent_status_draft("config_rejected", str(exc), self._outbox_pending())])
            problems = getattr(exc, "problems", None) or []
            detail = "; ".join(p for p in problems if p != str(exc))
            reply(cmd, ok=False, error=f"{exc}: {detail}" if detail else str(exc))
            log.warning("command %s refused: %s", cmd.name, exc)
            return
        reply(cmd, ok=True, result=result)

    def execute(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The command's result; raises CommandError (or ConfigError for a reload) when refused."""
        if name in ("ack_task", "resolve_task"):
            return self._task(name, args)
        if name == "reload_config":
            return self._reload(args)
        if name == "ping":
            return {"pong": True, "version": __version__, "uptime_s": round(time.monotonic() - self._started, 1)}
        if name == "snapshot":
            return self._snapshot(args)
        raise CommandError(f"unknown command {name!r}")

    def _task(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        last: Exception | None = None
        for cr in self._cameras().values():
            # Tasks live in the camera's time (video time when replaying a file).
            t, ts = cr.clock if cr.clock is not None else (time.monotonic(), time.time())
            try:
                reply, drafts = cr.analytics.command(name, args, t, ts)
            except CommandError as exc:
                last = exc
                continue
            self._sink.submit(drafts, cr.model)
            return reply
        raise CommandError(str(last) if last else f"no camera knows task {args.get('task_id')!r}")

    def _snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        evidence = self._evidence()
        if not evidence.enabled:
            raise CommandError("snapshot: evidence is disabled on this box (evidence.enabled: false)")
        cameras = self._cameras()
        if not cameras:
            raise CommandError("snapshot: no camera is running")
        cam_id = str(args.get("camera_id") or next(iter(cameras)))
        cr = cameras.get(cam_id)
        if cr is None:
            raise CommandError(f"snapshot: unknown camera {cam_id!r}; cameras: {', '.join(cameras)}")
        last = cr.last_step
        if last is None:
            raise CommandError(f"snapshot: camera {cam_id} has not delivered a frame yet")
        people = person_boxes(last.tracks.xyxy[last.tracks.class_id == PERSON],
                              last.detections.xyxy[last.detections.class_id == PERSON])
        try:
            return save_snapshot(evidence, last.frame.image, people, camera_id=cam_id, ts=last.frame.ts)
        except EdgeError as exc:
            raise CommandError(str(exc)) from None
