"""OpenCV frame sources: V4L2 devices, RTSP/HTTP streams, video files and held still images.

This is the only module that uses ``cv2.VideoCapture``. A reader thread per source decodes
frames (cv2 releases the GIL, so decoding overlaps inference) and hands them over through:

* a one-slot latest-frame buffer for live sources and real-time playback: a frame the
  pipeline had no time for is overwritten and counted in ``dropped``, never queued;
* a small blocking queue for files in *video time*: nothing is dropped, the file plays as
  fast as the pipeline consumes it, and ``t``/``ts`` come from the file's own timestamps.

``detect_fps`` sub-samples (counted in ``skipped``). Losing the camera is not an error:
the source emits ``SourceStatus(OFFLINE)``, reconnects with jittered exponential backoff
(logging which camera and source it waits for and when it retries) and emits
``SourceStatus(ONLINE)`` once frames have kept flowing for ``online_stable_s``: a flapping
source (a half-corrupt file, a stream that drops every few seconds) is one offline episode, not
one per flap. The debounce lives here rather than in ``CameraStatusMonitor`` because only the
reader thread sees every frame (it can end the episode without a timer), and the health
record's ``online`` flag, which follows these states, then agrees with the events.

FFmpeg's and OpenCV's own messages are silenced once, here, before any capture is opened
(``OPENCV_FFMPEG_LOGLEVEL``, OpenCV's log level): the source reports the same problems as
states with a reason, once per change instead of once per retry. Set ``OPENCV_FFMPEG_LOGLEVEL``
(e.g. 24) in the environment to see them again while debugging.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Read by OpenCV's FFmpeg backend when it first opens something, so it must be set before any
# VideoCapture: -8 is AV_LOG_QUIET ("moov atom not found", "[mjpeg @ ...] error count" on every
# retry otherwise go straight to stderr). setdefault: an operator can still ask for them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # after the environment above
import numpy as np

from edge.config.site import CameraConfig
from edge.errors import CaptureError
from edge.ports import FrameSource
from edge.types import Frame, SourceState, SourceStatus

log = logging.getLogger(__name__)

# OpenCV's own warnings ("can't capture by name" ...) go straight to stderr; the source reports
# the same problems as offline states with a reason, so keep OpenCV to errors.
with contextlib.suppress(AttributeError):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

WAITING_LOG_EVERY_S = 600.0  # "still waiting for the camera" at INFO at most this often

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_QUEUE_DEPTH = 4


def display_source(source: str | int) -> str:
    """The source as it may appear in logs and events: a URL's password replaced by ***."""
    text = str(source)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if parts.password is None and parts.username is None:
        return text
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_decodable(source: str, open_timeout_s: float = 5.0) -> None:
    """Raise CaptureError (one line: what and what to do) unless one frame can be decoded from a
    video file, image or stream. For tools that must fail rather than wait (``replay``)."""
    shown = display_source(source)
    kind = source_kind(source)
    if kind == "image":
        if not os.path.exists(source):
            raise CaptureError(f"{shown}: no such file; give a video or image recorded at the pole")
        if cv2.imread(source, cv2.IMREAD_COLOR) is None:
            raise CaptureError(f"{shown}: cannot be decoded as an image; is it a complete JPEG/PNG file?")
        return
    if kind == "file" and not os.path.exists(source):
        raise CaptureError(f"{shown}: no such file; give a video or image recorded at the pole")
    if kind == "url":
        ms = int(open_timeout_s * 1000)
        cap = cv2.VideoCapture(
            source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        )
    else:
        cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    try:
        if not cap.isOpened():
            raise CaptureError(
                f"{shown}: cannot be opened as video (unsupported or damaged file, unreachable stream); "
                "check it plays with ffplay/vlc"
            )
        ok, image = cap.read()
        if not ok or image is None:
            raise CaptureError(
                f"{shown}: opens but no frame can be decoded (damaged file or unsupported codec); "
                "check it plays with ffplay/vlc"
            )
    finally:
        cap.release()


