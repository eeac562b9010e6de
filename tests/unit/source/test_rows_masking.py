"""The field rules as rows are parsed: both paths mask alike, dead letters keep masked rows,
reasons never quote a masked value, and the reader parses with the settings' rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config.settings import ApiSettings
from connector.core.masking import HASH_PREFIX, REDACTED, Masker, parse_rules
from connector.source.reader import WindowReader
from connector.source.rows import ParsedRow, RowError, RowParser
from tests.unit.source.test_reader import EVENT, WINDOW, FakeApi, rows_of
from tests.unit.source.test_rows import json_values, sim_row

KEY = b"0123456789abcdef0123456789abcdef"
RULES = parse_rules(
    ["participant.email=hash", "participant.last_name=redact", "notes=drop", "location=hash"]
)
MASKER = Masker(RULES, KEY)
PARSER = RowParser(masker=MASKER)
CLEAR = ("ada@example.com", "Lovelace", "call her back", "Table 7")


def _clear_values(text: str) -> list[str]:
    return [value for value in CLEAR if value in text]


def test_a_row_is_masked_as_it_is_parsed() -> None:
    row = PARSER.parse(sim_row(notes="call her back"), expected_event_id=3)
    assert row.location == MASKER.hash("Table 7")
    assert row.meeting_extra == (("duration", 30), ("meeting_type", "b2b"), ("title", "Intro"))
    extra = dict(row.participant.extra)
    assert extra["email"] == MASKER.hash("ada@example.com")
    assert extra["email"].startswith(HASH_PREFIX)
    assert extra["last_name"] == REDACTED
    assert extra["first_name"] == "Ada"  # no rule
    assert _clear_values(repr(row)) == []


def test_the_careful_path_masks_as_the_fast_one_does() -> None:
    raw = sim_row(notes="call her back")
    assert PARSER._parse_careful(raw, 3) == PARSER.parse(raw, 3)
    # a nested value takes the careful path: hashed as the JSON text extra keeps
    nested = PARSER.parse(sim_row(email={"work": "ada@example.com"}), 3)
    email = dict(nested.participant.extra)["email"]
    assert email == MASKER.hash(json.dumps({"work": "ada@example.com"}, separators=(",", ":")))
    # a string id takes the careful path too
    assert PARSER.parse(sim_row(meeting_id="812", notes="x"), 3) == PARSER.parse(sim_row(), 3)


def test_null_stays_null_and_unmasked_parsers_are_unchanged() -> None:
    row = PARSER.parse(sim_row(location=None, email=None, last_name=None), 3)
    assert row.location is None
    extra = dict(row.participant.extra)
    assert extra["email"] is None
    assert extra["last_name"] is None
    assert RowParser().parse(sim_row(), 3).location == "Table 7"


@given(st.data())
def test_both_paths_agree_under_rules(data: st.DataObject) -> None:
    raw: dict[Any, Any] = sim_row()
    for key in data.draw(st.lists(st.sampled_from(sorted(raw)), max_size=3)):
        raw[key] = data.draw(json_values)
    try:
        careful: ParsedRow | str = PARSER._parse_careful(raw, 3)
    except RowError as error:
        careful = error.reason
    try:
        fast: ParsedRow | str = PARSER.parse(raw, 3)
    except RowError as error:
        fast = error.reason
    assert fast == careful


def test_a_dead_letter_keeps_the_row_masked() -> None:
    raw = sim_row(meeting_id="not a number", notes="call her back")
    with pytest.raises(RowError, match="meeting_id"):
        PARSER.parse(raw, 3)
    text = PARSER.dead_letter_raw(raw)
    kept = json.loads(text)
    assert kept["email"] == MASKER.hash("ada@example.com")
    assert kept["last_name"] == REDACTED
    assert "notes" not in kept
    assert kept["location"] == MASKER.hash("Table 7")
    assert kept["meeting_id"] == "not a number"
    assert _clear_values(text) == []
    # too broken to tell its fields apart: nothing of it
    assert PARSER.dead_letter_raw(["ada@example.com", "Lovelace"]) == "null"
    assert RowParser().dead_letter_raw(["ada@example.com"]) == '["ada@example.com"]'


def test_a_reason_never_quotes_a_masked_value() -> None:
    raw = sim_row(location={"room": "Table 7"}, start_time="Lovelace")
    with pytest.raises(RowError) as caught:
        PARSER.parse(raw, 3)
    reason = caught.value.reason
    assert "location: not valid, got object (the value is withheld by the field rules)" in reason
    assert "start_time: " in reason  # unmasked fields are still quoted
    assert "Table 7" not in reason
    assert "Lovelace" in reason
    assert caught.value.known.get("event_id") == 3
    assert "location" not in caught.value.known
    with pytest.raises(RowError) as caught:
        PARSER.parse(sim_row(meeting_id=None), 3)
    # what did parse is kept for matching, masked as the meetings are
    assert caught.value.known["location"] == MASKER.hash("Table 7")


async def test_the_reader_parses_with_the_settings_rules() -> None:
    settings = ApiSettings(
        api_base_url="http://unused",
        event_ids=(EVENT,),
        field_rules="participant.email=hash,notes=drop",  # type: ignore[arg-type]
        field_hash_key=KEY.decode(),  # type: ignore[arg-type]
    )
    rows: list[dict[str, Any]] = rows_of(3)
    for row in rows:
        row["email"] = f"p{row['meeting_id']}@example.com"
        row["notes"] = "secret"
    rows[1]["meeting_id"] = "broken"
    api = FakeApi(rows, settings=settings)
    parts = [part async for part in WindowReader(api, 10).read(EVENT, WINDOW)]
    masker = settings.masker()
    meetings = [m for part in parts for m in part.meetings]
    assert [dict(m.participants[0].extra)["email"] for m in meetings] == [
        masker.hash("p1@example.com"),
        masker.hash("p3@example.com"),
    ]
    assert all(m.extra == () for m in meetings)
    (letter,) = [d for part in parts for d in part.dead_letters]
    assert json.loads(letter.raw)["email"] == masker.hash("p2@example.com")
    assert "notes" not in json.loads(letter.raw)
    assert "@example.com" not in letter.raw + letter.reason
