"""RFC 8785 canonical bytes: the RFC's own number examples, and agreement with an independent
implementation (the rfc8785 package, a dev dependency) on generated JSON values."""

from __future__ import annotations

import math
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.events.canonical import CanonicalError, canonical_json, format_number

# IEEE-754 bit patterns and the text ECMAScript's Number::toString (and so JCS) writes for them: the
# layout boundaries (exponent at >= 1e21 and < 1e-6, integral values, subnormals, the largest double).
RFC_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("41b3de4355555556", "333333333.3333334"),
    ("c3b3de4355555556", "-1431655765333333500"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("4415af1d78b58c40", "100000000000000000000"),
]


@pytest.mark.parametrize(("bits", "text"), RFC_NUMBERS)
def test_number_layout_cases(bits: str, text: str) -> None:
    x = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(x) == text
    assert canonical_json([x]) == f"[{text}]".encode()


def test_members_sorted_by_utf16_units_and_minimal_escapes() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16 order, after it in code-point order.
    doc = {"\ufb33": 1, "\U0001f600": 2, "a": "line\nbreak \"q\" \\ \u2028 é", "b": [True, None, 1.0]}
    out = canonical_json(doc)
    assert out == rfc8785.dumps(doc)
    assert out.index("\U0001f600".encode()) < out.index("\ufb33".encode())
    assert b'"line\\nbreak \\"q\\" \\\\ \xe2\x80\xa8 \xc3\xa9"' in out
    assert b'[true,null,1]' in out


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_agrees_with_an_independent_rfc8785_implementation(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # lone surrogates in generated text: both must refuse
        with pytest.raises(CanonicalError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**53, {"k": object()}, {1: "x"}])
def test_values_without_a_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_json(bad)
