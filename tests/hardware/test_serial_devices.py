"""Serial devices against firmware_sim over real sockets and ptys (byte-for-byte protocols)."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from edge.config.hardware import HardwareConfig
from edge.hardware.codecs import ld2410
from edge.hardware.manager import HardwareManager
from edge.hardware.serial_link import SerialLink
from tests.hardware.conftest import wait_for

TZ = "Asia/Shanghai"


@pytest.fixture
def managers() -> Any:
    made: list[HardwareManager] = []

    def make(ntp: bool | None = None, **hw: Any) -> HardwareManager:
        cfg = HardwareConfig.model_validate(
            {"pin_factory": "mock", "reconnect_min_s": 0.1, "reconnect_max_s": 0.4, **hw}
        )
        m = HardwareManager(cfg, TZ, ntp_status=lambda: ntp)
        m.start()
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


def test_device_is_seen_connected_only_after_its_connect_hook() -> None:
    """A poller (the modem's) that sees ``connected`` must find the link's fresh state set up: the
    modem's first command after a (re)connect is its ATE0 init, never a poll the init then trails."""
    from edge.config.hardware import SerialDeviceConfig
    from edge.hardware.devices import SerialDevice

    class SlowToSetUp(SerialDevice):
        name = "slow"
        ready = False
        seen_before_ready = False

        def on_connect(self) -> None:
            time.sleep(0.3)  # as long as a radar's config exchange or more
            self.ready = True

        def on_bytes(self, data: bytes) -> None:
            pass

    dev = SlowToSetUp(SerialDeviceConfig(url="loop://"), reconnect_min_s=0.1, reconnect_max_s=0.2)
    dev.start()
    try:
        deadline = time.monotonic() + 3.0
        while not dev.connected and time.monotonic() < deadline:
            time.sleep(0.005)
            dev.seen_before_ready |= dev.connected and not dev.ready
        assert dev.wait_connected(0.1) and dev.connected
        assert dev.ready and not dev.seen_before_ready, "connected was visible before on_connect finished"
    finally:
        dev.stop()


def test_loop_url_roundtrip() -> None:
    link = SerialLink("loop://", 9600, timeout_s=0.1)
    link.open()
    frame = ld2410.encode_command(ld2410.read_firmware())
    link.write(frame)
    assert link.read() == frame
    link.close()


def test_radar_presence_becomes_features(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim({"timeline": [{"at_s": 0, "state": "stationary", "distance_cm": 180, "energy": 45}]})
    m = managers(radar={"url": sim.url})
    assert m.radar is not None
    wait_for(lambda: m.radar_presence() is True, what="radar presence")
    feats = {f.key: f.value for f in m.features(time.monotonic())}
    assert feats["radar.presence"] == 1.0
    assert feats["radar.distance_m"] == pytest.approx(1.8)
    assert feats["radar.static_energy"] == 45
    wait_for(lambda: m.radar.firmware is not None, what="firmware ACK")
    assert m.radar.firmware == "V1.02.22062416"
    assert m.health()["radar"]["status"] == "online"


def test_radar_presence_comes_and_goes(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim("radar_presence", speed=20)  # 40 s loop in 2 s
    m = managers(radar={"url": sim.url})
    seen: set[bool | None] = set()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not {True, False} <= seen:
        seen.add(m.radar_presence())
        time.sleep(0.01)
    assert {True, False} <= seen


def test_radar_engineering_mode(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim({"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 160, "energy": 70}]})
    m = managers(radar={"url": sim.url, "engineering": True})
    wait_for(
        lambda: m.radar.state is not None and m.radar.state.report.engineering, what="engineering frames"
    )
    assert m.radar.state.report.moving_gate_energy[2] == 70  # 160 cm falls in gate 2 (0.75 m gates)
    assert ld2410.CMD_ENABLE_ENGINEERING in sim.sim.commands


def test_radar_over_pty(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim(
        {"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 300, "energy": 50}]}, pty=True
    )
    assert sim.url.startswith("/dev/")
    m = managers(radar={"url": sim.url})
    wait_for(lambda: m.radar_presence() is True, what="radar presence over a pty")


@pytest.mark.slow
def test_ten_thousand_corrupted_frames_exact_count(radar_sim: Any, managers: Any) -> None:
    """≥ 10,000 corrupted frames through a real socket: no crash, every one rejected exactly once,
    every valid frame decoded."""
    sim = radar_sim(
        {"rate_hz": 0.001, "timeline": [{"at_s": 0, "state": "moving", "distance_cm": 200, "energy": 50}]},
        seed=3,
    )
    m = managers(radar={"url": sim.url})
    wait_for(lambda: m.radar.connected and m.radar.firmware is not None, what="radar connect")
    rs = sim.sim
    base_valid = rs.stats.valid
    base_decoded = m.radar.decoder.decoded - 0
    for kind in ("truncate", "bad_tail", "bad_marker", "bad_length"):
        rs.inject(kind, 2600)
    rs.inject("garbage", 500)
    expected_corrupt = 4 * 2600
    expected_valid = rs.stats.valid - base_valid + 4 * 2600 + 500
    wait_for(
        lambda: m.radar.decoder.decoded - base_decoded >= expected_valid, timeout_s=30, what="all frames"
    )
    time.sleep(0.2)
    assert rs.stats.corrupted == expected_corrupt >= 10_000
    assert m.radar.decoder.rejected == expected_corrupt
    assert m.radar.decoder.decoded - base_decoded == expected_valid
    assert m.radar.decoder.garbage_bytes >= rs.stats.garbage_bytes
    assert m.health()["radar"]["rejected_frames"] == expected_corrupt
    assert m.radar.connected  # never crashed or reconnected
    assert m.radar.reconnects == 0


def test_gps_fix_gives_geo_and_clock_quality(gps_sim: Any, managers: Any) -> None:
    sim = gps_sim(
        {
            "position": {"lat": 30.5402, "lon": 104.0611, "alt_m": 498},
            "rate_hz": 20,
            "start_utc": "2026-11-22T08:00:00Z",
        },
        pty=True,
    )
    m = managers(gps={"url": sim.url})
    wait_for(lambda: m.geo() is not None, what="GPS fix")
    g = m.geo()
    assert (
        g is not None
        and g.lat == pytest.approx(30.5402, abs=1e-6)
        and g.lon == pytest.approx(104.0611, abs=1e-6)
    )
    assert g.alt_m == pytest.approx(498)
    assert m.clock_quality() == "gps"
    off = m.time_offset_s()
    sim_start = calendar.timegm((2026, 11, 22, 8, 0, 0))  # the simulated GPS's time at its start
    expected = sim_start + sim.now() - time.time()
    assert off is not None and abs(off - expected) < 3.0


def test_ntp_synced_wins_over_gps(gps_sim: Any, managers: Any) -> None:
    sim = gps_sim({"rate_hz": 20})
    m = managers(ntp=True, gps={"url": sim.url})
    wait_for(lambda: m.geo() is not None, what="GPS fix")
    assert m.clock_quality() == "ntp" and m.time_offset_s() is None


def test_no_gps_no_ntp_is_unsynced(managers: Any) -> None:
    assert managers().clock_quality() == "unsynced"


def test_gps_fix_lost_and_regained(gps_sim: Any, managers: Any) -> None:
    sim = gps_sim(
        {
            "rate_hz": 20,
            "timeline": [{"at_s": 0, "fix": True}, {"at_s": 1.0, "fix": False}, {"at_s": 2.0, "fix": True}],
        }
    )
    m = managers(gps={"url": sim.url})
    wait_for(lambda: m.geo() is not None, what="first fix")
    wait_for(lambda: m.geo() is None, what="fix lost")
    assert m.health()["gps"]["fix"] is False
    wait_for(lambda: m.geo() is not None, what="fix regained")


def test_gps_bad_sentences_counted(gps_sim: Any, managers: Any) -> None:
    sim = gps_sim({"rate_hz": 1000})
    m = managers(gps={"url": sim.url})
    wait_for(lambda: m.gps.connected and m.gps.decoder.decoded > 0, what="gps")
    sim.sim.inject("bad_checksum", 300)
    sim.sim.inject("truncate", 300)
    wait_for(lambda: m.gps.decoder.rejected >= 600, what="rejections")
    time.sleep(0.1)
    assert m.gps.decoder.rejected == sim.sim.stats.corrupted == 600
    assert m.geo() is not None


def test_unplugged_device_reconnects_and_is_flagged(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim({"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 200, "energy": 50}]})
    m = managers(radar={"url": sim.url, "stale_after_s": 0.5})
    wait_for(lambda: m.radar_presence() is True, what="radar")
    t0 = time.monotonic()
    assert m.poll(t0, 0.0) == []
    port = sim.port
    sim.stop()  # unplugged
    wait_for(lambda: m.radar.status() == "offline", what="offline")
    trs = m.poll(time.monotonic(), 1.0)
    assert [(x.kind, x.phase, x.payload["status"]) for x in trs] == [("sensor_status", "start", "offline")]
    assert m.radar_presence() is None  # no stale presence
    assert m.health()["radar"]["status"] == "offline"
    again = radar_sim(
        {"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 200, "energy": 50}]}, port=port
    )
    assert again.port == port
    wait_for(lambda: m.radar.status() == "online", timeout_s=5, what="reconnect")
    trs = m.poll(time.monotonic(), 2.0)
    assert [(x.kind, x.phase) for x in trs] == [("sensor_status", "end")]
    assert trs[0].started_ts == 1.0
    assert m.radar.reconnects >= 1


def test_simulated_disconnect_fault(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim({"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 200, "energy": 50}]})
    m = managers(radar={"url": sim.url})
    wait_for(lambda: m.radar_presence() is True, what="radar")
    sim.sim.inject("disconnect")
    wait_for(lambda: m.radar.reconnects >= 1 and m.radar.connected, what="reconnect after disconnect")
    assert sim.clients >= 2


def test_missing_device_flagged_after_grace(managers: Any) -> None:
    m = managers(radar={"url": "socket://127.0.0.1:9", "stale_after_s": 0.3})
    t0 = time.monotonic()
    assert m.poll(t0, 0.0) == []  # within grace
    time.sleep(0.35)
    trs = m.poll(time.monotonic(), 1.0)
    assert [(x.kind, x.phase) for x in trs] == [("sensor_status", "start")]
    assert "cannot open" in trs[0].payload["reason"]


def test_silent_device_does_not_block_the_pipeline(managers: Any) -> None:
    """A port that accepts the connection but never sends a byte: every pipeline call returns at once."""
    import socket

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    try:
        url = f"socket://127.0.0.1:{ls.getsockname()[1]}"
        m = managers(
            radar={"url": url, "stale_after_s": 0.2},
            modem={
                "url": url,
                "timeout_s": 0.3,
                "poll_interval_s": 0.1,
                "fallback": {"host": "h", "client_id": "c"},
            },
        )
        t0 = time.perf_counter()
        for _ in range(100):
            m.poll(time.monotonic(), 0.0)
            m.features(time.monotonic())
            m.radar_presence()
            m.health()
            assert m.fallback_link() is not None and not m.fallback_link().available()
        assert time.perf_counter() - t0 < 0.5
        wait_for(lambda: m.modem.timeouts >= 1, what="modem command timeout")
    finally:
        ls.close()


def test_radar_min_energy_filters_weak_targets(radar_sim: Any, managers: Any) -> None:
    sim = radar_sim({"timeline": [{"at_s": 0, "state": "moving", "distance_cm": 400, "energy": 12}]})
    m = managers(radar={"url": sim.url, "min_energy": 20})
    wait_for(lambda: m.radar.fresh() is not None, what="radar frames")
    assert m.radar_presence() is False
    feats = {f.key: f.value for f in m.features(time.monotonic())}
    assert feats["radar.presence"] == 0.0 and "radar.distance_m" not in feats


def test_gps_nan_sentence_never_becomes_a_fix(managers: Any) -> None:
    """The issue's GPS sentence carrying 'nan' (valid checksum) became a fix of (nan, nan): now it is
    refused as non_finite and the box has no position until a real one arrives."""
    from edge.hardware.codecs import nmea

    m = managers(gps={"url": "loop://"})
    wait_for(lambda: m.gps.connected, what="gps port")
    bad = [
        nmea.frame("GPRMC,081500.00,A,nan,N,nan,E,0.0,,221126,,,A"),
        nmea.frame("GPGGA,081500.00,nan,N,nan,E,1,08,0.9,498.0,M,-32.0,M,,"),
        nmea.frame("GPRMC,081501.00,A,-130.0000,N,10403.6660,E,0.0,,221126,,,A"),
    ]
    m.gps.link.write(b"".join(bad))
    wait_for(lambda: m.gps.decoder.rejected == 3, what="refusals")
    assert m.gps.fix is None and m.geo() is None
    assert m.health()["gps"]["rejected_by_kind"] == {"non_finite": 2, "bad_field": 1}
    m.gps.link.write(nmea.encode_rmc(1.79e9, 30.5402, 104.0611, True))
    wait_for(lambda: m.geo() is not None, what="a real fix")
    g = m.geo()
    assert (
        g is not None
        and g.lat == pytest.approx(30.5402, abs=1e-6)
        and g.lon == pytest.approx(104.0611, abs=1e-6)
    )
