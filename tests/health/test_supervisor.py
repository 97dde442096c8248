"""sd_notify and the watchdog against an emulated systemd notify socket (a unix datagram socket)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.health import WatchdogConfig
from edge.health.supervisor import SdNotifier, Supervisor, WatchdogPinger, watchdog_interval_s


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_ready_watchdog_stopping_messages(notify_socket) -> None:
    path, sock = notify_socket
    n = SdNotifier(env={"NOTIFY_SOCKET": path})
    assert n.ready("pipeline running") and n.watchdog() and n.stopping("draining")
    assert drain(sock) == ["READY=1\nSTATUS=pipeline running", "WATCHDOG=1", "STOPPING=1\nSTATUS=draining"]


def test_no_notify_socket_is_a_silent_noop() -> None:
    n = SdNotifier(env={})
    assert not n.enabled and n.ready() is False and n.sent == 0


def test_abstract_socket_address() -> None:
    name = f"edge-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(2.0)
    try:
        assert SdNotifier(env={"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert srv.recv(100) == b"READY=1"
    finally:
        srv.close()


def test_pings_only_while_progress_is_reported(notify_socket) -> None:
    path, sock = notify_socket
    clock = FakeClock()
    pinger = WatchdogPinger(
        SdNotifier(env={"NOTIFY_SOCKET": path}), interval_s=5.0, stall_s=20.0, clock=clock
    )
    assert pinger.tick() is False  # nothing processed yet: no ping
    sent = []
    for _ in range(10):  # a healthy pipeline: a frame every 0.2 s, a tick every 5 s
        for _ in range(25):
            clock.t += 0.2
            pinger.progress()
        sent.append(pinger.tick())
    assert all(sent) and drain(sock) == ["WATCHDOG=1"] * 10
    # the pipeline wedges: no more progress; pings continue only until stall_s has passed
    results = []
    for _ in range(8):
        clock.t += 5.0
        results.append(pinger.tick())
    assert results == [True, True, True, True, False, False, False, False]
    assert pinger.stalled
    assert drain(sock) == ["WATCHDOG=1"] * 4
    # it recovers: pings resume
    pinger.progress()
    assert pinger.tick() is True and not pinger.stalled


def test_supervisor_thread_pings_then_stops_when_stalled(notify_socket) -> None:
    """The real pinger thread against the socket: READY, pings while progressing, silence once stalled."""
    path, sock = notify_socket
    clock = FakeClock()
    sup = Supervisor(
        WatchdogConfig(stall_s=10.0, ping_interval_s=0.02),
        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"},
        clock=clock,
    )
    assert sup.pinger is not None
    sup.ready()
    try:
        assert sock.recv(100).startswith(b"READY=1")
        assert sock.recv(100) == b"WATCHDOG=1"  # progressing (ready counts as progress)
        clock.t += 30.0  # no frame for 30 s: stalled
        drain(sock)  # a ping may have been in flight
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        sup.progress()
        sock.settimeout(2.0)
        assert sock.recv(100) == b"WATCHDOG=1"
        sup.stopping()
        msgs = []
        while True:
            msg = sock.recv(100).decode()
            if msg.startswith("STOPPING=1"):
                break
            msgs.append(msg)
        assert set(msgs) <= {"WATCHDOG=1"}
    finally:
        sup.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_env(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


def test_no_watchdog_without_watchdog_usec(notify_socket) -> None:
    path, _ = notify_socket
    sup = Supervisor(WatchdogConfig(), env={"NOTIFY_SOCKET": path})
    assert sup.pinger is None and sup.notifier.enabled
