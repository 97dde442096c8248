"""A TCP relay that counts the bytes each connection carries: what a box's cellular link would bill
at the socket level (MQTT framing, TLS records when the box uses TLS; not IP/TCP headers).

One ``CountingProxy`` per box (its own listening port) so the bytes are attributed without parsing
anything. One selector thread relays every connection of every proxy.
"""

from __future__ import annotations

import selectors
import socket
import threading
from dataclasses import dataclass


@dataclass
class WireCount:
    up_bytes: int = 0  # box -> broker
    down_bytes: int = 0  # broker -> box
    connections: int = 0

    @property
    def total(self) -> int:
        return self.up_bytes + self.down_bytes


class CountingProxies:
    """``add(name)`` opens a listening port for one box that relays to ``target``; ``counts[name]``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.sel = selectors.DefaultSelector()
        self.counts: dict[str, WireCount] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._listeners: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="wirecount", daemon=True)
        self._started = False

    def add(self, name: str) -> int:
        """A new listening port for box ``name`` on 127.0.0.1; returns the port."""
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        ls.setblocking(False)
        self.counts[name] = WireCount()
        with self._lock:
            self.sel.register(ls, selectors.EVENT_READ, ("listen", name, None))
        self._listeners.append(ls)
        if not self._started:
            self._started = True
            self._thread.start()
        return int(ls.getsockname()[1])

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                ready = self.sel.select(timeout=0.05)
            for key, _ in ready:
                role, name, peer = key.data
                if role == "listen":
                    self._accept(key.fileobj, name)  # type: ignore[arg-type]
                else:
                    self._relay(key.fileobj, peer, name, role)  # type: ignore[arg-type]

    def _accept(self, ls: socket.socket, name: str) -> None:
        try:
            client, _ = ls.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counts[name].connections += 1
        self.sel.register(client, selectors.EVENT_READ, ("up", name, upstream))
        self.sel.register(upstream, selectors.EVENT_READ, ("down", name, client))

    def _relay(self, src: socket.socket, dst: socket.socket, name: str, role: str) -> None:
        try:
            data = src.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            for s in (src, dst):
                try:
                    self.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
            return
        c = self.counts[name]
        if role == "up":
            c.up_bytes += len(data)
        else:
            c.down_bytes += len(data)
        try:
            dst.setblocking(True)
            dst.sendall(data)
            dst.setblocking(False)
        except OSError:
            pass

    def close(self) -> None:
        self._stop = True
        if self._started:
            self._thread.join(timeout=2)
        for key in list(self.sel.get_map().values()):
            try:
                key.fileobj.close()  # type: ignore[union-attr]
            except OSError:
                pass
        self.sel.close()
