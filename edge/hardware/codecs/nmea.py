"""NMEA 0183: RMC and GGA sentences with their XOR checksum.

``$GPRMC,hhmmss.ss,A,ddmm.mmmm,N,dddmm.mmmm,E,knots,course,ddmmyy,magvar,magdir[,mode]*hh\\r\\n``
``$GPGGA,hhmmss.ss,ddmm.mmmm,N,dddmm.mmmm,E,quality,sats,hdop,alt,M,geoid,M,age,station*hh\\r\\n``

Any talker id is accepted (GP, GN, GL, GA, BD). Other sentence types with a valid checksum are
counted in ``ignored``, not rejected.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from edge.errors import CodecError

MAX_SENTENCE = 120  # the standard says 82 characters; some receivers send a little more


@dataclass(frozen=True, slots=True)
class Rmc:
    """Recommended minimum: time, validity, position, speed, date."""

    valid: bool
    epoch_s: float | None  # UTC epoch seconds from time + date, None if either is empty
    lat: float | None
    lon: float | None
    speed_knots: float | None = None
    course_deg: float | None = None


@dataclass(frozen=True, slots=True)
class Gga:
    """Fix data: time of day, position, quality, satellites, altitude."""

    time_s: float | None  # seconds after UTC midnight
    lat: float | None
    lon: float | None
    quality: int  # 0 = no fix
    satellites: int
    hdop: float | None
    alt_m: float | None


Sentence = Rmc | Gga


def checksum(body: str) -> int:
    """XOR of every character between '$' and '*'."""
    c = 0
    for ch in body.encode("ascii"):
        c ^= ch
    return c


def frame(body: str) -> bytes:
    """'GPRMC,...' -> b'$GPRMC,...*hh\\r\\n'."""
    return f"${body}*{checksum(body):02X}\r\n".encode("ascii")


def _latlon(value: str, hemi: str, deg_digits: int, hemis: str) -> float | None:
    if not value and not hemi:
        return None
    if hemi not in hemis or len(value) < deg_digits + 2:
        raise CodecError(f"bad coordinate {value!r},{hemi!r}")
    try:
        deg = int(value[:deg_digits])
        minutes = float(value[deg_digits:])
    except ValueError:
        raise CodecError(f"bad coordinate {value!r}") from None
    if minutes >= 60 or minutes < 0:
        raise CodecError(f"coordinate minutes {minutes} out of range")
    out = deg + minutes / 60.0
    limit = 90.0 if deg_digits == 2 else 180.0
    if out > limit:
        raise CodecError(f"coordinate {out} out of range")
    return -out if hemi in "SW" else out


def format_lat(lat: float) -> tuple[str, str]:
    a = abs(lat)
    d = int(a)
    return f"{d:02d}{(a - d) * 60:07.4f}", ("S" if lat < 0 else "N")


def format_lon(lon: float) -> tuple[str, str]:
    a = abs(lon)
    d = int(a)
    return f"{d:03d}{(a - d) * 60:07.4f}", ("W" if lon < 0 else "E")


def _time_of_day(v: str) -> float | None:
    if not v:
        return None
    try:
        h, m, s = int(v[0:2]), int(v[2:4]), float(v[4:])
    except ValueError:
        raise CodecError(f"bad time {v!r}") from None
    if len(v) < 6 or h > 23 or m > 59 or not 0 <= s < 61:
        raise CodecError(f"bad time {v!r}")
    return h * 3600 + m * 60 + s


def _float(v: str) -> float | None:
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise CodecError(f"bad number {v!r}") from None


def _parse_rmc(f: list[str]) -> Rmc:
    if len(f) < 10:
        raise CodecError(f"RMC has {len(f)} fields, expected at least 10")
    tod = _time_of_day(f[1])
    if f[2] not in ("A", "V"):
        raise CodecError(f"RMC status {f[2]!r} is not A or V")
    lat = _latlon(f[3], f[4], 2, "NS")
    lon = _latlon(f[5], f[6], 3, "EW")
    epoch: float | None = None
    if tod is not None and f[9]:
        d = f[9]
        try:
            day, month, yy = int(d[0:2]), int(d[2:4]), int(d[4:6])
        except ValueError:
            raise CodecError(f"bad RMC date {d!r}") from None
        if len(d) != 6 or not (1 <= day <= 31 and 1 <= month <= 12):
            raise CodecError(f"bad RMC date {d!r}")
        year = 2000 + yy if yy < 80 else 1900 + yy
        epoch = calendar.timegm((year, month, day, 0, 0, 0)) + tod
    return Rmc(f[2] == "A", epoch, lat, lon, _float(f[7]), _float(f[8]))


def _parse_gga(f: list[str]) -> Gga:
    if len(f) < 15:
        raise CodecError(f"GGA has {len(f)} fields, expected 15")
    try:
        quality = int(f[6]) if f[6] else 0
        sats = int(f[7]) if f[7] else 0
    except ValueError:
        raise CodecError(f"bad GGA quality/satellites {f[6]!r},{f[7]!r}") from None
    return Gga(
        _time_of_day(f[1]),
        _latlon(f[2], f[3], 2, "NS"),
        _latlon(f[4], f[5], 3, "EW"),
        quality,
        sats,
        _float(f[8]),
        _float(f[9]),
    )


def parse_sentence(line: bytes) -> Sentence | None:
    """One sentence (with or without CR LF) -> Rmc / Gga, None for other types; raises CodecError."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CodecError("sentence is not ASCII") from None
    if not text.startswith("$") or len(text) < 9 or text[-3] != "*":
        raise CodecError(f"not an NMEA sentence: {text[:20]!r}")
    body, hexsum = text[1:-3], text[-2:]
    try:
        want = int(hexsum, 16)
    except ValueError:
        raise CodecError(f"bad checksum field {hexsum!r}") from None
    if checksum(body) != want:
        raise CodecError(f"checksum mismatch: computed {checksum(body):02X}, sentence says {hexsum}")
    fields = body.split(",")
    kind = fields[0][2:] if len(fields[0]) == 5 else ""
    if kind == "RMC":
        return _parse_rmc(fields)
    if kind == "GGA":
        return _parse_gga(fields)
    return None


