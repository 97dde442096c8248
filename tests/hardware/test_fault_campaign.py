"""The serial fault campaign: 10^5 corrupted frames per codec, byte-for-byte through a real socket
from ``firmware_sim`` into the agent's own device reader threads.

Every corrupted frame is followed by a valid one. For each codec the campaign checks: no exception
left the reader (no reconnect, no ERROR record, no traceback), every valid frame was decoded, every
corrupted one refused exactly once under the kind it deserves, and each kind logged once.

Run it alone (prints the figures)::

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/hardware/test_fault_campaign.py
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from edge.config.hardware import GpsConfig, ModemConfig, RadarConfig
from edge.hardware.devices import GpsDevice, RadarDevice, SerialDevice
from edge.hardware.modem import ModemDevice
from tests.hardware.conftest import wait_for

CORRUPTED = 100_000
BATCH = 5_000

pytestmark = pytest.mark.slow


def _run_campaign(
    server: Any,
    dev: SerialDevice,
    valid_done: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> tuple[int, int, float]:
    """Inject 'mixed' faults in batches until CORRUPTED corrupted frames were sent; wait until the
    device has seen every valid frame that followed them. Returns (valid sent, valid decoded, seconds)."""
    sim = server.sim
    base_valid, base_done = sim.stats.valid, valid_done()
    t0 = time.monotonic()
    while sim.stats.corrupted < CORRUPTED:
        sim.inject("mixed", min(BATCH, CORRUPTED - sim.stats.corrupted))
        wait_for(lambda: sim.stats.valid > base_valid and _settled(sim), timeout_s=30, what="simulator tick")
        want = sim.stats.valid - base_valid
        wait_for(
            lambda want=want: valid_done() - base_done >= want,
            timeout_s=60,
            what=f"{name}: valid frames decoded",
        )
    time.sleep(0.3)  # anything late would show up as an extra decode or rejection
    sent, done = sim.stats.valid - base_valid, valid_done() - base_done
    assert dev.connected and dev.reconnects == 0, "the reader never dropped the port"
    assert dev.last_error == ""
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, f"{name}: {bad[0].getMessage()}"
    return sent, done, time.monotonic() - t0


def _settled(sim: Any) -> bool:
    with sim._lock:
        return not sim._queued


def _refusal_logs(caplog: pytest.LogCaptureFixture, device: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"device={device} refused" in r.getMessage()]


def _report(
    name: str, sent: int, done: int, corrupted: int, rejected: int, by_kind: dict[str, int], s: float
) -> None:
    print(
        f"\n{name}: corrupted frames sent {corrupted}, valid frames sent {sent}, valid decoded {done}, "
        f"rejections {rejected} {dict(sorted(by_kind.items()))}, exceptions 0, reconnects 0, {s:.1f} s"
    )


def test_ld2410_campaign(radar_sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge")
    server = radar_sim(
        {"rate_hz": 0.001, "timeline": [{"at_s": 0, "state": "both", "distance_cm": 200, "energy": 60}]},
        seed=13,
    )
    dev = RadarDevice(RadarConfig(url=server.url, engineering=True, stale_after_s=3600))
    dev.start()
    try:
        wait_for(
            lambda: dev.firmware is not None and server.sim.engineering, what="radar in engineering mode"
        )
        base_decoded = dev.decoder.decoded
        sent, done, secs = _run_campaign(
            server, dev, lambda: dev.decoder.decoded - base_decoded, caplog, "ld2410"
        )
        st = server.sim.stats
        rej = dev.decoder.rejects
        assert st.corrupted == CORRUPTED == rej.total
        assert done == sent
        assert dev.state is not None and dev.state.report.engineering
        assert all(
            e <= 100 for e in dev.state.report.moving_gate_energy + dev.state.report.static_gate_energy
        )
        field_faults = sum(
            st.by_kind.get(k, 0) for k in ("state_range", "energy_range", "distance_range", "gate_range")
        )
        assert rej.by_kind.get("out_of_range", 0) == field_faults > 0
        assert rej.by_kind.get("marker", 0) == st.by_kind["bad_marker"]
        cut = sum(
            st.by_kind.get(k, 0)
            for k in ("truncate", "bad_tail", "bad_length", "eng_overrun", "eng_truncate")
        )
        assert sum(rej.by_kind.get(k, 0) for k in ("length", "tail", "overrun")) == cut
        assert set(rej.by_kind) <= {"out_of_range", "marker", "length", "tail", "overrun"}
        assert dev.health()["rejected_by_kind"] == rej.by_kind
        assert len(_refusal_logs(caplog, "radar")) == len(rej.by_kind)  # once per kind
        _report("ld2410", sent, done, st.corrupted, rej.total, rej.by_kind, secs)
    finally:
        dev.stop()


def test_nmea_campaign(gps_sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge")
    server = gps_sim({"rate_hz": 0.001, "position": {"lat": 30.5402, "lon": 104.0611, "alt_m": 498}}, seed=13)
    dev = GpsDevice(GpsConfig(url=server.url, stale_after_s=3600))
    dev.start()
    try:
        wait_for(lambda: dev.fix is not None, what="first fix")
        base = dev.decoder.decoded
        sent, done, secs = _run_campaign(server, dev, lambda: dev.decoder.decoded - base, caplog, "nmea")
        st = server.sim.stats
        rej = dev.decoder.rejects
        assert st.corrupted == CORRUPTED == rej.total
        assert done == sent  # with rejected == corrupted: not one corrupted sentence was decoded
        fix = dev.fix
        assert fix is not None and math.isfinite(fix.lat) and abs(fix.lat - 30.5402) < 1e-6
        assert abs(fix.lon - 104.0611) < 1e-6
        assert (
            rej.by_kind.get("non_finite", 0)
            == sum(st.by_kind.get(k, 0) for k in ("nan_lat", "nan_lon", "nan_speed"))
            > 0
        )
        assert rej.by_kind.get("truncated", 0) == st.by_kind["truncate"]
        assert rej.by_kind.get("checksum", 0) == st.by_kind["bad_checksum"]
        ranged = (
            "lat_range",
            "lat_minutes",
            "lon_range",
            "lon_minutes",
            "bad_time",
            "bad_date",
            "speed_range",
        )
        assert rej.by_kind.get("out_of_range", 0) + rej.by_kind.get("bad_field", 0) == sum(
            st.by_kind.get(k, 0) for k in ranged
        )
        assert dev.health()["rejected_by_kind"] == rej.by_kind
        assert len(_refusal_logs(caplog, "gps")) == len(rej.by_kind)
        _report("nmea", sent, done, st.corrupted, rej.total, rej.by_kind, secs)
    finally:
        dev.stop()


def test_at_urc_campaign(modem_sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Malformed +QMTSTAT URCs (the issue's 203 bad lines gave 19 tracebacks and 19 reconnects),
    out-of-range ones, non-ASCII and over-long lines, each followed by a well-formed +QMTSTAT."""
    caplog.set_level(logging.WARNING, logger="edge")
    server = modem_sim({"seed": 13})
    dev = ModemDevice(ModemConfig(url=server.url, poll_interval_s=3600, timeout_s=2))
    dev.start()
    try:
        wait_for(lambda: dev.reg_t is not None, what="modem registered")
        sent, done, secs = _run_campaign(server, dev, lambda: dev.urcs, caplog, "at")
        st = server.sim.stats
        rej = dev.decoder.rejects
        assert st.corrupted == CORRUPTED == rej.total
        assert done == sent
        assert rej.by_kind == {
            "bad_reply": st.by_kind["bad_qmtstat"],
            "out_of_range": st.by_kind["qmtstat_range"],
            "not_ascii": st.by_kind["non_ascii"],
            "too_long": st.by_kind["too_long"],
        }
        assert dev.health()["rejected_by_kind"] == rej.by_kind
        assert len(_refusal_logs(caplog, "modem")) == len(rej.by_kind)
        # the modem still answers commands after the flood
        dev.refresh()
        assert dev.registered()
        _report("at", sent, done, st.corrupted, rej.total, rej.by_kind, secs)
    finally:
        dev.stop()
