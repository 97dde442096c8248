"""systemd supervision: ``sd_notify`` over ``$NOTIFY_SOCKET`` (stdlib socket, no libsystemd)
and a watchdog pinger that pings only while the pipeline makes progress.

With ``Type=notify`` and ``WatchdogSec=`` in the unit, systemd waits for ``READY=1`` and
then restarts the service when ``WATCHDOG=1`` stops arriving within WatchdogSec. The
pinger sends it every ``interval_s`` (half of WatchdogSec by default) *only if* a frame
was processed within ``stall_s``: a wedged pipeline (stuck capture, hung inference)
stops the pings and gets restarted, while a healthy but idle thread never fakes health.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from edge.config.health import WatchdogConfig

log = logging.getLogger(__name__)


class SdNotifier:
    """Sends sd_notify datagrams; a silent no-op when not run under systemd (no NOTIFY_SOCKET)."""

    def __init__(self, socket_path: str | None = None, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET", "")
        self.path = path
        self._address: str | bytes | None = None
        if path:
            # "@name" is Linux's abstract namespace: a leading NUL byte instead of '@'
            self._address = "\0" + path[1:] if path.startswith("@") else path
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send one state string (e.g. ``READY=1``); True when it was handed to systemd."""
        if self._address is None:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message.encode(), self._address)
            except OSError as exc:
                log.warning(
                    "sd_notify to %s failed: %s (is the agent running under systemd?)", self.path, exc
                )
                return False
            self.sent += 1
            return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec (from WATCHDOG_USEC), or None when no watchdog is set for us."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6


class WatchdogPinger:
    """Pings ``WATCHDOG=1`` only while ``progress()`` was reported within ``stall_s``.

    ``tick()`` does one check-and-ping (tests drive it with a fake clock); ``start()``
    runs it every ``interval_s`` on a daemon thread until ``stop()``.
    """

    def __init__(
        self,
        notifier: SdNotifier,
        *,
        interval_s: float,
        stall_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or stall_s <= 0:
            raise ValueError(f"interval_s and stall_s must be > 0, got {interval_s} and {stall_s}")
        self.notifier = notifier
        self.interval_s = interval_s
        self.stall_s = stall_s
        self._clock = clock
        self._last_progress: float | None = None
        self._stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    def progress(self) -> None:
        """The pipeline processed a frame (call once per processed frame; cheap)."""
        self._last_progress = self._clock()

    @property
    def stalled(self) -> bool:
        return self._stalled

    def tick(self) -> bool:
        """Ping if the pipeline progressed recently; True when a ping was sent."""
        now = self._clock()
        healthy = self._last_progress is not None and now - self._last_progress <= self.stall_s
        if not healthy:
            if not self._stalled and self._last_progress is not None:
                log.error(
                    "pipeline stalled: no frame processed for %.1fs; withholding watchdog pings so systemd restarts us",
                    now - self._last_progress,
                )
            self._stalled = self._last_progress is not None
            return False
        if self._stalled:
            log.warning("pipeline progressing again; watchdog pings resumed")
            self._stalled = False
        if self.notifier.watchdog():
            self.pings += 1
            return True
        return False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 1.0)
            self._thread = None


class Supervisor:
    """The agent's handle on systemd: READY once the pipeline runs, watchdog on progress,
    STOPPING on shutdown. Everything is a no-op outside systemd."""

    def __init__(
        self,
        cfg: WatchdogConfig,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.notifier = SdNotifier(env=env) if cfg.enabled else SdNotifier(socket_path="")
        interval = cfg.ping_interval_s or watchdog_interval_s(env)
        self.pinger: WatchdogPinger | None = None
        if cfg.enabled and self.notifier.enabled and interval is not None:
            self.pinger = WatchdogPinger(self.notifier, interval_s=interval, stall_s=cfg.stall_s, clock=clock)

    def ready(self, status: str = "pipeline running") -> None:
        """Call once the first frame has gone through the pipeline."""
        self.notifier.ready(status)
        if self.pinger is not None:
            self.pinger.progress()
            self.pinger.start()
        log.info("supervision ready notify=%s watchdog=%s", self.notifier.enabled, self.pinger is not None)

    def progress(self) -> None:
        if self.pinger is not None:
            self.pinger.progress()

    def status(self, text: str) -> None:
        self.notifier.status(text)

    def stopping(self, status: str = "draining") -> None:
        """Call first thing on SIGTERM: systemd then waits (TimeoutStopSec) instead of killing."""
        self.notifier.stopping(status)

    def close(self) -> None:
        if self.pinger is not None:
            self.pinger.stop()
        self.notifier.close()


SystemdNotifier = SdNotifier  # the name the runner imports
