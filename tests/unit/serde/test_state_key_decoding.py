"""The hand-written StateKey decoder (restore reads one key per record) against fastavro."""

from __future__ import annotations

import io

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from connector.serde import Serdes, SingleObjectFraming
from connector.serde.catalog import STATE_KEY, current
from connector.serde.fastpath import fastavro_bytes
from connector.serde.state_scan import read_state_key

SCHEMA = current(STATE_KEY).plain
LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(LONG, st.none() | LONG)
def test_reads_what_fastavro_writes(event_id: int, meeting_id: int | None) -> None:
    body = fastavro_bytes(SCHEMA, {"event_id": event_id, "meeting_id": meeting_id})
    assert read_state_key(body, 0) == (event_id, meeting_id)
    assert read_state_key(b"\x00\x01" + body, 2) == (event_id, meeting_id)


@given(st.binary(max_size=24))
def test_any_bytes_are_read_as_fastavro_reads_them_or_left_to_it(body: bytes) -> None:
    fast = read_state_key(body, 0)
    if fast is None:
        return  # fastavro decides (and raises for what is not a key)
    datum = fastavro.schemaless_reader(io.BytesIO(body), SCHEMA, None)
    assert fast == (datum["event_id"], datum["meeting_id"])


def test_trailing_bytes_and_bad_branches_are_left_to_fastavro() -> None:
    body = fastavro_bytes(SCHEMA, {"event_id": 7, "meeting_id": 300})
    assert read_state_key(body + b"\x00", 0) is None
    assert read_state_key(b"\x0e\x04\x02", 0) is None  # union branch 2 does not exist
    assert read_state_key(b"\x0e", 0) is None  # cut short
    assert read_state_key(b"\xff" * 11 + b"\x00", 0) is None  # a varint longer than 64 bits


@given(LONG, st.none() | LONG)
def test_serdes_decodes_keys_through_the_fast_path(event_id: int, meeting_id: int | None) -> None:
    serdes = Serdes(SingleObjectFraming())
    assert serdes.decode_state_key(serdes.encode_state_key(event_id, meeting_id)) == (
        event_id,
        meeting_id,
    )