def _hhmmss(epoch_s: float) -> tuple[time.struct_time, str]:
    cs = round(epoch_s * 100)
    tm = time.gmtime(cs // 100)
    return tm, f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.{cs % 100:02d}"


def encode_rmc(
    epoch_s: float,
    lat: float | None,
    lon: float | None,
    valid: bool,
    speed_knots: float = 0.0,
    talker: str = "GP",
) -> bytes:
    tm, hhmmss = _hhmmss(epoch_s)
    date = f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}"
    la, ns = format_lat(lat) if lat is not None else ("", "")
    lo, ew = format_lon(lon) if lon is not None else ("", "")
    status = "A" if valid else "V"
    mode = "A" if valid else "N"
    return frame(f"{talker}RMC,{hhmmss},{status},{la},{ns},{lo},{ew},{speed_knots:.1f},,{date},,,{mode}")


def encode_gga(
    epoch_s: float,
    lat: float | None,
    lon: float | None,
    quality: int,
    sats: int,
    alt_m: float | None,
    talker: str = "GP",
) -> bytes:
    _tm, hhmmss = _hhmmss(epoch_s)
    la, ns = format_lat(lat) if lat is not None else ("", "")
    lo, ew = format_lon(lon) if lon is not None else ("", "")
    hdop = "0.9" if quality else ""
    alt = f"{alt_m:.1f}" if alt_m is not None and quality else ""
    return frame(f"{talker}GGA,{hhmmss},{la},{ns},{lo},{ew},{quality},{sats:02d},{hdop},{alt},M,-32.0,M,,")


@dataclass(slots=True)
class SentenceDecoder:
    """Streaming decoder: bytes in, sentences out; malformed sentences are counted and skipped.

    A sentence "exists" once its '$' has been seen; it ends at LF. A '$' before the LF means the
    previous sentence was truncated (rejected). Bytes outside sentences count as ``garbage_bytes``.
    """

    rejected: int = 0
    ignored: int = 0
    decoded: int = 0
    garbage_bytes: int = 0
    last_error: str = ""
    _buf: bytearray = field(default_factory=bytearray)
    _in_sentence: bool = False

    def _reject(self, why: str) -> None:
        self.rejected += 1
        self.last_error = why

    def feed(self, data: bytes) -> list[Sentence]:
        out: list[Sentence] = []
        for b in data:
            if b == 0x24:  # '$'
                if self._in_sentence:
                    self._reject("truncated sentence (a new '$' before the line end)")
                self._buf = bytearray(b"$")
                self._in_sentence = True
            elif not self._in_sentence:
                if b not in (0x0D, 0x0A):
                    self.garbage_bytes += 1
            elif b == 0x0A:
                self._in_sentence = False
                try:
                    s = parse_sentence(bytes(self._buf))
                except CodecError as exc:
                    self._reject(str(exc))
                    continue
                if s is None:
                    self.ignored += 1
                else:
                    self.decoded += 1
                    out.append(s)
            else:
                self._buf.append(b)
                if len(self._buf) > MAX_SENTENCE:
                    self._reject(f"sentence longer than {MAX_SENTENCE} bytes")
                    self._in_sentence = False
        return out
