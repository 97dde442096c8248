"""System sampling from /proc and /sys: a fake filesystem for the exact values, the real one for sanity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.health.system import SystemSampler, decode_throttled, parse_vcgencmd_throttled, sample_system


def _fake_root(tmp_path: Path, throttled: str | None = "50005") -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "proc/loadavg").write_text("0.52 0.41 0.30 1/123 4567\n")
    (tmp_path / "proc/meminfo").write_text(
        "MemTotal:        3884884 kB\nMemFree:          100000 kB\nMemAvailable:    2000000 kB\n"
    )
    (tmp_path / "proc/uptime").write_text("12345.67 20000.00\n")
    for i, (typ, milli) in enumerate([("cpu-thermal", "61234"), ("gpu-thermal", "58000")]):
        z = tmp_path / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(typ + "\n")
        (z / "temp").write_text(milli + "\n")
    if throttled is not None:
        node = tmp_path / "sys/devices/platform/soc/soc:firmware"
        node.mkdir(parents=True)
        (node / "get_throttled").write_text(throttled + "\n")
    return tmp_path


def test_sample_from_fake_pi(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    s = SystemSampler(root=root, disk_path=str(tmp_path), use_vcgencmd=False)
    first = s.sample()
    assert first["cpu_percent"] == pytest.approx(20.0)  # since boot: 200 busy of 1000
    (root / "proc/stat").write_text("cpu  150 0 150 900 0 0 0 0 0 0\n")  # +100 busy, +100 idle
    second = s.sample()
    assert second["cpu_percent"] == pytest.approx(50.0)
    assert second["load"] == [0.52, 0.41, 0.30]
    assert second["temperature_c"] == 61.2
    assert second["temperatures_c"] == {"cpu-thermal": 61.2, "gpu-thermal": 58.0}
    thr = second["throttled"]
    assert thr["undervoltage"] is True and thr["throttled"] is True and thr["freq_capped"] is False
    assert (
        thr["undervoltage_occurred"] is True and thr["throttled_occurred"] is True and thr["raw"] == "0x50005"
    )
    assert second["memory"] == {"total_bytes": 3884884 * 1024, "available_bytes": 2000000 * 1024}
    assert second["uptime_s"] == 12345.7
    assert second["disk"]["free_bytes"] > 0


def test_non_pi_reports_unknowns_as_none(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, throttled=None)
    s = SystemSampler(root=root, thermal_root=str(tmp_path / "nothing"), use_vcgencmd=False)
    out = s.sample()
    assert out["throttled"] is None and out["temperature_c"] is None and out["temperatures_c"] == {}


@pytest.mark.parametrize(
    ("text", "word"), [("throttled=0x0\n", 0), ("throttled=0x50005", 0x50005), ("throttled=0x80008", 0x80008)]
)
def test_vcgencmd_parse(text: str, word: int) -> None:
    assert parse_vcgencmd_throttled(text) == word


def test_vcgencmd_garbage_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected 'throttled=0x"):
        parse_vcgencmd_throttled("error=1 error_msg=...")


def test_soft_temp_bits() -> None:
    d = decode_throttled(0x80008)
    assert (
        d["soft_temp_limit"] is True and d["soft_temp_limit_occurred"] is True and d["undervoltage"] is False
    )


def test_real_machine_sample_has_real_values() -> None:
    out = sample_system(SystemSampler(disk_path=os.getcwd()))
    assert out["memory"]["total_bytes"] > 64 * 2**20
    assert 0 < out["memory"]["available_bytes"] <= out["memory"]["total_bytes"]
    assert out["uptime_s"] > 0
    assert len(out["load"]) == 3
    assert 0.0 <= out["cpu_percent"] <= 100.0
    assert out["disk"]["total_bytes"] >= out["disk"]["free_bytes"] > 0
