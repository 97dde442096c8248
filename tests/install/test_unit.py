"""deploy/edge-agent.service: starts on any Debian box, and says what README and the package say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config.health import WatchdogConfig

from .conftest import REPO

UNIT = REPO / "deploy" / "edge-agent.service"


def _keys() -> dict[str, list[str]]:
    """Every Key=value of the unit (a key may repeat, as systemd allows)."""
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value)
    assert m, f"unexpected duration {value!r}"
    return float(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


def test_no_supplementary_group_that_a_box_may_not_have() -> None:
    """SupplementaryGroups naming a group the box lacks fails the start with 216/GROUP; the groups
    come from the user's membership instead (postinst adds only groups that exist)."""
    keys = _keys()
    assert "SupplementaryGroups" not in keys
    assert keys["User"] == ["edge"] and keys["Group"] == ["edge"]
    postinst = (REPO / "deploy" / "debian" / "postinst").read_text(encoding="utf-8")
    assert "for group in video gpio dialout; do" in postinst
    assert 'if getent group "$group" >/dev/null; then' in postinst
    assert "i2c" not in postinst and "spi" not in postinst


def test_paths_agree_with_the_package() -> None:
    keys = _keys()
    (exec_start,) = keys["ExecStart"]
    assert exec_start == "/opt/edge/venv/bin/edge-agent run --config /etc/edge/site.yaml"
    assert keys["ConditionPathExists"] == ["/etc/edge/site.yaml"]
    postinst = (REPO / "deploy" / "debian" / "postinst").read_text(encoding="utf-8")
    assert "VENV=/opt/edge/venv" in postinst
    assert keys["StateDirectory"] == ["edge"] and "/var/lib/edge" in keys["ReadWritePaths"][0].split()
    assert keys["EnvironmentFile"] == ["-/etc/edge/edge.env"]
    build = (REPO / "scripts" / "build-deb.sh").read_text(encoding="utf-8")
    assert '"$STAGE/etc/edge/edge.env"' in build and "echo /etc/edge/edge.env >" in build


def test_watchdog_is_one_value_everywhere_and_outlasts_the_stall_limit() -> None:
    (watchdog,) = _keys()["WatchdogSec"]
    secs = _seconds(watchdog)
    assert secs > WatchdogConfig().stall_s, "the agent stops pinging after stall_s; systemd must wait longer"
    docs = {p: p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
    mentions = [(p.name, m) for p, text in docs.items() for m in re.findall(r"(?<![A-Za-z])WatchdogSec=(\w+)", text)]
    assert any(name == "README.md" for name, _ in mentions)
    assert all(_seconds(m) == secs for _, m in mentions), mentions


def test_systemd_accepts_every_key() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (the Debian package test verifies the unit too)")
    tmp = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip())
    try:
        # The agent is not installed on this machine: point ExecStart at a binary that exists, so the
        # check is about the unit's keys and values (the package test verifies the real path).
        text = UNIT.read_text(encoding="utf-8").replace("ExecStart=/opt/edge/venv/bin/edge-agent", "ExecStart=/bin/true")
        (tmp / "edge-agent.service").write_text(text, encoding="utf-8")
        out = subprocess.run([analyze, "verify", "--man=no", str(tmp / "edge-agent.service")],
                             capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(tmp)
    assert out.returncode == 0 and (out.stdout + out.stderr).strip() == "", out.stdout + out.stderr
