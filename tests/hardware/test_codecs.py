"""Codec tests: known byte vectors, round trips and property-based fuzzing of every decoder."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import CodecError
from edge.hardware.codecs import at, ld2410, nmea

# ---------------------------------------------------------------- LD2410 ----------------------

DATASHEET_BASIC = bytes.fromhex("f4f3f2f1 0d00 02aa 02 5100 00 0000 3b 0000 5500 f8f7f6f5".replace(" ", ""))


def test_ld2410_datasheet_basic_frame() -> None:
    r = ld2410.decode_frame(DATASHEET_BASIC)
    assert r == ld2410.RadarReport(2, 0x51, 0, 0, 0x3B, 0)
    assert ld2410.encode_report(r) == DATASHEET_BASIC


@pytest.mark.parametrize(
    ("cmd", "hexbytes"),
    [
        (ld2410.enable_config(), "fdfcfbfa 0400 ff00 0100 04030201"),
        (ld2410.end_config(), "fdfcfbfa 0200 fe00 04030201"),
        (ld2410.read_firmware(), "fdfcfbfa 0200 a000 04030201"),
        (ld2410.enable_engineering(), "fdfcfbfa 0200 6200 04030201"),
    ],
)
def test_ld2410_command_bytes(cmd: ld2410.Command, hexbytes: str) -> None:
    assert ld2410.encode_command(cmd) == bytes.fromhex(hexbytes.replace(" ", ""))


def test_ld2410_firmware_ack() -> None:
    raw = ld2410.encode_ack(
        ld2410.Ack(ld2410.CMD_READ_FIRMWARE, 0, ld2410.firmware_value(0x0102, 0x22062416))
    )
    assert raw[6:8] == b"\xa0\x01"  # command | 0x0100
    ack = ld2410.decode_frame(raw)
    assert isinstance(ack, ld2410.Ack) and ack.ok
    assert ld2410.parse_firmware(ack.value) == "V1.02.22062416"


def test_ld2410_engineering_frame_roundtrip() -> None:
    r = ld2410.RadarReport(3, 120, 60, 110, 40, 120, True, tuple(range(9)), tuple(range(10, 19)), 77, 1)
    raw = ld2410.encode_report(r)
    assert raw[6] == ld2410.TYPE_ENGINEERING and int.from_bytes(raw[4:6], "little") == 35
    assert ld2410.decode_frame(raw) == r


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda b: b[:-1] + b"\x00", "tail"),
        (lambda b: b[:7] + b"\x00" + b[8:], "marker"),
        (lambda b: b[:4] + b"\xff\x00" + b[6:], "length"),
        (lambda b: b[:8] + b"\x07" + b[9:], "state"),
        (lambda b: b[:6] + b"\x09" + b[7:], "type"),
    ],
)
def test_ld2410_malformed_frame_counted_and_skipped(mutate: object, why: str) -> None:
    dec = ld2410.FrameDecoder()
    bad = mutate(DATASHEET_BASIC)  # type: ignore[operator]
    out = dec.feed(bad + DATASHEET_BASIC)
    assert dec.rejected == 1, why
    assert out == [ld2410.decode_frame(DATASHEET_BASIC)]


report_st = st.builds(
    ld2410.RadarReport,
    target_state=st.integers(0, 3),
    moving_distance_cm=st.integers(0, ld2410.MAX_DISTANCE_CM),
    moving_energy=st.integers(0, 100),
    static_distance_cm=st.integers(0, ld2410.MAX_DISTANCE_CM),
    static_energy=st.integers(0, 100),
    detection_distance_cm=st.integers(0, ld2410.MAX_DISTANCE_CM),
)


@given(report_st)
def test_ld2410_report_roundtrip(r: ld2410.RadarReport) -> None:
    assert ld2410.decode_frame(ld2410.encode_report(r)) == r


@given(st.lists(report_st, min_size=1, max_size=5), st.integers(1, 40))
def test_ld2410_stream_any_chunking(reports: list[ld2410.RadarReport], chunk: int) -> None:
    data = b"".join(ld2410.encode_report(r) for r in reports)
    dec = ld2410.FrameDecoder()
    out: list[object] = []
    for i in range(0, len(data), chunk):
        out += dec.feed(data[i : i + chunk])
    assert out == reports and dec.rejected == 0


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_ld2410_decoder_never_raises(data: bytes) -> None:
    dec = ld2410.FrameDecoder()
    for msg in dec.feed(data):
        assert isinstance(msg, ld2410.RadarReport | ld2410.Command | ld2410.Ack)
    assert dec.rejected >= 0 and dec.pending <= len(data)


@given(st.binary(max_size=60), report_st)
def test_ld2410_recovers_after_noise(noise: bytes, r: ld2410.RadarReport) -> None:
    """Whatever came before, two clean frames in a row always yield at least the last one."""
    dec = ld2410.FrameDecoder()
    frame = ld2410.encode_report(r)
    out = dec.feed(noise + frame + frame)
    assert out and out[-1] == r


# ---------------------------------------------------------------- NMEA ------------------------


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        (
            b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
            nmea.Rmc(True, 764426119.0, 48.1173, 11.0 + 31.0 / 60, 22.4, 84.4),
        ),
        (
            b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
            nmea.Gga(45319.0, 48.1173, 11.0 + 31.0 / 60, 1, 8, 0.9, 545.4),
        ),
        (b"$GNRMC,,V,,,,,,,,,,N*4D", nmea.Rmc(False, None, None, None, None, None)),
    ],
)
def test_nmea_known_sentences(line: bytes, expect: nmea.Sentence) -> None:
    got = nmea.parse_sentence(line)
    assert got is not None
    for f in expect.__dataclass_fields__:
        a, b = getattr(got, f), getattr(expect, f)
        assert a == pytest.approx(b) if isinstance(b, float) else a == b, f


@pytest.mark.parametrize(
    "line",
    [
        b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6B",  # checksum off by one
        b"GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",  # no $
        b"$GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*",
    ],
)
def test_nmea_rejects(line: bytes) -> None:
    with pytest.raises(CodecError):
        nmea.parse_sentence(line)


def test_nmea_other_types_ignored_not_rejected() -> None:
    dec = nmea.SentenceDecoder()
    out = dec.feed(nmea.frame("GPGSV,1,1,00") + nmea.frame("GPVTG,,T,,M,0.0,N,0.0,K,N"))
    assert out == [] and dec.ignored == 2 and dec.rejected == 0


lat_st = st.floats(-89.99, 89.99, allow_nan=False)
lon_st = st.floats(-179.99, 179.99, allow_nan=False)
epoch_st = st.integers(946684800, 3_000_000_000).map(float)


@given(epoch_st, lat_st, lon_st, st.booleans())
def test_nmea_rmc_roundtrip(epoch: float, lat: float, lon: float, valid: bool) -> None:
    got = nmea.parse_sentence(nmea.encode_rmc(epoch, lat, lon, valid))
    assert isinstance(got, nmea.Rmc)
    assert got.valid == valid and got.epoch_s == epoch
    assert got.lat == pytest.approx(lat, abs=1e-6) and got.lon == pytest.approx(lon, abs=1e-6)


@given(epoch_st, lat_st, lon_st, st.integers(0, 8), st.integers(0, 40))
def test_nmea_gga_roundtrip(epoch: float, lat: float, lon: float, q: int, sats: int) -> None:
    got = nmea.parse_sentence(nmea.encode_gga(epoch, lat, lon, q, sats, 12.5))
    assert isinstance(got, nmea.Gga)
    assert got.quality == q and got.satellites == sats and got.time_s == epoch % 86400
    assert got.lat == pytest.approx(lat, abs=1e-6)


@given(st.binary(max_size=300))
def test_nmea_decoder_never_raises(data: bytes) -> None:
    dec = nmea.SentenceDecoder()
    for s in dec.feed(data):
        assert isinstance(s, nmea.Rmc | nmea.Gga)


@given(epoch_st, st.integers(0, 60), st.integers(0, 1))
def test_nmea_single_corruption_always_detected(epoch: float, pos: int, flip: int) -> None:
    """Any one changed character between '$' and '*' breaks the XOR checksum."""
    s = bytearray(nmea.encode_rmc(epoch, 30.5, 104.1, True))
    i = 1 + pos % (s.index(b"*") - 1)
    new = ord("0") + (s[i] + 1 + flip) % 10 if s[i] != ord("0") + (s[i] + 1 + flip) % 10 else ord("Z")
    s[i] = new
    with pytest.raises(CodecError):
        nmea.parse_sentence(bytes(s))


# ---------------------------------------------------------------- AT --------------------------


@pytest.mark.parametrize(
    ("line", "fn", "expect"),
    [
        ("+CSQ: 20,99", at.parse_csq, (20, 99)),
        ("+CSQ: 99,99", at.parse_csq, (99, 99)),
        ("+CEREG: 0,1", at.parse_cereg, 1),
        ('+CEREG: 2,5,"1A2B","01C2D3E4",8', at.parse_cereg, 5),
        ("+CEREG: 3", at.parse_cereg, 3),
        ("+QMTOPEN: 0,0", at.parse_qmtopen, (0, 0)),
        ("+QMTCONN: 0,0,0", at.parse_qmtconn, (0, 0, 0)),
        ("+QMTCONN: 0,0,5", at.parse_qmtconn, (0, 0, 5)),
        ("+QMTPUB: 0,17,0", at.parse_qmtpub, (0, 17, 0)),
        ("+QMTSTAT: 0,1", at.parse_qmtstat, (0, 1)),
    ],
)
def test_at_reply_parsers(line: str, fn: object, expect: object) -> None:
    assert fn(line) == expect  # type: ignore[operator]


@pytest.mark.parametrize(("rssi", "dbm"), [(0, -113), (20, -73), (31, -51), (99, None)])
def test_csq_to_dbm(rssi: int, dbm: int | None) -> None:
    assert at.csq_to_dbm(rssi) == dbm


@pytest.mark.parametrize("line", ["+CSQ: 40,99", "+CSQ: x,1", "+CEREG: 0,9", "OK", '+CEREG: 0,"a"'])
def test_at_parsers_reject(line: str) -> None:
    fn = at.parse_csq if line.startswith("+CSQ") else at.parse_cereg
    with pytest.raises(CodecError):
        fn(line)


def test_at_reply_stream_with_prompt() -> None:
    dec = at.ReplyDecoder()
    assert dec.feed(b"AT+CSQ\r\r\n+CSQ: 1") == ["AT+CSQ"]
    assert dec.feed(b"8,99\r\n\r\nOK\r\n\r\n> ") == ["+CSQ: 18,99", "OK", ">"]


arg_st = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"'), max_size=20)


@given(st.sampled_from(["+QMTPUB", "+QMTOPEN", "+QMTCONN", "+CEREG"]), st.lists(arg_st, max_size=5))
def test_at_command_roundtrip(name: str, args: list[str]) -> None:
    cmd = at.AtCommand(name, "=", tuple(args)) if args else at.AtCommand(name, "?")
    line = at.format_command(cmd)
    got = at.parse_command(line)
    assert got.name == name and got.op == cmd.op
    assert [a.strip() for a in got.args] == [a.strip() for a in cmd.args]


@given(st.binary(max_size=200))
def test_at_decoders_never_raise(data: bytes) -> None:
    at.ReplyDecoder().feed(data)
    at.CommandDecoder().feed(data)
    for line in at.ReplyDecoder().feed(data):
        for fn in (at.parse_csq, at.parse_cereg, at.parse_qmtpub):
            try:
                fn(line)
            except CodecError:
                pass


def test_at_payload_mode_and_cancel() -> None:
    dec = at.CommandDecoder()
    assert dec.feed(b'AT+QMTPUB=0,1,1,0,"a/b"\r') == ['AT+QMTPUB=0,1,1,0,"a/b"']
    dec.data_mode = True
    assert dec.feed(b'{"x":1}\x1aAT+CSQ\r') == [b'{"x":1}', "AT+CSQ"]
    dec.data_mode = True
    assert dec.feed(b"junk\x1b") == [None]


@given(st.integers(0, 0xFEFF).filter(lambda w: not w & ld2410.ACK_FLAG), st.binary(max_size=20))
def test_ld2410_command_roundtrip(word: int, value: bytes) -> None:
    assert ld2410.decode_frame(ld2410.encode_command(ld2410.Command(word, value))) == ld2410.Command(
        word, value
    )


@given(
    st.integers(0, 0xFEFF).filter(lambda w: not w & ld2410.ACK_FLAG),
    st.integers(0, 1),
    st.binary(max_size=20),
)
def test_ld2410_ack_roundtrip(word: int, status: int, value: bytes) -> None:
    assert ld2410.decode_frame(ld2410.encode_ack(ld2410.Ack(word, status, value))) == ld2410.Ack(
        word, status, value
    )


@given(report_st, st.integers(1, 9), st.integers(1, 9), st.data())
def test_ld2410_engineering_roundtrip_any_gates(
    r: ld2410.RadarReport, n: int, m: int, data: st.DataObject
) -> None:
    mg = tuple(data.draw(st.lists(st.integers(0, 100), min_size=n, max_size=n)))
    sg = tuple(data.draw(st.lists(st.integers(0, 100), min_size=m, max_size=m)))
    eng = ld2410.RadarReport(
        *[
            getattr(r, f)
            for f in (
                "target_state",
                "moving_distance_cm",
                "moving_energy",
                "static_distance_cm",
                "static_energy",
                "detection_distance_cm",
            )
        ],
        True,
        mg,
        sg,
        50,
        1,
    )
    assert ld2410.decode_frame(ld2410.encode_report(eng)) == eng


RADAR_FAULTS = [
    "truncate", "bad_tail", "bad_marker", "bad_length", "state_range", "energy_range", "distance_range",
    "gate_range", "eng_overrun", "eng_truncate", "garbage",
]  # fmt: skip


@given(
    st.lists(st.tuples(st.sampled_from(RADAR_FAULTS), report_st, st.booleans()), min_size=1, max_size=30),
    st.integers(0, 2**31),
)
def test_simulator_faults_are_rejected_exactly_once(
    faults: list[tuple[str, ld2410.RadarReport, bool]], seed: int
) -> None:
    """The simulator's corruptions and the decoder agree: one rejection per corrupted frame, every
    valid frame decoded, whatever the mix and order, in basic and engineering mode."""
    import random

    from firmware_sim.base import garbage
    from firmware_sim.radar import ENGINEERING_FAULTS, corrupt_frame

    rng = random.Random(seed)
    stream = bytearray()
    corrupted = 0
    valid = []
    for kind, r, eng in faults:
        good = _eng() if eng else r
        frame = ld2410.encode_report(good)
        if kind == "garbage":
            stream += garbage(rng, rng.randrange(1, 16), b"\xf4\xfd\xf8")
        else:
            target = ld2410.encode_report(_eng()) if kind in ENGINEERING_FAULTS else frame
            stream += corrupt_frame(target, kind, rng)
            corrupted += 1
        stream += frame
        valid.append(good)
    dec = ld2410.FrameDecoder()
    out = dec.feed(bytes(stream))
    assert dec.rejected == corrupted
    assert out == valid


GPS_FAULTS = [
    "truncate", "bad_checksum", "garbage", "nan_lat", "nan_lon", "nan_speed", "lat_range", "lat_minutes",
    "lon_range", "lon_minutes", "bad_time", "bad_date", "speed_range",
]  # fmt: skip


@given(
    st.lists(st.tuples(st.sampled_from(GPS_FAULTS), epoch_st), min_size=1, max_size=20), st.integers(0, 2**31)
)
def test_gps_simulator_faults_rejected_exactly_once(faults: list[tuple[str, float]], seed: int) -> None:
    import random

    from firmware_sim.base import garbage
    from firmware_sim.gps import corrupt_sentence

    rng = random.Random(seed)
    stream = bytearray()
    corrupted = 0
    for kind, ep in faults:
        s = nmea.encode_rmc(ep, 30.5, 104.0, True)
        if kind == "garbage":
            stream += garbage(rng, rng.randrange(1, 16), b"$")
        else:
            stream += corrupt_sentence(s, kind, rng)
            corrupted += 1
        stream += s
    dec = nmea.SentenceDecoder()
    out = dec.feed(bytes(stream))
    assert dec.rejected == corrupted
    assert [x.epoch_s for x in out if isinstance(x, nmea.Rmc)] == [ep for _, ep in faults]


# ---------------------------------------------------------------- hostile fields ---------------
# A checksum (NMEA) or a header/tail (LD2410) only proves the bytes arrived as sent; the fields must
# still be refused when they are out of range or not finite, each counted under its kind.

GOOD_RMC = "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"
GOOD_GGA = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"


def _with_field(body: str, index: int, value: str) -> bytes:
    f = body.split(",")
    f[index] = value
    return nmea.frame(",".join(f))


@pytest.mark.parametrize(
    ("body", "index", "value", "kind", "words"),
    [
        (GOOD_RMC, 3, "-130.0000", "bad_field", "latitude '-130.0000'"),
        (GOOD_RMC, 3, "nan", "non_finite", "latitude is 'nan'"),
        (GOOD_RMC, 5, "inf", "non_finite", "longitude is 'inf'"),
        (GOOD_RMC, 3, "9507.0000", "out_of_range", "beyond 90 degrees"),
        (GOOD_RMC, 3, "4867.0380", "out_of_range", "minutes 67.038 are not below 60"),
        (GOOD_RMC, 5, "18131.0000", "out_of_range", "beyond 180 degrees"),
        (GOOD_RMC, 4, "Q", "bad_field", "hemisphere 'Q'"),
        (GOOD_RMC, 4, "", "bad_field", "hemisphere ''"),
        (GOOD_RMC, 7, "nan", "non_finite", "RMC speed is 'nan'"),
        (GOOD_RMC, 7, "-2.0", "out_of_range", "RMC speed -2.0"),
        (GOOD_RMC, 7, "1e3", "bad_field", "RMC speed '1e3'"),
        (GOOD_RMC, 8, "361.0", "out_of_range", "RMC course 361.0"),
        (GOOD_RMC, 1, "246000", "out_of_range", "time 246000"),
        (GOOD_RMC, 1, "12:519", "bad_field", "time '12:519'"),
        (GOOD_RMC, 9, "300294", "out_of_range", "RMC date 300294"),
        (GOOD_GGA, 9, "inf", "non_finite", "GGA altitude is 'inf'"),
        (GOOD_GGA, 9, "123456.7", "out_of_range", "GGA altitude 123456.7"),
        (GOOD_GGA, 8, "NaN", "non_finite", "GGA HDOP is 'NaN'"),
        (GOOD_GGA, 6, "9", "out_of_range", "fix quality 9"),
        (GOOD_GGA, 7, "1_0", "bad_field", "satellites '1_0'"),
        (GOOD_GGA, 5, "", "bad_field", "longitude hemisphere ''"),
        (GOOD_GGA, 4, "", "bad_field", "longitude '' is not dddmm.mmmm"),
    ],
)
def test_nmea_field_refused_by_kind(body: str, index: int, value: str, kind: str, words: str) -> None:
    """A valid checksum around a bad field: refused once under its kind, the next sentence decoded."""
    dec = nmea.SentenceDecoder()
    out = dec.feed(_with_field(body, index, value) + nmea.frame(GOOD_RMC))
    assert dec.rejects.by_kind == {kind: 1}, dec.rejects.last
    assert words in dec.rejects.example[kind]
    assert len(out) == 1 and isinstance(out[0], nmea.Rmc) and out[0].lat == pytest.approx(48.1173)


@settings(max_examples=400)
@given(
    st.sampled_from([GOOD_RMC, GOOD_GGA]),
    st.integers(1, 9),
    st.one_of(
        st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters=",*$"), max_size=14),
        st.sampled_from(
            ["nan", "-nan", "inf", "-Infinity", "1e308", "1e400", "0x1p3", "٣", "", "+0", "9" * 30]
        ),
        st.floats().map(str),
    ),
)
def test_nmea_any_field_value_never_gives_a_non_finite_or_absurd_fix(
    body: str, index: int, value: str
) -> None:
    """Whatever one field says (behind a valid checksum): refused, or decoded to finite in-range values."""
    dec = nmea.SentenceDecoder()
    try:
        line = _with_field(body, index, value)
    except UnicodeEncodeError:
        return  # not ASCII: cannot even be framed
    for s in dec.feed(line):
        assert s.lat is None or (math.isfinite(s.lat) and -90 <= s.lat <= 90)
        assert s.lon is None or (math.isfinite(s.lon) and -180 <= s.lon <= 180)
        for v in (getattr(s, "speed_knots", None), getattr(s, "alt_m", None), getattr(s, "hdop", None)):
            assert v is None or math.isfinite(v)
    assert dec.decoded + dec.rejected == 1


@given(st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False))
def test_nmea_format_never_writes_60_minutes(lat: float, lon: float) -> None:
    """The simulator's encoder rounds in minutes first: 30.99999999 is 3100.0000, not 3060.0000."""
    got = nmea.parse_sentence(nmea.encode_rmc(1.7e9, lat, lon, True))
    assert isinstance(got, nmea.Rmc)
    assert got.lat == pytest.approx(lat, abs=2e-6) and got.lon == pytest.approx(lon, abs=2e-6)


