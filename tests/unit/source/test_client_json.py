"""The client parses bodies with orjson, falling back to ``json``: the bodies accepted,
their values and the errors raised are exactly those of ``json.loads``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.source.export_page import loads_json

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # beyond: orjson's float (see the test below)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_same_values_as_json(value: Any) -> None:
    body = json.dumps(value).encode()
    assert loads_json(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"total": NaN}',  # json accepts NaN, orjson does not
        b'{"total": 1e400}',  # infinity
        b'{"name": "\\ud800"}',  # a lone surrogate
        b'\xef\xbb\xbf{"total": 1}',  # a UTF-8 byte order mark
        '{"total": 1}'.encode("utf-16"),
    ],
)
def test_what_only_json_accepts_is_still_accepted(body: bytes) -> None:
    got, want = loads_json(body), json.loads(body)
    assert repr(got) == repr(want)  # NaN != NaN: compare the text


def test_an_integer_beyond_64_bits_is_read_as_a_float() -> None:
    # The one documented difference from json.loads (see loads_json).
    assert loads_json(b'{"n": 18446744073709551615}') == {"n": 2**64 - 1}
    assert loads_json(b'{"n": 18446744073709551616}') == {"n": float(2**64)}
    assert loads_json(b'{"n": -9223372036854775808}') == {"n": -(2**63)}
    assert loads_json(b'{"n": -9223372036854775809}') == {"n": float(-(2**63) - 1)}


@pytest.mark.parametrize("body", [b"", b"{", b'{"data": [1, 2', b"<html>", b"\xff\xfe\xfa"])
def test_what_json_refuses_raises_what_json_raises(body: bytes) -> None:
    with pytest.raises(Exception) as expected:
        json.loads(body)
    with pytest.raises(type(expected.value)):
        loads_json(body)
