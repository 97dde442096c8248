"""Codec tests: known byte vectors, round trips and property-based fuzzing of every decoder."""

from __future__ import annotations

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


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["truncate", "bad_tail", "bad_marker", "bad_length", "garbage"]), report_st
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 2**31),
)
def test_simulator_faults_are_rejected_exactly_once(
    faults: list[tuple[str, ld2410.RadarReport]], seed: int
) -> None:
    """The simulator's corruptions and the decoder agree: one rejection per corrupted frame, every
    valid frame decoded, whatever the mix and order."""
    import random

    from firmware_sim.base import garbage
    from firmware_sim.radar import corrupt_frame

    rng = random.Random(seed)
    stream = bytearray()
    corrupted = 0
    for kind, r in faults:
        frame = ld2410.encode_report(r)
        if kind == "garbage":
            stream += garbage(rng, rng.randrange(1, 16), b"\xf4\xfd\xf8")
        else:
            stream += corrupt_frame(frame, kind, rng)
            corrupted += 1
        stream += frame
    dec = ld2410.FrameDecoder()
    out = dec.feed(bytes(stream))
    assert dec.rejected == corrupted
    assert out == [r for _, r in faults]


@given(
    st.lists(
        st.tuples(st.sampled_from(["truncate", "bad_checksum", "garbage"]), epoch_st), min_size=1, max_size=20
    ),
    st.integers(0, 2**31),
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
