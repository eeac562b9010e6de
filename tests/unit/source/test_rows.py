"""Row mapping: the simulator's rows, time zones, precise errors, and no crash on any JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.kinds import WindowKind
from connector.core.model import Participant
from connector.errors import MalformedRowError
from connector.source.rows import FieldMapping, ParsedRow, RowError, RowParser, raw_text


def sim_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "meeting_id": 812,
        "event_id": 3,
        "status": "confirmed",
        "start_time": "2024-05-01 10:00:00",
        "end_time": "2024-05-01 10:30:00",
        "location": "Table 7",
        "created_at": "2024-04-20 08:15:00",
        "updated_at": "2024-04-21 09:00:01",
        "title": "Intro",
        "meeting_type": "b2b",
        "notes": None,
        "duration": 30,
        "account_id": 41,
        "participant_role": "requester",
        "participant_status": "accepted",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "company": "Engines",
        "job_title": "CTO",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()
UTC_PARSER = RowParser()


def test_maps_the_simulator_row_format() -> None:
    row = UTC_PARSER.parse(sim_row(), expected_event_id=3)
    assert row == ParsedRow(
        meeting_id=812,
        event_id=3,
        status="confirmed",
        start_at=1_714_557_600_000,
        end_at=1_714_559_400_000,
        location="Table 7",
        created_at=1_713_600_900_000,
        modified_at=1_713_690_001_000,
        meeting_extra=(
            ("duration", 30),
            ("meeting_type", "b2b"),
            ("notes", None),
            ("title", "Intro"),
        ),
        participant=Participant(
            41,
            "requester",
            "accepted",
            (
                ("company", "Engines"),
                ("email", "ada@example.com"),
                ("first_name", "Ada"),
                ("job_title", "CTO"),
                ("last_name", "Lovelace"),
            ),
        ),
    )


def test_local_times_are_converted_with_the_api_time_zone() -> None:
    berlin = RowParser(zone=ZoneInfo("Europe/Berlin"))
    row = berlin.parse(sim_row())
    assert row.start_at == 1_714_557_600_000 - 2 * 3_600_000  # CEST is UTC+2
    winter = berlin.parse(sim_row(start_time="2024-01-10 10:00:00"))
    assert winter.start_at == 1_704_877_200_000  # CET is UTC+1


@pytest.mark.parametrize(
    "value",
    ["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00", 1_714_557_600],
)
def test_accepts_iso_8601_and_unix_seconds(value: object) -> None:
    assert UTC_PARSER.parse(sim_row(start_time=value)).start_at == 1_714_557_600_000


def test_unknown_keys_are_kept_and_nested_values_as_json() -> None:
    row = UTC_PARSER.parse(sim_row(badge={"color": "red"}, tags=["a", 1]))
    extra = dict(row.participant.extra)
    assert extra["badge"] == '{"color":"red"}'
    assert extra["tags"] == '["a",1]'


def test_custom_mapping() -> None:
    mapping = FieldMapping(meeting_id="id", meeting_extra_keys=frozenset({"title", "room_size"}))
    raw = sim_row(room_size=4)
    raw["id"] = raw.pop("meeting_id")
    row = RowParser(mapping).parse(raw)
    assert row.meeting_id == 812
    assert dict(row.meeting_extra) == {"title": "Intro", "room_size": 4}
    assert "meeting_type" in dict(row.participant.extra)


@pytest.mark.parametrize(
    ("changes", "reason", "meeting_id"),
    [
        ({"account_id": "x"}, "account_id: expected a positive integer, got 'x'", 812),
        ({"start_time": _DROP}, "start_time: missing", 812),
        ({"meeting_id": None}, "meeting_id: expected a positive integer, got None", None),
        ({"start_time": "31/02/2024 25:61"}, "start_time: expected a date-time", 812),
        ({"start_time": "2024-02-31 10:00:00"}, "start_time: not a valid date-time", 812),
        ({"status": ""}, "status: expected a non-empty string, got ''", 812),
        ({"location": 7}, "location: expected a string or null, got 7", 812),
        ({"event_id": 4}, "event_id: 4 is not the requested 3", 812),
        ({"account_id": True}, "account_id: expected a positive integer, got True", 812),
        ({"updated_at": 1.5}, "updated_at: expected a date-time", 812),
        ({"created_at": -5}, "created_at: unix seconds -5 out of range", 812),
    ],
)
def test_errors_name_the_field_and_the_problem(
    changes: dict[str, Any], reason: str, meeting_id: int | None
) -> None:
    with pytest.raises(RowError) as caught:
        UTC_PARSER.parse(sim_row(**changes), expected_event_id=3)
    assert reason in caught.value.reason
    assert caught.value.meeting_id == meeting_id
    assert isinstance(caught.value, MalformedRowError)


def test_an_error_keeps_the_meeting_fields_that_did_parse() -> None:
    with pytest.raises(RowError) as caught:
        UTC_PARSER.parse(sim_row(meeting_id=None))
    assert caught.value.known["status"] == "confirmed"
    assert caught.value.known["modified_at"] == 1_713_690_001_000


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(RowError) as caught:
        UTC_PARSER.parse(sim_row(account_id="x", start_time=_DROP))
    assert caught.value.reason.count(";") == 1


@pytest.mark.parametrize("raw", [None, [], "row", 5, [sim_row()]])
def test_a_row_that_is_not_an_object(raw: object) -> None:
    with pytest.raises(RowError, match="row is not a JSON object"):
        UTC_PARSER.parse(raw)


def test_second_of_reads_the_window_kind() -> None:
    assert UTC_PARSER.second_of(sim_row(), WindowKind.CREATED) == 1_713_600_900
    assert UTC_PARSER.second_of(sim_row(), WindowKind.MODIFIED) == 1_713_690_001
    assert UTC_PARSER.second_of(sim_row(updated_at="nope"), WindowKind.MODIFIED) is None
    assert UTC_PARSER.second_of([], WindowKind.MODIFIED) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["2024-05-01 10:00:00", "2024-05-01T10:00:00+02:00", "", "0"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(sorted(sim_row())) | st.text(max_size=8), json_values))
def test_any_json_object_parses_or_fails_cleanly(raw: dict[str, Any]) -> None:
    _parse_or_fail(raw)


@given(st.data())
def test_any_mutation_of_a_valid_row_parses_or_fails_cleanly(data: st.DataObject) -> None:
    raw = sim_row()
    for key in data.draw(st.lists(st.sampled_from(sorted(raw)), max_size=5)):
        raw[key] = data.draw(json_values)
    _parse_or_fail(raw)


@given(json_values)
def test_any_json_value_parses_or_fails_cleanly(raw: object) -> None:
    _parse_or_fail(raw)


def _parse_or_fail(raw: object) -> None:
    for parser in (UTC_PARSER, RowParser(zone=ZoneInfo("America/New_York"))):
        try:
            row = parser.parse(raw, expected_event_id=3)
        except RowError as error:
            reason = error.reason
            json.loads(raw_text(raw))
            assert reason
        else:
            assert isinstance(row, ParsedRow)
            hash(row)  # a value: hashable all the way down


@given(st.data())
def test_the_fast_path_agrees_with_the_careful_one(data: st.DataObject) -> None:
    raw: dict[Any, Any] = sim_row()
    for key in data.draw(st.lists(st.sampled_from(sorted(raw)), max_size=3)):
        raw[key] = data.draw(json_values)
    if data.draw(st.booleans()):
        raw[data.draw(st.integers() | st.text(max_size=5))] = data.draw(json_values)
    try:
        careful: ParsedRow | str = UTC_PARSER._parse_careful(raw, 3)
    except RowError as error:
        careful = error.reason
    try:
        fast: ParsedRow | str = UTC_PARSER.parse(raw, 3)
    except RowError as error:
        fast = error.reason
    assert fast == careful


# --- caches: what one parser remembers never changes what a row parses to ------------------


extra_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, 2**64, "1", "", "True"]),
    st.text(max_size=3),
)
sim_keys = sorted(sim_row())


@given(
    st.lists(
        st.tuples(
            st.sampled_from([sim_keys, sim_keys[::-1], sim_keys[1:]]),
            st.dictionaries(st.sampled_from(["duration", "email", "title", "x"]), extra_values),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_a_parser_that_saw_other_rows_parses_a_row_as_a_fresh_one_does(
    rows: list[tuple[list[str], dict[str, Any]]],
) -> None:
    """Interned extras and cached row shapes never hand out another row's values: 1,
    True and 1.0 (or 0.0 and -0.0) are equal but stay what they were."""
    parser = RowParser()
    for order, changes in rows:
        base = sim_row(**changes)
        raw = {key: base[key] for key in order if key in base}
        raw.update((k, v) for k, v in base.items() if k not in raw)
        seen, fresh = _outcome(parser, raw), _outcome(RowParser(), raw)
        assert repr(seen) == repr(fresh)  # repr tells 1 from True and 1.0, 0.0 from -0.0


def _outcome(parser: RowParser, raw: dict[str, Any]) -> ParsedRow | str:
    try:
        return parser.parse(raw, 3)
    except RowError as error:
        return error.reason


def test_extras_of_one_row_shape_keep_their_values_and_exact_types() -> None:
    first = UTC_PARSER.parse(sim_row(meeting_id=1))
    again = UTC_PARSER.parse(sim_row(meeting_id=2, participant_status="declined"))
    assert again.participant.extra == first.participant.extra
    assert again.meeting_extra == first.meeting_extra
    other = UTC_PARSER.parse(sim_row(meeting_id=3, duration=True))
    one = UTC_PARSER.parse(sim_row(meeting_id=4, duration=1))
    assert dict(other.meeting_extra)["duration"] is True  # not the 1 of an equal tuple
    assert type(dict(one.meeting_extra)["duration"]) is int


def _formatted(pattern: str, *parts: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda p: pattern.format(*p))


day_texts = _formatted(
    "{:04d}-{:02d}-{:02d}",
    st.integers(0, 10_000) | st.sampled_from([1970, 2024]),
    st.integers(0, 13) | st.just(2),
    st.integers(0, 32) | st.sampled_from([1, 29, 31]),
) | st.sampled_from(["2024-05-0x", "2024-5-011"])
clock_texts = _formatted(
    "{:02d}:{:02d}:{:02d}", st.integers(0, 24), st.integers(0, 61), st.integers(0, 61)
) | st.sampled_from(["10:00:0x", "1:00:000", "23:59:59"])


@given(st.lists(day_texts, max_size=4), st.lists(clock_texts, max_size=4))
def test_cached_days_and_times_of_day_convert_as_datetime_does(
    days: list[str], clocks: list[str]
) -> None:
    """Any mix of cached day and time-of-day halves: the value datetime gives, or the
    error a parser that never saw another date-time gives."""
    parser = RowParser()
    for text in (f"{day} {clock}" for day in days for clock in clocks):
        try:
            expected: int | str = int(
                datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            )
        except ValueError:
            expected = _outcome(RowParser(), sim_row(start_time=text))  # type: ignore[assignment]
            assert isinstance(expected, str)
        got = _outcome(parser, sim_row(start_time=text))
        if isinstance(got, ParsedRow):
            assert got.start_at == expected * 1000  # type: ignore[operator]
        else:
            assert got == expected
