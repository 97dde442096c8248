"""Canonical bytes of a JSON value: RFC 8785 (JSON Canonicalization Scheme, JCS).

The signature of an event covers these bytes, so any verifier in any language gets the same bytes
from the same event with an off-the-shelf JCS library: object members sorted by their UTF-16 code
units, no whitespace, strings escaped minimally (only ``"``, ``\\`` and U+0000..U+001F), UTF-8,
and numbers written the way ECMAScript's ``Number.prototype.toString`` writes an IEEE double.

The fast path hands the value to ``json.dumps`` (C code) after one walk that proves it gives
the same bytes: Python writes shortest round-trip digits like ECMAScript, and differs only for
integral floats (``120.0`` vs ``120``), magnitudes below 1e-4 (``1e-05`` vs ``0.00001``), huge
integral floats and keys outside the Basic Multilingual Plane. Integral floats below 2**53 are
turned into ints on the way; anything else rare takes the slow, complete serializer below.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

MAX_SAFE_INT = 2**53 - 1  # JCS numbers are IEEE doubles: larger integers are not exact
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode
_ESCAPE = json.JSONEncoder(ensure_ascii=False).encode  # a str -> its minimal JSON string literal


class CanonicalError(ValueError):
    """The value has no canonical JSON form (NaN, infinity, an unsafe integer, a non-JSON type)."""


class _Slow(Exception):
    """The fast path cannot prove byte equality for this value."""


def format_number(x: float | int) -> str:
    """An IEEE double as ECMAScript's Number::toString writes it (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, bool):
        raise CanonicalError("a boolean is not a number")
    if isinstance(x, int):
        if abs(x) > MAX_SAFE_INT:
            raise CanonicalError(f"integer {x} is outside +-(2**53-1): it has no exact canonical JSON form")
        return str(x)
    f = float(x)
    if not math.isfinite(f):
        raise CanonicalError(f"{f!r} is not a JSON number")
    if f == 0.0:
        return "0"  # also -0.0
    sign = "-" if f < 0 else ""
    # repr gives the shortest digits that round-trip, like ECMAScript; only the layout differs.
    d = Decimal(repr(abs(f))).normalize()
    _, dig, exp = d.as_tuple()
    digits = "".join(map(str, dig))
    k = len(digits)
    n = int(exp) + k  # value = 0.digits x 10**n
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + ("e+" if e > 0 else "e-") + str(abs(e))
    return sign + out


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _slow(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_ESCAPE(v))
    elif isinstance(v, int | float):
        out.append(format_number(v))
    elif isinstance(v, dict):
        out.append("{")
        for i, key in enumerate(sorted(v, key=_key_checked)):
            if i:
                out.append(",")
            out.append(_ESCAPE(key))
            out.append(":")
            _slow(v[key], out)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _slow(item, out)
        out.append("]")
    else:
        raise CanonicalError(f"{type(v).__name__} is not a JSON value")


def _key_checked(k: Any) -> bytes:
    if not isinstance(k, str):
        raise CanonicalError(f"object keys must be strings, got {type(k).__name__}")
    return _utf16_key(k)


def _fast(v: Any) -> Any:
    """A copy that json.dumps(sort_keys=True) writes exactly as JCS does; raises _Slow otherwise."""
    if isinstance(v, dict):
        out = {}
        for k, item in v.items():
            if not isinstance(k, str):
                raise CanonicalError(f"object keys must be strings, got {type(k).__name__}")
            if not k.isascii():
                raise _Slow  # code-point order and UTF-16 order can differ
            out[k] = _fast(item)
        return out
    if isinstance(v, list | tuple):
        return [_fast(item) for item in v]
    if isinstance(v, float):
        if not math.isfinite(v):
            raise CanonicalError(f"{v!r} is not a JSON number")
        a = abs(v)
        if v.is_integer():
            if a <= MAX_SAFE_INT:
                return int(v)
            raise _Slow
        if a < 1e-4:
            raise _Slow
        return v
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SAFE_INT:
        raise CanonicalError(f"integer {v} is outside +-(2**53-1): it has no exact canonical JSON form")
    if v is None or isinstance(v, str | int):
        return v
    raise CanonicalError(f"{type(v).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (dicts, lists, str, int, float, bool, None)."""
    try:
        return _DUMPS(_fast(value)).encode("utf-8")
    except _Slow:
        pass
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"a string holds a lone surrogate ({exc.reason})") from None
    parts: list[str] = []
    _slow(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"a string holds a lone surrogate ({exc.reason})") from None
