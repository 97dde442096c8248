"""Progress on stderr for the field tools that take more than a few seconds (replay, bench).

On a terminal the bar is redrawn in place at most five times a second; in a log file (not a tty)
it writes one line per tenth of the way, so a journal or CI log is not flooded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO


class ProgressBar:
    """``[#####-----]  48%  67.0/139.4 s video  21.3 fps`` on stderr, redrawn at most 5 times a second."""

    def __init__(
        self,
        total_s: float | None,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        label: str = "",
        unit: str = "s video",
        rate: bool = True,
    ):
        self.label = f"{label} " if label else ""
        self.unit = unit  # what the seconds count (bench: planned seconds of a step)
        self.rate = rate  # show frames per second
        self.total_s = total_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()
        self._last_draw = -1.0
        self.frames = 0
        self.video_s = 0.0
        self._last_step = -1
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) and tty is None else bool(tty)

    def update(self, video_s: float, force: bool = False, frames: int | None = None) -> None:
        """One more frame at ``video_s`` (or, with ``frames``, the running total so far)."""
        self.frames = self.frames + 1 if frames is None else frames
        self.video_s = video_s
        now = self.clock()
        if not self.tty:  # a log file: one line per 10 % instead of carriage-return redraws
            step = int(10 * video_s / self.total_s) if self.total_s else int(video_s // 60)
            if step > self._last_step or force:
                self._last_step = step
                self.stream.write(self.render(now) + "\n")
                self.stream.flush()
            return
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        self.stream.write("\r" + self.render(now))
        self.stream.flush()

    def render(self, now: float) -> str:
        fps = self.frames / max(now - self.start, 1e-9)
        if self.total_s:
            frac = min(max(self.video_s / self.total_s, 0.0), 1.0)
            bar = "#" * int(frac * 30)
            text = f"{self.label}[{bar:<30}] {frac * 100:3.0f}%  {self.video_s:6.1f}/{self.total_s:.1f} {self.unit}"
        else:
            text = f"{self.label}{self.video_s:7.1f} {self.unit}  {self.frames} frames"
        return f"{text}  {fps:5.1f} fps" if self.rate else text

    def close(self) -> None:
        self.update(self.video_s, force=True, frames=self.frames)  # the forced redraw is not a frame
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def stage(text: str, stream: IO[str] | None = None) -> None:
    """One line announcing a step of a long command (``bench 2/4: ...``), flushed at once."""
    out = stream if stream is not None else sys.stderr
    out.write(text + "\n")
    out.flush()
