"""Bytes per box per day on the wire, counted at the socket (MQTT framing and TLS records included),
for the three example sites over one simulated day, with three sets of settings side by side:

* ``before``  — the uplink as it was before the byte knobs: plain JSON, no topic aliases;
* ``default`` — the shipped configs with today's defaults (features and health zlib-compressed,
  MQTT 5 topic aliases);
* ``lean``    — the knobs turned: features only on change, fewer feature fields, a 5-minute crowd
  report and no per-crossing events (counts stay in the features).

    pytest -m slow tests/fleet/test_bytes.py -s      # prints the table for the README
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.broker import Broker
from tests.fleet.helpers import REPO, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITES = ("no-parking-street", "bike-bay", "plaza-crowd")
DAY_S = 86400.0
SPEED = 1440.0  # a simulated day in a minute
KEEPALIVE_S = 30
# PINGREQ + PINGRESP are 2 bytes each; each travels in its own TLS 1.3 record (+22 bytes). An upper
# bound: paho only pings after keepalive_s without traffic, which the accelerated run cannot reproduce.
PING_BYTES_TLS = 2 * (2 + 22)
BUDGET = 5_000_000

VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"uplink": {"compress": []}, "mqtt": {"topic_aliases": False}},
    "default": {},
    "lean": {
        "uplink": {"features": {"only_on_change": True, "max_silence_s": 900,
                                "omit": ["zones.count_mean", "zones.count_max", "zones.dwell_mean_s", "zones.motion_energy"]}},
        "rules": {"crowd": {"report_s": 300}, "line_events": False},
    },
}  # fmt: skip


def _variant_config(site: str, variant: str, tag: str, out: Path) -> Path:
    data = yaml.safe_load((REPO / "configs" / f"{site}.yaml").read_text())
    data["device_id"] = f"{data['device_id']}{tag}"
    over = VARIANTS[variant]
    data["uplink"].update(over.get("uplink", {}))
    data["uplink"]["mqtt"].update(over.get("mqtt", {}))
    for k, v in over.get("rules", {}).items():
        rules = data.setdefault("rules", {})
        rules[k] = {**rules.get(k, {}), **v} if isinstance(v, dict) else v
    path = out / f"{site}-{variant}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bytes_per_box_per_day_for_the_three_sites(mosquitto_tls: Broker, tmp_path: Path) -> None:
    tls = mosquitto_tls.tls
    assert tls is not None
    files: list[Path] = []
    names: list[tuple[str, str]] = []
    for vi, variant in enumerate(VARIANTS):
        for site in SITES:
            files.append(_variant_config(site, variant, "abc"[vi], tmp_path))
            names.append((site, variant))
    from edge.config.loader import load_config
    from firmware_sim.fleet import device_name

    devices = [device_name(load_config(f), n) for n, f in enumerate(files, start=1)]
    for d in devices:
        tls.client(d)  # CN = device id: the ACL confines each box to its own topics
    pcert, pkey = tls.client("platform")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    consumer = subprocess.Popen(
        [sys.executable, "-m", "city", "consume", "--broker", f"localhost:{mosquitto_tls.port}", "--group", "city",
         "--db", f"sqlite:///{tmp_path / 'city.db'}", "--client-id", "city-1", "--no-validate",
         "--ca-file", str(tls.ca), "--cert-file", str(pcert), "--key-file", str(pkey)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "consumer.log", "ab"),
    )  # fmt: skip
    try:
        wait_until(lambda: "connected" in (tmp_path / "consumer.log").read_text(), 20, "the consumer")
        cmd = [sys.executable, "-m", "firmware_sim", "fleet", "--boxes", str(len(files)), "--procs", "1",
               "--broker", f"localhost:{mosquitto_tls.port}", "--out", str(tmp_path / "fleet"),
               "--sim-seconds", str(DAY_S), "--speed", str(SPEED), "--start", "2026-11-23T00:00:00+08:00",
               "--tls-dir", str(tls.dir), "--count-bytes", "--per-box", "--no-validate", "--drain-timeout", "120"]
        for f in files:
            cmd += ["--site", str(f)]
        run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=900)
        assert run.returncode == 0, run.stderr.decode()[-3000:]
        summary = json.loads(run.stdout)
    finally:
        consumer.terminate()
        consumer.wait(20)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (site, variant), dev in zip(names, devices, strict=True):
        box = summary["boxes"][dev]
        wire = box["wire"]
        day = (wire["up_bytes"] + wire["down_bytes"]) * DAY_S / DAY_S
        rows[(site, variant)] = {"events": box["last_seq"], "up": wire["up_bytes"], "down": wire["down_bytes"],
                                 "keepalive_max": int(DAY_S / KEEPALIVE_S) * PING_BYTES_TLS,
                                 "total": day + int(DAY_S / KEEPALIVE_S) * PING_BYTES_TLS, "held_back": box["held_back"]}  # fmt: skip
        assert wire["connections"] == 1 and box["pending"] == 0
    print("\nbytes per box per simulated day, counted at the socket (MQTT + TLS 1.3), keepalive bound added:")
    print("| site | settings | events | up MB | down MB | keepalive ≤ MB | total MB/day |")
    for (site, variant), r in rows.items():
        print(f"| {site} | {variant} | {r['events']} | {r['up'] / 1e6:.2f} | {r['down'] / 1e6:.2f} | "
              f"{r['keepalive_max'] / 1e6:.2f} | {r['total'] / 1e6:.2f} |")  # fmt: skip
    for site in SITES:
        assert rows[(site, "default")]["total"] < rows[(site, "before")]["total"], site
        assert rows[(site, "lean")]["total"] < rows[(site, "default")]["total"], site
    for site in ("no-parking-street", "bike-bay"):  # the typical sites, on default settings
        assert rows[(site, "default")]["total"] < BUDGET, (site, rows[(site, "default")])
        assert rows[(site, "default")]["total"] < rows[(site, "before")]["total"] * 0.75, site
    assert rows[("plaza-crowd", "lean")]["total"] < BUDGET
