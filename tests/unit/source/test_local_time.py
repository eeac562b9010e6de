"""Daylight saving: every local date-time the API renders maps back to its instant.

Over every transition 2020-2035 of zones with an hour's shift north and south of the
equator, a 30-minute one (Lord Howe), one at midnight (Santiago: the repeated hour spans
two dates) and one with a 45-minute offset (Chatham). The API renders instants as local wall
time without an offset (as the simulator's ``--timezone`` does); a row returned for a window
has that window's time inside its bounds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.kinds import WindowKind
from connector.source.local_time import instants, resolve_interval
from connector.source.rows import RowParser
from connector.source.windows import Window

ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
)
FIRST = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
LAST = int(datetime(2036, 1, 1, tzinfo=UTC).timestamp())


def _offset(zone: ZoneInfo, unix: int) -> int:
    delta = datetime.fromtimestamp(unix, zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


@cache
def transitions(name: str) -> tuple[tuple[int, int], ...]:
    """(first unix second of the new offset, shift in seconds) of every transition."""
    zone = ZoneInfo(name)
    found = []
    step = 6 * 3600
    for t in range(FIRST, LAST, step):
        before, after = _offset(zone, t), _offset(zone, t + step)
        if before != after:
            lo, hi = t, t + step  # offset(lo) == before, offset(hi) == after
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(zone, mid) == before else (lo, mid)
            found.append((hi, after - before))
    return tuple(found)


ALL = [(name, t, shift) for name in ZONES for t, shift in transitions(name)]
FALL_BACKS = [x for x in ALL if x[2] < 0]


def test_every_zone_has_its_transitions_found() -> None:
    for name in ZONES:
        found = transitions(name)
        assert len(found) >= 2 * 14, name  # two a year (Santiago skips none here either)
        assert any(shift < 0 for _, shift in found)
    assert {abs(shift) for name, _, shift in ALL if name == "Australia/Lord_Howe"} == {1800}


def render(unix: int, name: str) -> str:
    return datetime.fromtimestamp(unix, ZoneInfo(name)).strftime("%Y-%m-%d %H:%M:%S")


def row(**times: str) -> dict[str, Any]:
    return {
        "meeting_id": 812,
        "event_id": 3,
        "status": "confirmed",
        "start_time": times.get("start", "2030-06-01 10:00:00"),
        "end_time": times.get("end", "2030-06-01 10:30:00"),
        "location": "Table 7",
        "created_at": times["created"],
        "updated_at": times["modified"],
        "account_id": 41,
        "participant_role": "requester",
        "participant_status": "accepted",
    }


near = st.integers(-2 * 3600, 2 * 3600)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FALL_BACKS), near, st.data())
def test_a_modified_window_decides_which_occurrence_a_repeated_time_is(
    transition: tuple[str, int, int], offset: int, data: st.DataObject
) -> None:
    name, at, shift = transition
    repeated = -shift
    modified = at + offset
    created = modified - data.draw(st.integers(0, 3 * repeated), label="age")
    # a window narrower than the repeated interval, holding the row's modified second
    before = data.draw(st.integers(0, repeated - 1), label="before")
    after = data.draw(st.integers(0, repeated - 1 - before), label="after")
    window = Window(WindowKind.MODIFIED, modified - before, modified + after)
    parser = RowParser(zone=ZoneInfo(name))

    parsed = parser.parse(
        row(created=render(created, name), modified=render(modified, name)), 3, window
    )

    assert parsed.modified_at == modified * 1000
    assert parsed.created_at <= parsed.modified_at
    assert render(parsed.created_at // 1000, name) == render(created, name)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FALL_BACKS), near, st.data())
def test_a_created_window_decides_which_occurrence_a_repeated_time_is(
    transition: tuple[str, int, int], offset: int, data: st.DataObject
) -> None:
    name, at, shift = transition
    repeated = -shift
    created = at + offset
    modified = created + data.draw(st.sampled_from([0, 1, 59, repeated - 1, repeated, 7200]))
    before = data.draw(st.integers(0, repeated - 1), label="before")
    after = data.draw(st.integers(0, repeated - 1 - before), label="after")
    window = Window(WindowKind.CREATED, created - before, created + after)
    parser = RowParser(zone=ZoneInfo(name))

    parsed = parser.parse(
        row(created=render(created, name), modified=render(modified, name)), 3, window
    )

    assert parsed.created_at == created * 1000
    assert parsed.modified_at >= parsed.created_at
    assert render(parsed.modified_at // 1000, name) == render(modified, name)
    if modified == created:  # just created: both times are the same instant
        assert parsed.modified_at == modified * 1000


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALL), near, st.integers(0, 3 * 3600), st.booleans())
def test_appointment_times_never_end_before_they_start(
    transition: tuple[str, int, int], offset: int, duration: int, windowed: bool
) -> None:
    name, at, shift = transition
    start = at + offset
    end = start + duration
    window = Window(WindowKind.MODIFIED, FIRST, FIRST) if windowed else None
    parser = RowParser(zone=ZoneInfo(name))
    raw = row(
        start=render(start, name),
        end=render(end, name),
        created="2019-06-01 10:00:00",
        modified="2019-06-01 10:00:00",
    )

    parsed = parser.parse(raw, 3, window)

    assert parsed.end_at >= parsed.start_at
    assert render(parsed.start_at // 1000, name) == render(start, name)
    assert render(parsed.end_at // 1000, name) == render(end, name)
    if duration < abs(shift):  # shorter than the repeated interval: the duration is kept
        assert parsed.end_at - parsed.start_at == duration * 1000


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.integers(FIRST, LAST))
def test_every_rendered_time_round_trips_within_a_one_second_window(name: str, unix: int) -> None:
    parser = RowParser(zone=ZoneInfo(name))
    text = render(unix, name)
    raw = row(created=text, modified=text)
    for kind in WindowKind:
        parsed = parser.parse(raw, 3, Window(kind, unix, unix))
        assert parsed.created_at == parsed.modified_at == unix * 1000


def test_the_cache_never_answers_a_repeated_time_without_its_context() -> None:
    # New York, 2024-11-03: 01:30 EDT is 05:30Z, 01:30 EST is 06:30Z
    parser = RowParser(zone=ZoneInfo("America/New_York"))
    raw = row(created="2024-11-03 01:30:00", modified="2024-11-03 01:30:00")
    first, second = 1_730_611_800, 1_730_615_400
    for _ in range(3):  # the text is cached after the first parse
        for unix in (first, second):
            for kind in WindowKind:
                window = Window(kind, unix - 60, unix + 60)
                parsed = parser.parse(raw, 3, window)
                assert parsed.modified_at == parsed.created_at == unix * 1000
                assert parser._parse_careful(raw, 3, window) == parsed
                assert parser.second_of(raw, kind, Window(kind, unix - 60, unix + 60)) == unix


def test_a_time_in_the_spring_forward_gap_is_read_as_the_clock_before_the_change() -> None:
    parser = RowParser(zone=ZoneInfo("America/New_York"))
    # 2024-03-10 02:30 does not exist in New York: read as 03:30 EDT (07:30Z)
    parsed = parser.parse(row(created="2024-03-10 02:30:00", modified="2024-03-10 02:30:00"))
    assert parsed.modified_at == 1_710_055_800_000


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        ((0,), (10,), (0, 10)),
        ((0, 100), (50,), (0, 50)),  # 01:30-02:00 after the fall-back: 30 minutes
        ((0, 100), (80, 180), (0, 80)),  # both repeated: the earlier occurrence
        ((100,), (40, 140), (100, 140)),  # never ends before it starts
        ((100,), (40,), (100, 40)),  # reversed in the data itself: left as it is
    ],
)
def test_the_rule_where_nothing_tells(
    earlier: tuple[int, ...], later: tuple[int, ...], expected: tuple[int, int]
) -> None:
    assert resolve_interval(earlier, later) == expected


def test_instants_of_a_repeated_a_gap_and_an_ordinary_time() -> None:
    ny = ZoneInfo("America/New_York")
    assert instants(datetime(2024, 11, 3, 1, 30), ny) == (1_730_611_800_000, 1_730_615_400_000)
    assert instants(datetime(2024, 3, 10, 2, 30), ny) == (1_710_055_800_000,)
    assert instants(datetime(2024, 7, 1, 12, 0), ny) == (1_719_849_600_000,)
