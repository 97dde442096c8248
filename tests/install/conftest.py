"""Helpers for the install tests: clean environments, a fresh interpreter, a site config for a file.

These tests install what a box installs (the wheel without dev extras, the Debian package) and run
it from outside the repository, so nothing of the repository's .venv or source tree can leak in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# pip needs the machine's own settings (certificates, proxies, local wheel caches) to reach PyPI.
_PASS_THROUGH = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "SSL_CERT_", "REQUESTS_CA_BUNDLE", "XDG_CACHE_HOME", "TMPDIR")


def clean_env(**extra: str) -> dict[str, str]:
    """An environment without the repository: no VIRTUAL_ENV, PYTHONPATH, .venv on PATH or EDGE_*."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_PASS_THROUGH)}
    env.update(PATH=SYSTEM_PATH, HOME=os.environ.get("HOME", "/root"), LANG="C.UTF-8", PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env if env is not None else clean_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


def base_python() -> str:
    """The interpreter the test venv was made from (not the venv itself)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def make_clip_script(path: str, frames: int = 60) -> str:
    """Python source that writes a small MJPG clip (a bright disc crossing a grey field) with cv2."""
    return (
        "import cv2, numpy as np\n"
        f"w = cv2.VideoWriter({path!r}, cv2.VideoWriter_fourcc(*'MJPG'), 10, (320, 240))\n"
        f"for i in range({frames}):\n"
        "    img = np.full((240, 320, 3), 60, np.uint8)\n"
        "    cv2.circle(img, (20 + i * 4, 150), 14, (255, 255, 255), -1)\n"
        "    w.write(img)\n"
        "w.release()\n"
    )


def site_config(clip: str, state_dir: str) -> str:
    """A site config that runs the motion backend on a file until its end, events to JSONL."""
    cfg: dict[str, Any] = {
        "config_version": 1,
        "device_id": "pole-install-test",
        "site_id": "lab",
        "geo": {"lat": 30.6, "lon": 104.06},
        "cameras": [{
            "id": "cam0",
            "source": clip,
            "detect_fps": 5,
            "model": "motion",
            "calibration": {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]]},
            "zones": [{"id": "all", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        }],
        "rules": {"feature_interval_s": 2},
        "uplink": {"outbox_path": f"{state_dir}/outbox.sqlite", "jsonl_path": f"{state_dir}/events.jsonl"},
        "hardware": {"pin_factory": "mock"},
        "health": {"health_interval_s": 10, "disk_path": state_dir},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def check_run_events(jsonl_text: str) -> list[dict[str, Any]]:
    """The events of one run from start to the end of its file: schema-valid, started...stopping, no seq gap."""
    import json

    from edge.events.schema import validate_event

    events = sorted((json.loads(ln) for ln in jsonl_text.splitlines() if ln.strip()), key=lambda e: e["seq"])
    assert events, "the run wrote no events"
    for e in events:
        validate_event(e)
    assert events[0]["kind"] == "agent_status" and events[0]["payload"]["state"] == "started"
    assert events[-1]["kind"] == "agent_status" and events[-1]["payload"]["state"] == "stopping"
    assert any(e["kind"] == "features" for e in events), [e["kind"] for e in events]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    return events


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip where this machine cannot do it; under CI=true that is a failure."""
    if ci():
        pytest.fail(reason + " -- under CI=true this is a failure")
    pytest.skip(reason)