def _eng(gates: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)) -> ld2410.RadarReport:
    return ld2410.RadarReport(3, 120, 60, 110, 40, 120, True, gates, gates, 77, 1)


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (8, 7, "target state 7"),
        (11, 101, "moving energy 101"),
        (14, 250, "static energy 250"),
        (19 + 4, 101, "moving gate energy of gate 4 is 101"),
        (19 + 9 + 8, 255, "static gate energy of gate 8 is 255"),
        (19 + 18 + 1, 2, "OUT pin level 2"),
    ],
)
def test_ld2410_field_out_of_range_refused(offset: int, value: int, words: str) -> None:
    good = ld2410.encode_report(_eng())
    bad = bytearray(good)
    bad[offset] = value
    dec = ld2410.FrameDecoder()
    out = dec.feed(bytes(bad) + good)
    assert dec.rejects.by_kind == {"out_of_range": 1}
    assert words in dec.rejects.example["out_of_range"]
    assert out == [_eng()]


def test_ld2410_distance_beyond_range_refused() -> None:
    good = ld2410.encode_report(ld2410.RadarReport(1, 300, 50, 0, 0, 300))
    bad = bytearray(good)
    bad[9:11] = (ld2410.MAX_DISTANCE_CM + 1).to_bytes(2, "little")
    dec = ld2410.FrameDecoder()
    assert dec.feed(bytes(bad) + good) == [ld2410.decode_frame(good)]
    assert dec.rejects.by_kind == {"out_of_range": 1}


