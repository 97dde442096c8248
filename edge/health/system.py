"""System health from /proc and /sys (no psutil: everything needed is a file read away,
and psutil is one more compiled wheel to ship to a Pi).

All paths hang off ``root`` so tests can point the sampler at a fake filesystem.
Pi throttling comes from the firmware's sysfs node when present, else from
``vcgencmd get_throttled``; elsewhere it is reported as unknown (None).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# bits of the firmware's get_throttled word
_THROTTLE_BITS = {
    0: "undervoltage",
    1: "freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "undervoltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
_THROTTLE_NODE = "sys/devices/platform/soc/soc:firmware/get_throttled"


def decode_throttled(word: int) -> dict[str, object]:
    """The Raspberry Pi firmware's get_throttled bit field as named flags."""
    out: dict[str, object] = {name: bool(word >> bit & 1) for bit, name in _THROTTLE_BITS.items()}
    out["raw"] = f"0x{word:x}"
    return out


def parse_vcgencmd_throttled(text: str) -> int:
    """``throttled=0x50005`` -> 0x50005 (ValueError on anything else)."""
    text = text.strip()
    if not text.startswith("throttled="):
        raise ValueError(f"unexpected vcgencmd output {text!r}; expected 'throttled=0x...'")
    return int(text.split("=", 1)[1], 16)


@dataclass(frozen=True, slots=True)
class _CpuTimes:
    busy: int
    total: int


class SystemSampler:
    """Samples CPU, load, temperature, throttling, memory, disk and uptime.

    Keep one per agent: CPU percent is measured between consecutive ``sample()`` calls
    (the first call reports the average since boot).
    """

    def __init__(
        self,
        *,
        root: str | Path = "/",
        disk_path: str = "/",
        thermal_root: str | None = None,
        use_vcgencmd: bool = True,
    ) -> None:
        self.root = Path(root)
        self.disk_path = disk_path
        self.thermal_root = Path(thermal_root) if thermal_root else self.root / "sys/class/thermal"
        self.use_vcgencmd = use_vcgencmd
        self._prev_cpu: _CpuTimes | None = None

    def _read(self, rel: str) -> str | None:
        try:
            return (self.root / rel).read_text()
        except OSError:
            return None

    def cpu_percent(self) -> float | None:
        text = self._read("proc/stat")
        if not text:
            return None
        fields = text.splitlines()[0].split()
        if not fields or fields[0] != "cpu":
            return None
        vals = [int(x) for x in fields[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        total = sum(vals[:8])  # guest time is already counted in user/nice
        cur = _CpuTimes(busy=total - idle, total=total)
        prev, self._prev_cpu = self._prev_cpu, cur
        base = prev if prev is not None and cur.total > prev.total else _CpuTimes(0, 0)
        dt = cur.total - base.total
        return round(100.0 * (cur.busy - base.busy) / dt, 1) if dt > 0 else None

    def load(self) -> list[float] | None:
        text = self._read("proc/loadavg")
        if not text:
            return None
        return [float(x) for x in text.split()[:3]]

    def temperatures(self) -> dict[str, float]:
        """Degrees Celsius per thermal zone, keyed by the zone's type (``cpu-thermal`` on a Pi)."""
        out: dict[str, float] = {}
        if not self.thermal_root.is_dir():
            return out
        for zone in sorted(self.thermal_root.glob("thermal_zone*")):
            try:
                milli = int((zone / "temp").read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                name = (zone / "type").read_text().strip() or zone.name
            except OSError:
                name = zone.name
            out[name if name not in out else zone.name] = round(milli / 1000.0, 1)
        return out

    def throttled(self) -> dict[str, object] | None:
        text = self._read(_THROTTLE_NODE)
        if text is not None:
            try:
                return decode_throttled(int(text.strip(), 16))
            except ValueError:
                log.debug("unreadable %s: %r", _THROTTLE_NODE, text)
        if self.use_vcgencmd and shutil.which("vcgencmd"):
            try:
                res = subprocess.run(
                    ["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2.0, check=False
                )
                return decode_throttled(parse_vcgencmd_throttled(res.stdout))
            except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
                log.debug("vcgencmd get_throttled failed: %s", exc)
        return None

    def memory(self) -> dict[str, int] | None:
        text = self._read("proc/meminfo")
        if not text:
            return None
        kv: dict[str, int] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                kv[parts[0].rstrip(":")] = int(parts[1]) * 1024
        if "MemTotal" not in kv:
            return None
        avail = kv.get("MemAvailable", kv.get("MemFree", 0))
        return {"total_bytes": kv["MemTotal"], "available_bytes": avail}

    def disk(self) -> dict[str, object] | None:
        try:
            st = os.statvfs(self.disk_path)
        except OSError:
            return None
        return {
            "path": self.disk_path,
            "total_bytes": st.f_blocks * st.f_frsize,
            "free_bytes": st.f_bavail * st.f_frsize,
        }

    def uptime_s(self) -> float | None:
        text = self._read("proc/uptime")
        return round(float(text.split()[0]), 1) if text else None

    def sample(self) -> dict[str, object]:
        """One system sample (missing values are None: a field technician sees what the box cannot tell)."""
        temps = self.temperatures()
        return {
            "cpu_percent": self.cpu_percent(),
            "load": self.load(),
            "temperature_c": max(temps.values()) if temps else None,
            "temperatures_c": temps,
            "throttled": self.throttled(),
            "memory": self.memory(),
            "disk": self.disk(),
            "uptime_s": self.uptime_s(),
        }


def sample_system(sampler: SystemSampler | None = None) -> dict[str, object]:
    """A system sample. Pass the agent's long-lived ``SystemSampler`` so CPU percent covers
    the interval since the last sample; without one it is the average since boot."""
    return (sampler or SystemSampler()).sample()


_TIME_ERROR = 5  # adjtimex(2) return value: the kernel clock is not synchronised


def clock_quality(root: str | Path = "/") -> str:
    """``"ntp"`` when the kernel says the clock is synchronised (adjtimex, as ``timedatectl``
    does), else ``"unsynced"``. GPS time is the hardware manager's business."""
    if Path(root, "run/systemd/timesync/synchronized").exists():
        return "ntp"
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(1024)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return "unsynced"
    return "unsynced" if state in (-1, _TIME_ERROR) else "ntp"


def existing_dir(path: str) -> str:
    """``path`` or its nearest existing parent (the disk to report before the outbox folder exists)."""
    p = path
    while p and not os.path.isdir(p):
        parent = os.path.dirname(p.rstrip("/"))
        if parent == p:
            break
        p = parent
    return p or "/"
