"""Is the system clock trustworthy? NTP status from adjtimex(2), else ``timedatectl``; else unknown."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess

_TIME_ERROR = 5  # adjtimex() returns TIME_ERROR when the clock is not synchronised
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


def ntp_synced_adjtimex() -> bool | None:
    """True/False from the kernel's NTP state (read-only adjtimex call), None if unavailable."""
    path = ctypes.util.find_library("c")
    if not path:
        return None
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        tx = _Timex()
        rc = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if rc < 0:
        return None
    return rc != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


def ntp_synced_timedatectl(timeout_s: float = 2.0) -> bool | None:
    exe = shutil.which("timedatectl")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    v = out.stdout.strip().lower()
    return True if v == "yes" else False if v == "no" else None


def ntp_synced() -> bool | None:
    v = ntp_synced_adjtimex()
    return v if v is not None else ntp_synced_timedatectl()