@pytest.mark.parametrize("extra", [1, 5, 20, 29])
def test_ld2410_overlong_engineering_frame_does_not_delay_the_next(extra: int) -> None:
    """A corrupted length that runs into the next frame: refused as soon as the next header is in,
    and the next frame comes out of the same ``feed`` that completed it, not one frame later."""
    good = ld2410.encode_report(_eng())
    bad = bytearray(good)
    bad[4:6] = (35 + extra).to_bytes(2, "little")
    basic = ld2410.encode_report(ld2410.RadarReport(1, 200, 50, 0, 0, 200))
    dec = ld2410.FrameDecoder()
    assert dec.feed(bytes(bad)) == []
    assert dec.feed(basic) == [ld2410.decode_frame(basic)]
    assert dec.rejected == 1 and dec.pending == 0


@settings(max_examples=300)
@given(report_st, st.booleans(), st.data())
def test_ld2410_no_header_inside_a_valid_report(
    r: ld2410.RadarReport, eng: bool, data: st.DataObject
) -> None:
    """The premise of the overrun rule: a report in range never contains a frame header."""
    if eng:
        n, m = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
        mg = tuple(data.draw(st.lists(st.integers(0, 100), min_size=n, max_size=n)))
        sg = tuple(data.draw(st.lists(st.integers(0, 100), min_size=m, max_size=m)))
        r = ld2410.RadarReport(
            r.target_state,
            r.moving_distance_cm,
            r.moving_energy,
            r.static_distance_cm,
            r.static_energy,
            r.detection_distance_cm,
            True,
            mg,
            sg,
            data.draw(st.integers(0, 255)),
            data.draw(st.integers(0, 1)),
        )
    raw = ld2410.encode_report(r)
    assert raw.find(ld2410.REPORT_HEAD, 1) < 0 and raw.find(ld2410.CMD_HEAD) < 0


