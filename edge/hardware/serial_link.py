"""The only pyserial import: open a port by URL, read and write bytes, map errors to HardwareError.

``/dev/ttyAMA0`` on the box, ``socket://127.0.0.1:7001`` against ``firmware_sim``, ``loop://`` in tests.
"""

from __future__ import annotations

import logging
import threading

import serial

from edge.errors import HardwareError

log = logging.getLogger(__name__)


class SerialLink:
    """One serial port. ``read`` returns whatever arrived within ``timeout_s`` (maybe b'')."""

    def __init__(self, url: str, baudrate: int = 9600, timeout_s: float = 0.2) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._port: serial.SerialBase | None = None
        self._wlock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._port is not None and bool(self._port.is_open)

    def open(self) -> None:
        if self.is_open:
            return
        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=self.timeout_s, write_timeout=2.0
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            raise HardwareError(
                f"cannot open serial device {self.url}: {exc}; check the cable/port name and that no other "
                "program holds it"
            ) from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise HardwareError(f"serial device {self.url} is not open")
        return self._port

    def read(self, max_bytes: int = 4096) -> bytes:
        port = self._require()
        try:
            first = port.read(1)
            if not first:
                return b""
            # then whatever else is already there, without waiting (socket:// reports in_waiting as 0/1,
            # so a zero timeout is the portable way to drain it)
            port.timeout = 0
            try:
                rest = port.read(max_bytes - 1)
            finally:
                port.timeout = self.timeout_s
            return bytes(first) + bytes(rest)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # pyserial's socket:// raises SerialException on a closed peer; TypeError/AttributeError
            # appear when another thread closed the port under us.
            self.close()
            raise HardwareError(f"serial device {self.url} stopped: {exc}") from exc

    def write(self, data: bytes) -> None:
        port = self._require()
        with self._wlock:
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                self.close()
                raise HardwareError(f"cannot write to serial device {self.url}: {exc}") from exc

    def reset_input(self) -> None:
        port = self._require()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass
