"""NMEA 0183: RMC and GGA sentences with their XOR checksum.

``$GPRMC,hhmmss.ss,A,ddmm.mmmm,N,dddmm.mmmm,E,knots,course,ddmmyy,magvar,magdir[,mode]*hh\\r\\n``
``$GPGGA,hhmmss.ss,ddmm.mmmm,N,dddmm.mmmm,E,quality,sats,hdop,alt,M,geoid,M,age,station*hh\\r\\n``

Any talker id is accepted (GP, GN, GL, GA, BD). Other sentence types with a valid checksum are
counted in ``ignored``, not rejected. A checksum only proves the line arrived as sent, so every
field is also checked against its documented form and range: latitude ``ddmm.mmmm`` with
0..90 degrees and minutes below 60, longitude ``dddmm.mmmm`` within 180, a real time of day and
calendar date, speed, course, HDOP and altitude within bounds, and never ``nan``/``inf``.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

from edge.errors import CodecError
from edge.hardware.codecs import FieldError, RejectTally, kind_of

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


# Documented ranges. A field outside them is refused (kind ``out_of_range``), never clamped: a
# receiver that says 95 degrees north or 61 minutes is broken or the line is corrupted.
SPEED_MAX_KNOTS = 2000.0  # civil receivers stop reporting far below this
HDOP_MAX = 99.99
ALT_RANGE_M = (-1000.0, 50000.0)
MAX_SATELLITES = 99
MAX_QUALITY = 8

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_UINT = re.compile(r"\d{1,3}", re.ASCII)


def _non_finite_word(v: str) -> bool:
    low = v.strip().lower().lstrip("+-")
    return low.startswith(("nan", "inf"))


def _number(v: str, name: str, lo: float, hi: float) -> float | None:
    """A decimal field within [lo, hi]; '' -> None. Refuses nan/inf, exponents, '1_0' and the like."""
    if not v:
        return None
    if _non_finite_word(v):
        raise FieldError("non_finite", f"{name} is {v!r}, not a finite number")
    if not _DECIMAL.fullmatch(v):
        raise FieldError("bad_field", f"{name} {v!r} is not a decimal number")
    x = float(v)
    if not lo <= x <= hi:
        raise FieldError("out_of_range", f"{name} {v} is outside {lo:g}..{hi:g}")
    return x


def _latlon(value: str, hemi: str, deg_digits: int, hemis: str) -> float | None:
    """``ddmm.mmmm`` (lat, 2 degree digits) or ``dddmm.mmmm`` (lon, 3) and its hemisphere letter."""
    name = "latitude" if deg_digits == 2 else "longitude"
    if not value and not hemi:
        return None
    if _non_finite_word(value):
        raise FieldError("non_finite", f"{name} is {value!r}, not a finite number")
    if hemi not in tuple(hemis):
        raise FieldError("bad_field", f"{name} hemisphere {hemi!r} is not {' or '.join(hemis)}")
    m = re.fullmatch(rf"(\d{{{deg_digits}}})(\d\d(?:\.\d+)?)", value, re.ASCII)
    if m is None:
        raise FieldError(
            "bad_field", f"{name} {value!r} is not {'d' * deg_digits}mm.mmmm (digits only, no sign)"
        )
    deg, minutes = int(m.group(1)), float(m.group(2))
    limit = 90 if deg_digits == 2 else 180
    if minutes >= 60:
        raise FieldError("out_of_range", f"{name} {value}: minutes {minutes:g} are not below 60")
    out = deg + minutes / 60.0
    if out > limit:
        raise FieldError("out_of_range", f"{name} {value} is beyond {limit} degrees")
    return -out if hemi in "SW" else out


def format_lat(lat: float) -> tuple[str, str]:
    return _format_deg(lat, 2), ("S" if lat < 0 else "N")


def format_lon(lon: float) -> tuple[str, str]:
    return _format_deg(lon, 3), ("W" if lon < 0 else "E")


def _format_deg(value: float, deg_digits: int) -> str:
    # round the whole in minutes first, so 30.99999999 gives 3100.0000, never 3060.0000
    total_min = round(abs(value) * 60, 4)
    d = int(total_min // 60)
    return f"{d:0{deg_digits}d}{total_min - d * 60:07.4f}"


def _time_of_day(v: str) -> float | None:
    if not v:
        return None
    if not re.fullmatch(r"\d{6}(?:\.\d+)?", v, re.ASCII):
        raise FieldError("bad_field", f"time {v!r} is not hhmmss.ss")
    h, m, s = int(v[0:2]), int(v[2:4]), float(v[4:])
    if h > 23 or m > 59 or s >= 61:
        raise FieldError("out_of_range", f"time {v} is not a time of day")
    return h * 3600 + m * 60 + s


def _date(d: str) -> tuple[int, int, int]:
    if not re.fullmatch(r"\d{6}", d, re.ASCII):
        raise FieldError("bad_field", f"RMC date {d!r} is not ddmmyy")
    day, month, yy = int(d[0:2]), int(d[2:4]), int(d[4:6])
    year = 2000 + yy if yy < 80 else 1900 + yy
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise FieldError("out_of_range", f"RMC date {d} is not a calendar date")
    return year, month, day


def _uint(v: str, name: str, hi: int) -> int:
    if not v:
        return 0
    if not _UINT.fullmatch(v):
        raise FieldError("bad_field", f"{name} {v!r} is not a whole number")
    x = int(v)
    if x > hi:
        raise FieldError("out_of_range", f"{name} {x} is above {hi}")
    return x


def _parse_rmc(f: list[str]) -> Rmc:
    if len(f) < 10:
        raise FieldError("field_count", f"RMC has {len(f)} fields, expected at least 10")
    tod = _time_of_day(f[1])
    if f[2] not in ("A", "V"):
        raise FieldError("bad_field", f"RMC status {f[2]!r} is not A or V")
    lat = _latlon(f[3], f[4], 2, "NS")
    lon = _latlon(f[5], f[6], 3, "EW")
    if (lat is None) != (lon is None):
        raise FieldError("bad_field", "RMC carries a latitude without a longitude or the reverse")
    speed = _number(f[7], "RMC speed", 0.0, SPEED_MAX_KNOTS)
    course = _number(f[8], "RMC course", 0.0, 360.0)
    epoch: float | None = None
    if f[9]:
        year, month, day = _date(f[9])
        if tod is not None:
            epoch = calendar.timegm((year, month, day, 0, 0, 0)) + tod
    return Rmc(f[2] == "A", epoch, lat, lon, speed, course)


def _parse_gga(f: list[str]) -> Gga:
    if len(f) < 15:
        raise FieldError("field_count", f"GGA has {len(f)} fields, expected 15")
    tod = _time_of_day(f[1])
    lat = _latlon(f[2], f[3], 2, "NS")
    lon = _latlon(f[4], f[5], 3, "EW")
    if (lat is None) != (lon is None):
        raise FieldError("bad_field", "GGA carries a latitude without a longitude or the reverse")
    quality = _uint(f[6], "GGA fix quality", MAX_QUALITY)
    sats = _uint(f[7], "GGA satellites", MAX_SATELLITES)
    hdop = _number(f[8], "GGA HDOP", 0.0, HDOP_MAX)
    alt = _number(f[9], "GGA altitude", *ALT_RANGE_M)
    return Gga(tod, lat, lon, quality, sats, hdop, alt)


def parse_sentence(line: bytes) -> Sentence | None:
    """One sentence (with or without CR LF) -> Rmc / Gga, None for other types; raises CodecError
    (a ``FieldError`` whose ``kind`` says why)."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FieldError("not_ascii", "sentence is not ASCII") from None
    if not text.startswith("$") or len(text) < 9 or text[-3] != "*":
        raise FieldError("framing", f"not an NMEA sentence: {text[:20]!r}")
    body, hexsum = text[1:-3], text[-2:]
    if not body.isprintable():
        raise FieldError("framing", f"sentence carries control characters: {text[:20]!r}")
    if not re.fullmatch(r"[0-9A-Fa-f]{2}", hexsum):
        raise FieldError("checksum", f"bad checksum field {hexsum!r}")
    want = int(hexsum, 16)
    if checksum(body) != want:
        raise FieldError(
            "checksum", f"checksum mismatch: computed {checksum(body):02X}, sentence says {hexsum}"
        )
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
    Every started sentence ends up as exactly one of: decoded, ignored (another type) or one
    rejection in ``rejects`` (by kind: truncated, too_long, checksum, out_of_range, non_finite ...).
    """

    ignored: int = 0
    decoded: int = 0
    garbage_bytes: int = 0
    rejects: RejectTally = field(default_factory=RejectTally)
    _buf: bytearray = field(default_factory=bytearray)
    _in_sentence: bool = False

    @property
    def rejected(self) -> int:
        return self.rejects.total

    @property
    def last_error(self) -> str:
        return self.rejects.last

    def _reject(self, kind: str, why: str) -> None:
        self.rejects.add(kind, why)

    def feed(self, data: bytes) -> list[Sentence]:
        out: list[Sentence] = []
        i, n = 0, len(data)
        while i < n:
            if not self._in_sentence:
                j = data.find(b"$", i)
                stop = n if j < 0 else j
                seg = data[i:stop]
                self.garbage_bytes += len(seg) - seg.count(b"\r") - seg.count(b"\n")
                if j < 0:
                    break
                self._buf = bytearray(b"$")
                self._in_sentence = True
                i = j + 1
                continue
            jd, jn = data.find(b"$", i), data.find(b"\n", i)
            k = min((x for x in (jd, jn) if x >= 0), default=n)
            room = MAX_SENTENCE - len(self._buf)
            if k - i > room:
                self._reject("too_long", f"sentence longer than {MAX_SENTENCE} bytes")
                self._in_sentence = False
                i += room + 1  # the rest up to the next '$' is garbage
                continue
            self._buf += data[i:k]
            i = k
            if k == n:
                break
            if k == jd:  # a new '$' before the line end
                self._reject("truncated", "truncated sentence (a new '$' before the line end)")
                self._in_sentence = False
                continue
            i = k + 1
            self._in_sentence = False
            try:
                s = parse_sentence(bytes(self._buf))
            except CodecError as exc:
                self._reject(kind_of(exc), str(exc))
                continue
            if s is None:
                self.ignored += 1
            else:
                self.decoded += 1
                out.append(s)
        return out
