"""Serve one device simulator over TCP (``socket://``) or a pseudo-terminal.

The simulator object implements ``reset()``, ``handle(data, now) -> list[Out]`` and
``tick(now) -> list[Out]``; this module only moves bytes and honours each output's due time.
One client at a time on TCP; a new client gets a freshly reset device (like a power cycle).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import socket
import threading
import time
import tty
from typing import Any, Protocol

from firmware_sim.base import DISCONNECT, Disconnect, Out

log = logging.getLogger(__name__)
TICK_S = 0.01


class DeviceSim(Protocol):
    def reset(self) -> None: ...

    def handle(self, data: bytes, now: float) -> list[Out]: ...

    def tick(self, now: float) -> list[Out]: ...


class SimServer:
    """Run ``sim`` in a background thread on a TCP port (0 = pick a free one) or a pty."""

    def __init__(
        self,
        sim: Any,
        *,
        port: int | None = 0,
        pty: bool = False,
        host: str = "127.0.0.1",
        speed: float = 1.0,
    ) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.use_pty = pty
        self.speed = speed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lsock: socket.socket | None = None
        self._master: int | None = None
        self.pty_path: str | None = None
        self._t0 = time.monotonic()
        self.clients = 0
        self._kick = threading.Event()

    @property
    def url(self) -> str:
        if self.use_pty:
            assert self.pty_path is not None
            return self.pty_path
        return f"socket://{self.host}:{self.port}"

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def start(self) -> SimServer:
        if self.use_pty:
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master = master
            self._slave = slave  # keep it open so the master never sees EOF/EIO before a client opens it
            self.pty_path = os.ttyname(slave)
        else:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((self.host, self.port or 0))
            ls.listen(1)
            ls.settimeout(0.1)
            self.port = ls.getsockname()[1]
            self._lsock = ls
        self._thread = threading.Thread(target=self._run, name="firmware-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
            self._thread = None
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        if self._master is not None:
            os.close(self._master)
            os.close(self._slave)
            self._master = None

    def drop_client(self) -> None:
        """Close the current connection now (an unplugged cable)."""
        self._kick.set()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        if self.use_pty:
            assert self._master is not None
            self._serve(self._master, is_socket=False)
            return
        assert self._lsock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except (TimeoutError, OSError):
                continue
            self.clients += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self._serve(conn.fileno(), is_socket=True)
            finally:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def _serve(self, fd: int, *, is_socket: bool) -> None:
        self.sim.reset()
        self._kick.clear()
        pending: list[tuple[float, int, bytes | Disconnect]] = []
        seq = itertools.count()

        def push(outs: list[Out]) -> None:
            for due, data in outs:
                heapq.heappush(pending, (due, next(seq), data))

        while not self._stop.is_set():
            if self._kick.is_set():
                return
            r, _, _ = select.select([fd], [], [], TICK_S)
            now = self.now()
            if r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    if is_socket:
                        return
                    time.sleep(TICK_S)  # pty with no reader yet
                    continue
                if not data:
                    if is_socket:
                        return  # client went away
                    continue
                push(self.sim.handle(data, now))
            push(self.sim.tick(now))
            while pending and pending[0][0] <= now:
                _, _, item = heapq.heappop(pending)
                if item is DISCONNECT or isinstance(item, Disconnect):
                    log.info("simulated disconnect")
                    if is_socket:
                        return
                    continue
                try:
                    _write_all(fd, item, drop_when_full=not is_socket)
                except OSError:
                    if is_socket:
                        return


def _write_all(fd: int, data: bytes, *, drop_when_full: bool = False) -> None:
    """Write everything; on a pty nobody reads, drop what does not fit (as a UART would)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            if drop_when_full:
                return
            select.select([], [fd], [], 0.1)
            continue
        view = view[n:]
