"""Export parameter parsing and date-time rendering."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meetings_simulator.errors import BadParameter
from meetings_simulator.query import RowFilter, parse_export_query
from meetings_simulator.render import TimeFormatter


def test_defaults() -> None:
    q = parse_export_query({"event_id": "7"})
    assert (q.page, q.per_page, q.offset) == (1, 100, 0)
    assert q.filter == RowFilter(event_id=7)


def test_every_parameter() -> None:
    q = parse_export_query(
        {
            "event_id": "7",
            "page": "3",
            "per_page": "500",
            "account_id": "9",
            "time_from": "1",
            "time_to": "2",
            "created_from": "3",
            "created_to": "4",
            "last_modified_from": "5",
            "last_modified_to": "6",
            "order": "desc",
            "order_by": "time",
            "api_key": "ignored",
        }
    )
    assert q.offset == 1000
    assert q.filter == RowFilter(7, 9, 1, 2, 3, 4, 5, 6, "DESC", "time")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "1.5"}, "event_id"),
        ({"event_id": "abc"}, "event_id"),
        ({"event_id": "1", "page": "0"}, "page"),
        ({"event_id": "1", "page": "x"}, "page"),
        ({"event_id": "1", "per_page": "0"}, "per_page"),
        ({"event_id": "1", "per_page": "501"}, "per_page"),
        ({"event_id": "1", "per_page": "1e3"}, "per_page"),
        ({"event_id": "1", "account_id": "x"}, "account_id"),
        ({"event_id": "1", "time_from": "2024-01-01"}, "time_from"),
        ({"event_id": "1", "time_to": "1.0"}, "time_to"),
        ({"event_id": "1", "created_from": "now"}, "created_from"),
        ({"event_id": "1", "created_to": "-"}, "created_to"),
        ({"event_id": "1", "last_modified_from": "1_000"}, "last_modified_from"),
        ({"event_id": "1", "last_modified_to": "0x10"}, "last_modified_to"),
        ({"event_id": "1", "order": "UP"}, "order"),
        ({"event_id": "1", "order_by": "name"}, "order_by"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, str], parameter: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_export_query(params)
    assert info.value.parameter == parameter


@given(
    unix=st.integers(min_value=0, max_value=4_000_000_000),
    zone=st.sampled_from(
        [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
        ]
    ),
)
def test_time_formatter_matches_datetime_and_round_trips(unix: int, zone: str) -> None:
    fmt = TimeFormatter(ZoneInfo(zone))
    text = fmt.format(unix)
    assert text == datetime.fromtimestamp(unix, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    assert fmt.format(unix) == text  # cached path