mutation_st = st.tuples(
    st.sampled_from(["flip", "delete", "insert", "length"]),
    st.integers(0, 200),
    st.binary(min_size=1, max_size=3),
)


@settings(max_examples=500)
@given(st.lists(st.tuples(mutation_st, report_st, st.booleans()), min_size=1, max_size=8))
def test_ld2410_any_corruption_never_costs_the_next_frame(
    items: list[tuple[tuple[str, int, bytes], ld2410.RadarReport, bool]],
) -> None:
    """Each (corrupted frame, valid frame) pair fed frame by frame: the valid frame always comes out,
    in the feed that completes it; a corruption is refused or (rarely) decodes as a valid report."""
    dec = ld2410.FrameDecoder()
    for (how, where, junk), r, eng in items:
        good = ld2410.encode_report(_eng() if eng else r)
        bad = bytearray(ld2410.encode_report(r if eng else _eng()))
        i = where % len(bad)
        if how == "flip":
            bad[i] ^= junk[0] or 1
        elif how == "delete":
            del bad[i : i + len(junk)]
        elif how == "insert":
            bad[i:i] = junk
        else:
            bad[4:6] = (junk[0] % (ld2410.MAX_LEN + 1)).to_bytes(2, "little")
        before = (dec.rejected, dec.garbage_bytes)
        first = dec.feed(bytes(bad))
        out = dec.feed(good)
        assert out and out[-1] == ld2410.decode_frame(good)
        # the corrupted frame is accounted for: refused, garbage (its header broke) or decoded
        assert dec.rejected > before[0] or dec.garbage_bytes > before[1] or len(first) + len(out) > 1


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("+QMTSTAT: 0,x", "bad_reply"),
        ("+QMTSTAT: 0", "bad_reply"),
        ("+QMTSTAT: 0,1_0", "bad_reply"),
        ("+QMTSTAT: 0,8", "out_of_range"),
        ("+QMTSTAT: 6,1", "out_of_range"),
        ("+QMTSTAT: 0,0", "out_of_range"),
    ],
)
def test_qmtstat_refused_by_kind(line: str, kind: str) -> None:
    from edge.hardware.codecs import kind_of

    with pytest.raises(CodecError) as exc:
        at.parse_qmtstat(line)
    assert kind_of(exc.value) == kind