def source_kind(source: str | int) -> str:
    """'device', 'url', 'image' or 'file' for a configured source."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "device"
    if "://" in source:
        return "url"
    if source.startswith("/dev/"):
        return "device"
    if Path(source).suffix.lower() in IMAGE_EXT:
        return "image"
    return "file"


@dataclass
class CaptureCounters:
    """Counters the health record reads (plain ints; written by one thread)."""

    captured: int = 0  # frames decoded from the source
    delivered: int = 0  # frames handed to the pipeline
    skipped: int = 0  # frames left out on purpose by detect_fps sub-sampling
    dropped: int = 0  # frames overwritten in the latest-frame slot before the pipeline took them
    reconnects: int = 0
    flaps: int = 0  # failures while frames were flowing again but not yet for online_stable_s


class _Handoff:
    """Frames and states from the reader thread to the pipeline.

    States are never dropped. Frames go through a one-slot buffer (``latest=True``, drops
    counted) or a bounded blocking queue (video time).
    """

    def __init__(self, latest: bool, counters: CaptureCounters) -> None:
        self.latest = latest
        self.counters = counters
        self._cv = threading.Condition()
        self._frames: collections.deque[Frame] = collections.deque()
        self._states: collections.deque[SourceStatus] = collections.deque()
        self.closed = False

    def put_frame(self, frame: Frame, stop: threading.Event) -> None:
        with self._cv:
            if self.latest:
                if self._frames:
                    self._frames.clear()
                    self.counters.dropped += 1
            else:
                while len(self._frames) >= _QUEUE_DEPTH and not stop.is_set():
                    self._cv.wait(0.1)
            self._frames.append(frame)
            self._cv.notify_all()

    def put_state(self, status: SourceStatus) -> None:
        with self._cv:
            self._states.append(status)
            self._cv.notify_all()

    def get(self, timeout_s: float) -> Frame | SourceStatus | None:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                # A state that happened before the queued frames must not overtake them,
                # except OFFLINE/ONLINE which carry no frames; ENDED waits for the queue to empty.
                if self._states and (self._states[0].state is not SourceState.ENDED or not self._frames):
                    return self._states.popleft()
                if self._frames:
                    frame = self._frames.popleft()
                    self._cv.notify_all()
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    return None
                self._cv.wait(remaining)


class OpenCvSource:
    """A ``FrameSource`` over ``cv2.VideoCapture`` (or a still image held for ``hold_s``)."""

    def __init__(
        self,
        cam: CameraConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.camera_id = cam.id
        self.cam = cam
        self.kind = source_kind(cam.source)
        self.video_time = self.kind in ("file", "image") and cam.playback == "video_time"
        self.counters = CaptureCounters()
        self.state = SourceState.STARTING
        self._clock = clock
        self._wall = wallclock
        self._sleep = sleep
        self._stop = threading.Event()
        self._handoff = _Handoff(latest=not self.video_time, counters=self.counters)
        self._period = 1.0 / cam.detect_fps
        self._seq = 0
        self._t0 = clock()
        self._ts0 = wallclock()
        self.shown_source = display_source(cam.source)
        self._offline_reason = ""
        self._recovering_since: float | None = None  # source time frames resumed after OFFLINE
        self._online_reason = ""
        self._last_wait_log = -float("inf")
        self._waiting_logged = False  # the current offline episode's first "waiting" line is out
        self._episode_flaps = 0
        self._skip_to = 0  # file frame to resume at after a read failure (never the same frame twice)
        self._thread = threading.Thread(target=self._run, name=f"capture-{cam.id}", daemon=True)
        self._thread.start()

    def set_detect_fps(self, fps: float) -> None:
        """Change the sub-sampling rate at run time (the PIR raises it while there is motion)."""
        if fps > 0:
            self._period = 1.0 / fps

    # -- FrameSource -----------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> Frame | SourceStatus | None:
        return self._handoff.get(timeout_s)

    def close(self) -> None:
        self._stop.set()
        self._handoff.closed = True
        self._thread.join(timeout=5.0)

    # -- reader thread -----------------------------------------------------------------
    def _emit_state(self, state: SourceState, reason: str = "") -> None:
        if state is SourceState.OFFLINE:
            self._offline_reason = reason
            if self._recovering_since is not None:
                # frames had come back but not for long enough: the same episode goes on
                self._recovering_since = None
                self.counters.flaps += 1
                self._episode_flaps += 1
                log.log(
                    logging.INFO if self._episode_flaps == 1 else logging.DEBUG,
                    "camera=%s failed again before it was stable for %.1fs (%s); same offline episode, "
                    "later flaps are counted (flaps=%d)",
                    self.camera_id,
                    self.cam.online_stable_s,
                    reason,
                    self.counters.flaps,
                )
        if state is self.state:
            return
        self.state = state
        if state is SourceState.OFFLINE:
            log.warning("camera offline camera=%s source=%s reason=%s", self.camera_id, self.shown_source, reason)
        else:
            log.info("camera %s camera=%s %s", state.value, self.camera_id, reason)
            self._episode_flaps = 0
            self._waiting_logged = False
        self._handoff.put_state(SourceStatus(self.camera_id, state, self._clock(), self._wall(), reason))

    def _frames_flowing(self, source_t: float, reason: str) -> None:
        """A frame was decoded; ``source_t`` is seconds in the source's own time (video time for
        files, the monotonic clock for live sources). Ends an offline episode once frames have
        flowed for ``online_stable_s``."""
        if self.state is not SourceState.OFFLINE or self.cam.online_stable_s <= 0:
            if self.state is not SourceState.ONLINE:
                self._emit_state(SourceState.ONLINE, reason)
            return
        if self._recovering_since is None:
            self._recovering_since = source_t
            self._online_reason = reason
            log.log(
                logging.INFO if self._episode_flaps == 0 else logging.DEBUG,
                "camera=%s frames flowing again (%s); the offline episode ends after %.1fs without a failure",
                self.camera_id,
                reason,
                self.cam.online_stable_s,
            )
            return
        stable = source_t - self._recovering_since
        if stable >= self.cam.online_stable_s:
            self._recovering_since = None
            self._emit_state(SourceState.ONLINE, f"{self._online_reason}; stable for {stable:.1f}s{self._flaps_text()}")

    def _flaps_text(self) -> str:
        return f" after {self._episode_flaps} flap(s)" if self._episode_flaps else ""

    def _end_recovery(self) -> None:
        """The source ended while frames were flowing again: the camera was back."""
        if self._recovering_since is not None:
            self._recovering_since = None
            self._emit_state(SourceState.ONLINE, f"{self._online_reason}; until the end of the file{self._flaps_text()}")

    def _deliver(self, image: np.ndarray, pos_s: float | None) -> None:
        """Hand a frame over; ``pos_s`` is the file position in video time, None for live."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if pos_s is None:
            t, ts = self._clock(), self._wall()
        else:
            t, ts = self._t0 + pos_s, self._ts0 + pos_s
        self._seq += 1
        self.counters.delivered += 1
        frame = Frame(image=np.ascontiguousarray(image), seq=self._seq, t=t, ts=ts, camera_id=self.camera_id)
        self._handoff.put_frame(frame, self._stop)

    def _backoff(self, attempt: int) -> None:
        delay = min(self.cam.reconnect_max_s, self.cam.reconnect_min_s * (2 ** min(attempt, 16)))
        delay *= random.uniform(0.8, 1.2)
        self._log_waiting(attempt, delay)
        self._stop.wait(delay)

    def _log_waiting(self, attempt: int, delay: float) -> None:
        """Say plainly what the camera waits for: at INFO on the first retry of an offline episode
        and then every WAITING_LOG_EVERY_S; every other retry at DEBUG."""
        now = self._clock()
        info = not self._waiting_logged or now - self._last_wait_log >= WAITING_LOG_EVERY_S
        if info:
            self._waiting_logged = True
            self._last_wait_log = now
        log.log(
            logging.INFO if info else logging.DEBUG,
            "camera=%s waiting for source %s (%s); next retry in %.2fs (attempt %d)",
            self.camera_id,
            self.shown_source,
            self._offline_reason or "no frames",
            delay,
            attempt + 1,
        )

    def _run(self) -> None:
        attempt = 0
        pos_offset_s = 0.0  # video time already played (for loops and reconnects of files)
        while not self._stop.is_set():
            try:
                if self.kind == "image":
                    outcome = self._play_image()
                else:
                    outcome, pos_offset_s = self._play_capture(pos_offset_s)
            except Exception as exc:  # a broken decoder must not kill the agent
                log.exception("capture failed camera=%s", self.camera_id)
                outcome = f"capture error: {exc}"
            if outcome == "ended":
                self._end_recovery()
                self._emit_state(SourceState.ENDED, "end of file")
                return
            if outcome == "stopped":
                return
            if outcome == "ok":  # a looped file or image: play it again at once
                attempt = 0
                continue
            if outcome != "lost":
                self._emit_state(SourceState.OFFLINE, outcome)
            self.counters.reconnects += 1
            self._backoff(attempt)
            attempt += 1

    def _play_image(self) -> str:
        path = str(self.cam.source)
        if not os.path.exists(path):
            return f"image {path} not found; check cameras[].source"
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            return f"image {path} cannot be decoded; is it a JPEG/PNG?"
        self._frames_flowing(self._clock(), f"image {image.shape[1]}x{image.shape[0]}")
        n = max(1, round(self.cam.hold_s * self.cam.detect_fps))
        start = self._clock()
        for k in range(n):
            if self._stop.is_set():
                return "stopped"
            pos = k * self._period
            if not self.video_time:
                wait = start + pos - self._clock()
                if wait > 0:
                    self._stop.wait(wait)
            self.counters.captured += 1
            self._deliver(image, pos if self.video_time else None)
        if self.cam.loop:
            return "ok"
        return "ended"

    def _open(self) -> tuple[cv2.VideoCapture | None, str]:
        src = self.cam.source
        if self.kind == "device":
            target: str | int = int(src) if isinstance(src, int) or str(src).isdigit() else str(src)
            if isinstance(target, str) and not os.path.exists(target):
                return None, f"device {target} not present; check the cable / dtoverlay"
            cap = (
                cv2.VideoCapture(target, cv2.CAP_V4L2)
                if isinstance(target, int)
                else cv2.VideoCapture(target)
            )
            if self.cam.resolution:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cam.resolution[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cam.resolution[1])
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        elif self.kind == "url":
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            cap = cv2.VideoCapture(
                str(src),
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
            )
        else:
            if not os.path.exists(str(src)):
                return None, f"video file {src} not found; check cameras[].source"
            cap = cv2.VideoCapture(str(src))
        if not cap.isOpened():
            cap.release()
            return None, f"cannot open {self.shown_source!r} (no such camera, unreachable stream or unsupported codec)"
        return cap, ""

    def _play_capture(self, pos_offset_s: float) -> tuple[str, float]:
        """Read until the source ends or fails. Returns (outcome, video time played so far)."""
        cap, why = self._open()
        if cap is None:
            return why, pos_offset_s
        is_file = self.kind == "file"
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not (0.5 < fps < 500):
            fps = 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if is_file else 0
        resume_frame = 0
        seek_to = 0
        if is_file and (pos_offset_s > 0 or self._skip_to > 0) and not self.cam.loop:
            # Reconnecting to a file mid-way: continue where we were, past a frame that failed.
            resume_frame = round(pos_offset_s * fps)
            seek_to = max(resume_frame, self._skip_to)
            cap.set(cv2.CAP_PROP_POS_FRAMES, seek_to)
        base_s = pos_offset_s - resume_frame / fps if is_file and resume_frame else pos_offset_s
        next_due = (pos_offset_s + (self._period if resume_frame else 0.0)) if is_file else self._clock()
        index = seek_to
        flowing = ""
        realtime_start = self._clock() - (pos_offset_s - base_s)
        try:
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    break
                if not flowing:
                    h, w = image.shape[:2]
                    flowing = f"{w}x{h} @ {fps:.1f} fps"
                self.counters.captured += 1
                if is_file:
                    pos = base_s + index / fps
                    index += 1
                    self._frames_flowing(pos, flowing)
                    if pos + 1e-6 < next_due:
                        self.counters.skipped += 1
                        continue
                    next_due = max(next_due + self._period, pos)
                    if not self.video_time:
                        wait = realtime_start + (pos - base_s) - self._clock()
                        if wait > 0:
                            self._stop.wait(wait)
                    pos_offset_s = pos
                    self._deliver(image, pos if self.video_time else None)
                else:
                    now = self._clock()
                    self._frames_flowing(now, flowing)
                    if now + 1e-6 < next_due:
                        self.counters.skipped += 1
                        continue
                    next_due = max(next_due + self._period, now)
                    self._deliver(image, None)
        finally:
            cap.release()
        if self._stop.is_set():
            return "stopped", pos_offset_s
        if is_file:
            reached_end = total <= 0 or index >= total - 1
            if reached_end:
                self._skip_to = 0
                if self.cam.loop:
                    return "ok", pos_offset_s + self._period
                return "ended", pos_offset_s
            self._skip_to = index + 1  # the reopen starts past the frame that failed
            self._emit_state(SourceState.OFFLINE, f"read failed at frame {index} of {total}")
            return "lost", pos_offset_s
        self._emit_state(SourceState.OFFLINE, "stream stopped delivering frames")
        return "lost", pos_offset_s


