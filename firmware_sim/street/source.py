"""``StreetSource``: the synthetic street as an ``edge.ports.FrameSource``.

A camera whose ``source`` is ``sim://street`` (optionally ``sim://street?seed=3&duration=120&speed=4``;
``scenario=queue`` plays the queue-at-a-light timeline instead of the demo's)
is opened by ``open_street_source(cam)``. Frames come at the camera's ``detect_fps`` in video time:
``t`` starts at 0 and advances by ``1/detect_fps``; ``ts`` is a fixed weekday morning (so zone schedules
are in force) plus ``t``. With ``playback: realtime`` (or ``speed`` > 0) frames are paced to the wall
clock, ``speed`` times faster; otherwise they come as fast as the CPU allows. At the end of the
scenario ``read()`` returns ``SourceStatus(ENDED)`` once, then None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

from edge.config.site import CameraConfig
from edge.errors import CaptureError
from edge.types import Frame, SourceState, SourceStatus
from firmware_sim.street.render import StreetRenderer
from firmware_sim.street.scenario import SCENARIOS, Scenario

# Monday 23 November 2026, 08:00 in Asia/Shanghai: a school-day morning.
DEFAULT_START_TS = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
DEFAULT_SIZE = (640, 400)


@dataclass(frozen=True, slots=True)
class StreetOptions:
    """What a ``sim://street?...`` URL can set."""

    seed: int = 0
    duration_s: float | None = None  # cut the scenario short
    speed: float = 0.0  # 0 = as fast as the CPU allows; N = N x real time
    start_ts: float = DEFAULT_START_TS
    scenario: str = "default"  # which timeline: default (the demo) or queue (a queue at a light)

    @classmethod
    def from_url(cls, url: str) -> StreetOptions:
        u = urlparse(url)
        if u.scheme != "sim" or (u.hostname or u.path.strip("/")) != "street":
            raise CaptureError(
                f"{url!r} is not a synthetic street source; write sim://street[?seed=N&duration=S&speed=X]"
            )
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        unknown = set(q) - {"seed", "duration", "speed", "start_ts", "scenario"}
        if unknown:
            raise CaptureError(
                f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}; use seed, duration, speed, start_ts, scenario"
            )
        scenario = q.get("scenario", "default")
        if scenario not in SCENARIOS:
            raise CaptureError(f"{url!r}: unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
        try:
            return cls(
                seed=int(q.get("seed", 0)),
                duration_s=float(q["duration"]) if "duration" in q else None,
                speed=float(q.get("speed", 0.0)),
                start_ts=float(q.get("start_ts", DEFAULT_START_TS)),
                scenario=scenario,
            )
        except ValueError as exc:
            raise CaptureError(
                f"{url!r}: bad option value ({exc}); seed is an integer, duration/speed are seconds/factor"
            ) from None


class StreetSource:
    """Renders the scenario frame by frame. Implements ``edge.ports.FrameSource``."""

    def __init__(
        self,
        camera_id: str,
        *,
        fps: float = 5.0,
        size: tuple[int, int] = DEFAULT_SIZE,
        scenario: Scenario | None = None,
        options: StreetOptions | None = None,
        realtime: bool = False,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.camera_id = camera_id
        self.options = options or StreetOptions()
        self.scenario = scenario or SCENARIOS[self.options.scenario]()
        self.fps = fps
        self.renderer = StreetRenderer(size[0], size[1], seed=self.options.seed)
        dur = self.scenario.duration_s
        if self.options.duration_s is not None:
            dur = min(dur, self.options.duration_s)
        self.duration_s = dur
        self.speed = self.options.speed if self.options.speed > 0 else (1.0 if realtime else 0.0)
        self._seq = 0
        self._ended = False
        self._closed = False
        self._wall0: float | None = None

    @property
    def t(self) -> float:
        """Video time of the next frame."""
        return self._seq / self.fps

    def read(self, timeout_s: float = 1.0) -> Frame | SourceStatus | None:
        if self._closed:
            return None
        t = self.t
        if t > self.duration_s:
            if self._ended:
                return None
            self._ended = True
            return SourceStatus(
                self.camera_id, SourceState.ENDED, t, self.options.start_ts + t, "scenario finished"
            )
        if self.speed > 0:
            now = time.monotonic()
            if self._wall0 is None:
                self._wall0 = now
            due = self._wall0 + t / self.speed
            if due - now > timeout_s:
                time.sleep(max(timeout_s, 0.0))
                return None
            if due > now:
                time.sleep(due - now)
        image = self.renderer.render(self.scenario, t)
        frame = Frame(image=image, seq=self._seq, t=t, ts=self.options.start_ts + t, camera_id=self.camera_id)
        self._seq += 1
        return frame

    def close(self) -> None:
        self._closed = True


def open_street_source(cam: CameraConfig, scenario: Scenario | None = None) -> StreetSource:
    """The capture hook: ``edge.capture.open_source`` calls this for ``sim://street...`` sources."""
    if not isinstance(cam.source, str):
        raise CaptureError(f"cameras[{cam.id}].source: expected sim://street, got {cam.source!r}")
    opts = StreetOptions.from_url(cam.source)
    size = tuple(cam.resolution) if cam.resolution else DEFAULT_SIZE
    return StreetSource(
        cam.id,
        fps=cam.detect_fps,
        size=(int(size[0]), int(size[1])),
        scenario=scenario,
        options=opts,
        realtime=cam.playback == "realtime",
    )