def test_qmtconn_odd_digits_are_a_codec_error() -> None:
    """'²'.isdigit() is True but int('²') raises ValueError: only ASCII digits count."""
    with pytest.raises(CodecError):
        at.parse_qmtconn("+QMTCONN: 0,0,²")


@given(st.text(max_size=40))
def test_at_parsers_raise_only_codec_errors(text: str) -> None:
    for prefix, fn in [
        ("+CSQ:", at.parse_csq),
        ("+CEREG:", at.parse_cereg),
        ("+QMTOPEN:", at.parse_qmtopen),
        ("+QMTCONN:", at.parse_qmtconn),
        ("+QMTPUB:", at.parse_qmtpub),
        ("+QMTSTAT:", at.parse_qmtstat),
    ]:
        try:
            got = fn(prefix + text)  # type: ignore[operator]
        except CodecError:
            continue
        assert all(isinstance(v, int) for v in (got if isinstance(got, tuple) else (got,)))


def test_reply_decoder_drops_an_overlong_line_whole() -> None:
    """Its tail never comes out as a line, and the line after it does, however the bytes are chunked."""
    stream = b"\r\n+" + b"A" * 3000 + b"\r\n+QMTSTAT: 0,1\r\n\xff\xfe\r\nOK\r\n"
    for chunk in (1, 7, 500, 4096):
        dec = at.ReplyDecoder()
        out: list[str] = []
        for i in range(0, len(stream), chunk):
            out += dec.feed(stream[i : i + chunk])
        assert out == ["+QMTSTAT: 0,1", "OK"], chunk
        assert dec.rejects.by_kind == {"too_long": 1, "not_ascii": 1}