def probe_camera(cam: CameraConfig, src: FrameSource, timeout_s: float = 10.0) -> tuple[int, int]:
    """Wait for one frame from the opened ``src`` of ``cam`` and return its (width, height); closes it.

    For ``doctor``; ``edge.capture.probe_camera`` opens the source.
    """
    deadline = time.monotonic() + timeout_s
    last_reason = "no frame within the timeout"
    try:
        while time.monotonic() < deadline:
            item = src.read(timeout_s=min(1.0, max(0.05, deadline - time.monotonic())))
            if isinstance(item, Frame):
                return item.width, item.height
            if isinstance(item, SourceStatus) and item.state in (SourceState.OFFLINE, SourceState.ENDED):
                last_reason = item.reason or item.state.value
                if item.state is SourceState.ENDED:
                    break
    finally:
        src.close()
    raise CaptureError(f"camera {cam.id} ({cam.source}): {last_reason}")


def video_frame_count(path: str) -> int:
    """Frames in a video file as its container states them; raises CaptureError when unknown."""
    from edge.errors import CaptureError

    if not os.path.isfile(path):
        raise CaptureError(f"video file {path} not found")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise CaptureError(f"cannot open {path} as a video (unsupported container or codec)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    if n <= 0:
        raise CaptureError(
            f"{path}: the video does not state its frame count; re-mux it (ffmpeg -i IN -c copy OUT.mp4) "
            "or extract frames into a folder"
        )
    return n


_SEEK_GAP = 300  # frames: closer wanted frames are reached by decoding forward, farther ones by seeking


def iter_video_frames(path: str, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, BGR image)`` for each wanted 0-based frame index of a video file, in order,
    one decoded frame in memory at a time.

    Close frames are reached by decoding forward (exact); a gap of more than 300 frames is
    seeked (the container's seek, exact for the usual H.264/MP4 files). Frames past the real end
    of the file are left out, so the caller can tell how many it got.
    """
    from edge.errors import CaptureError

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise CaptureError(f"cannot open {path} as a video (unsupported container or codec)")
    pos = 0
    try:
        for want in sorted(set(indices)):
            if want - pos > _SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, want)
                pos = want
            while pos < want and cap.grab():
                pos += 1
            if pos < want:
                break
            ok, image = cap.read()
            if not ok or image is None:
                break
            pos += 1
            yield want, image
    finally:
        cap.release()


def read_video_frames(path: str, indices: list[int]) -> list[tuple[int, np.ndarray]]:
    """``iter_video_frames`` as a list."""
    return list(iter_video_frames(path, indices))
