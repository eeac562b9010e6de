"""One date-time format for every command: ISO 8601 UTC, a fraction only when there is one."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from connector.core.timestamps import iso_millis, iso_seconds, iso_utc
from connector.serde.records import jsonable

MILLIS = st.integers(min_value=0, max_value=253_402_300_799_999)  # up to 9999-12-31


def test_whole_seconds_have_no_fraction() -> None:
    assert iso_seconds(1_748_770_200) == "2025-06-01T09:30:00Z"
    assert iso_millis(1_748_770_200_000) == "2025-06-01T09:30:00Z"
    assert iso_millis(1_748_770_200_120) == "2025-06-01T09:30:00.120Z"


def test_an_offset_is_converted_to_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert iso_utc(dt.datetime(2025, 6, 1, 11, 30, tzinfo=paris)) == "2025-06-01T09:30:00Z"


def test_microseconds_of_a_foreign_schema_are_kept() -> None:
    value = dt.datetime(2025, 6, 1, 9, 30, 0, 123_456, tzinfo=dt.UTC)
    assert iso_utc(value) == "2025-06-01T09:30:00.123456Z"


@given(MILLIS)
def test_the_format_reads_back_to_the_same_instant(millis: int) -> None:
    text = iso_millis(millis)
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    assert round(parsed.timestamp() * 1000) == millis
    assert text.endswith("Z")
    assert ("." in text) == (millis % 1000 != 0)


@given(MILLIS)
def test_decoded_records_use_the_export_format(millis: int) -> None:
    # tail prints what jsonable makes of a decoded timestamp-millis; export prints iso_millis
    value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    assert jsonable({"at": value}) == {"at": iso_millis(millis)}
