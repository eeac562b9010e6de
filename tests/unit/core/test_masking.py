"""Field rules: parsing and refusals, the three actions, idempotence, no spurious changes,
raw rows, and the state's fingerprint check."""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.changes import ChangeType, classify
from connector.core.masking import (
    HASH_PREFIX,
    MEETING_FIELDS,
    PARTICIPANT_FIELDS,
    REDACTED,
    REFUSED,
    VALID_NAMES,
    Action,
    FieldRules,
    Masker,
    RuleError,
    key_check,
    parse_rules,
    rules_problem,
)
from connector.core.model import Meeting, Participant

KEY = b"k" * 32
OTHER_KEY = b"o" * 32

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
_extra_keys = st.sampled_from([*sorted(MEETING_FIELDS - {"location"}), "room", "x"])
_participant_keys = st.sampled_from([*sorted(PARTICIPANT_FIELDS), "phone", "y"])


def _extras(keys: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    return st.dictionaries(keys, scalars, max_size=5).map(lambda d: tuple(sorted(d.items())))


participants = st.lists(
    st.builds(
        Participant,
        account_id=st.integers(1, 50),
        role=st.sampled_from(["requester", "invitee"]),
        status=st.sampled_from(["accepted", "pending", "declined"]),
        extra=_extras(_participant_keys),
    ),
    max_size=4,
    unique_by=lambda p: p.account_id,
).map(tuple)
meetings = st.builds(
    Meeting,
    event_id=st.just(7),
    meeting_id=st.just(42),
    status=st.sampled_from(["pending", "confirmed"]),
    start_at=st.integers(0, 10**13),
    end_at=st.integers(0, 10**13),
    location=st.none() | st.text(max_size=10),
    created_at=st.integers(0, 10**13),
    modified_at=st.integers(0, 10**13),
    participants=participants,
    extra=_extras(_extra_keys),
)
rule_sets = st.dictionaries(
    st.sampled_from(sorted(VALID_NAMES)), st.sampled_from(list(Action)), max_size=len(VALID_NAMES)
).map(
    lambda d: parse_rules(
        (name, str(action))
        for name, action in d.items()
        if not (name == "location" and action is Action.DROP)  # refused
    )
)


def meeting(**changes: Any) -> Meeting:
    base = Meeting(
        event_id=7,
        meeting_id=42,
        status="pending",
        start_at=1_000_000,
        end_at=2_000_000,
        location="Hall A",
        created_at=500_000,
        modified_at=900_000,
        participants=(
            Participant(1, "requester", "accepted", (("email", "ada@example.com"),)),
            Participant(2, "invitee", "pending", (("email", None), ("last_name", "Byron"))),
        ),
        extra=(("notes", "call her back"), ("title", "Intro")),
    )
    return dataclasses.replace(base, **changes)


RULES = parse_rules(["participant.email=hash", "participant.last_name=redact", "notes=drop"])
MASKER = Masker(RULES, KEY)


# --- parsing ------------------------------------------------------------------------------


def test_rules_parse_to_a_canonical_sorted_form() -> None:
    assert RULES.text == "notes=drop,participant.email=hash,participant.last_name=redact"
    assert parse_rules([" notes = drop ", ("participant.email", "hash")]).text == (
        "notes=drop,participant.email=hash"
    )
    assert RULES.needs_key
    assert not parse_rules(["notes=drop"]).needs_key
    assert not FieldRules()


@pytest.mark.parametrize(
    ("rule", "says", "unknown"),
    [
        ("participant.emial=hash", "unknown field participant.emial", "participant.emial"),
        ("email=hash", "unknown field email", "email"),
        ("notes=encrypt", "unknown action 'encrypt'", None),
        ("notes", "must be FIELD=ACTION", None),
        ("=hash", "must be FIELD=ACTION", None),
        ("status=redact", "status cannot be masked: it decides the change type", None),
        ("participant.account_id=hash", "identifies the participant", None),
        ("start_at=drop", "is a timestamp the Meeting schema requires", None),
        ("location=drop", "cannot leave it out; use redact", None),
    ],
)
def test_bad_rules_are_refused_naming_why(rule: str, says: str, unknown: str | None) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules([rule])
    assert f"rule {rule!r}" in str(caught.value)
    assert says in str(caught.value)
    assert caught.value.unknown == unknown


def test_a_field_named_twice_is_refused() -> None:
    with pytest.raises(RuleError, match=r"participant\.email has another rule already"):
        parse_rules(["participant.email=hash", "participant.email=drop"])


def test_every_modelled_field_is_either_maskable_or_refused_with_a_reason() -> None:
    modelled = {f.name for f in dataclasses.fields(Meeting)} - {"extra"}
    modelled |= {f"participant.{f.name}" for f in dataclasses.fields(Participant)} - {
        "participant.extra"
    }
    assert modelled - VALID_NAMES == set(REFUSED)
    assert modelled & VALID_NAMES == {"location"}


def test_a_hash_rule_needs_a_key() -> None:
    with pytest.raises(ValueError, match="needs a key"):
        Masker(RULES, None)


# --- the actions ----------------------------------------------------------------------------


def test_the_three_actions() -> None:
    masked = MASKER.meeting(meeting())
    ada, byron = masked.participants
    digest = hmac.digest(KEY, b"ada@example.com", "sha256").hex()
    assert ada.extra == (("email", HASH_PREFIX + digest),)
    assert byron.extra == (("email", None), ("last_name", REDACTED))  # null stays null
    assert masked.extra == (("title", "Intro"),)  # notes dropped
    assert masked.location == "Hall A"  # no rule
    assert repr(MASKER) == f"Masker({RULES.text!r})"
    assert KEY.decode() not in repr(MASKER)


def test_hashes_are_equal_across_maskers_and_differ_by_key_and_value() -> None:
    again = Masker(RULES, KEY)  # a restart
    assert again.hash("ada@example.com") == MASKER.hash("ada@example.com")
    assert Masker(RULES, OTHER_KEY).hash("ada@example.com") != MASKER.hash("ada@example.com")
    assert MASKER.hash("ada@example.org") != MASKER.hash("ada@example.com")
    assert MASKER.hash(30) == HASH_PREFIX + hmac.digest(KEY, b"30", "sha256").hex()
    assert MASKER.hash(True) != MASKER.hash(1)  # JSON texts: true and 1


def test_location_may_be_hashed_or_redacted() -> None:
    hashed = Masker(parse_rules(["location=hash"]), KEY)
    assert hashed.meeting(meeting()).location == hashed.hash("Hall A")
    assert hashed.meeting(meeting(location=None)).location is None
    redacted = Masker(parse_rules(["location=redact"]))
    assert redacted.meeting(meeting()).location == REDACTED


def test_a_changed_hashed_email_is_still_a_participants_change() -> None:
    before = MASKER.meeting(meeting())
    changed = meeting(
        participants=(
            Participant(1, "requester", "accepted", (("email", "ada@lovelace.org"),)),
            meeting().participants[1],
        )
    )
    change = classify(before, MASKER.meeting(changed))
    assert change is not None
    assert change.change_type is ChangeType.PARTICIPANTS_CHANGED
    assert change.changed_fields == ("participants",)
    assert classify(before, MASKER.meeting(meeting())) is None


def test_raw_rows_are_masked_by_key() -> None:
    raw = {"meeting_id": 1, "email": "ada@example.com", "last_name": "L", "notes": {"a": [1]}}
    actions = {"email": Action.HASH, "last_name": Action.REDACT, "notes": Action.DROP}
    assert MASKER.raw_row(raw, actions) == {
        "meeting_id": 1,
        "email": MASKER.hash("ada@example.com"),
        "last_name": REDACTED,
    }
    nested = MASKER.raw_row({"email": {"work": "a@b"}}, actions)
    # hashed as the JSON text extra keeps a nested value in
    assert nested == {"email": MASKER.hash(json.dumps({"work": "a@b"}, separators=(",", ":")))}
    # a row that is not an object: nothing of it is kept, with any rule
    assert MASKER.raw_row(["ada@example.com"], actions) is None
    assert MASKER.raw_row("ada@example.com", actions) is None
    unmasked = Masker(FieldRules())
    assert unmasked.raw_row(["ada@example.com"], {}) == ["ada@example.com"]


# --- properties -----------------------------------------------------------------------------


@given(meetings, rule_sets)
def test_masking_is_idempotent(m: Meeting, rules: FieldRules) -> None:
    masker = Masker(rules, KEY)
    once = masker.meeting(m)
    assert masker.meeting(once) == once


@given(meetings, rule_sets)
def test_no_masked_value_is_left_in_clear(m: Meeting, rules: FieldRules) -> None:
    masker = Masker(rules, KEY)
    masked = masker.meeting(m)
    clear = [(None, m.extra, masked.extra)] + [
        (p.account_id, p.extra, q.extra)
        for p, q in zip(m.participants, masked.participants, strict=True)
    ]
    for account, before, after in clear:
        actions = masker.meeting_actions if account is None else masker.participant_actions
        after_map = dict(after)
        for key, value in before:
            action = actions.get(key)
            if action is Action.DROP:
                assert key not in after_map
            elif action is Action.REDACT:
                assert after_map[key] == (None if value is None else REDACTED)
            elif action is Action.HASH:
                assert after_map[key] == masker.hash(value)
                assert value is None or after_map[key].startswith(HASH_PREFIX)
            else:
                assert after_map[key] == value


def _with_dropped_changed(m: Meeting, rules: FieldRules, values: list[Any]) -> Meeting:
    """``m`` with every field a rule drops set to other values (or left out, or added)."""
    meeting_drops = {r.field for r in rules.rules if r.action is Action.DROP and not r.participant}
    participant_drops = {r.field for r in rules.rules if r.action is Action.DROP and r.participant}
    picks = iter(values * 20)

    def change(extra: tuple[tuple[str, Any], ...], dropped: set[str]) -> tuple[Any, ...]:
        kept = {k: v for k, v in extra if k not in dropped}
        for key in sorted(dropped):
            value = next(picks, None)
            if value != "absent":
                kept[key] = value
        return tuple(sorted(kept.items()))

    return dataclasses.replace(
        m,
        extra=change(m.extra, meeting_drops),
        participants=tuple(
            dataclasses.replace(p, extra=change(p.extra, participant_drops)) for p in m.participants
        ),
    )


@given(meetings, rule_sets, st.lists(scalars | st.just("absent"), min_size=1, max_size=8))
def test_meetings_that_differ_only_in_dropped_fields_give_no_change(
    m: Meeting, rules: FieldRules, values: list[Any]
) -> None:
    masker = Masker(rules, KEY)
    other = _with_dropped_changed(m, rules, values)
    assert classify(masker.meeting(m), masker.meeting(other)) is None


@given(meetings, rule_sets, st.text(min_size=1, max_size=8))
def test_a_hashed_field_that_changes_is_still_a_change(
    m: Meeting, rules: FieldRules, suffix: str
) -> None:
    hashed = [r for r in rules.rules if r.action is Action.HASH and not r.participant]
    for rule in hashed:
        if rule.field == "location":
            other = dataclasses.replace(m, location=(m.location or "") + suffix)
        else:
            values = dict(m.extra)
            values[rule.field] = str(values.get(rule.field)) + suffix
            other = dataclasses.replace(m, extra=tuple(sorted(values.items())))
        masker = Masker(rules, KEY)
        assert classify(masker.meeting(m), masker.meeting(other)) is not None


# --- the state's fingerprint ------------------------------------------------------------------


def test_state_under_the_same_rules_and_key_goes_on() -> None:
    assert rules_problem(5, RULES.text, key_check(KEY), MASKER) is None
    assert rules_problem(5, None, None, Masker(FieldRules())) is None
    # without a hash rule, the key does not matter
    no_hash = Masker(parse_rules(["notes=drop"]), None)
    assert rules_problem(5, "notes=drop", None, no_hash) is None


def test_state_under_other_rules_or_another_key_is_refused_naming_the_setting() -> None:
    added = rules_problem(5, None, None, MASKER)
    assert added is not None
    assert added.startswith("MEETINGS_CDC_FIELD_RULES: the state of event 5 was written under ")
    assert "no field rules, not the configured field rules 'notes=drop," in added
    removed = rules_problem(5, RULES.text, key_check(KEY), Masker(FieldRules()))
    assert removed is not None
    assert "not the configured no field rules" in removed
    rotated = rules_problem(5, RULES.text, key_check(KEY), Masker(RULES, OTHER_KEY))
    assert rotated is not None
    assert rotated.startswith("MEETINGS_CDC_FIELD_HASH_KEY: ")
    assert KEY.decode() not in rotated + added
    assert OTHER_KEY.decode() not in rotated


def test_the_key_check_identifies_a_key_without_revealing_it() -> None:
    assert key_check(KEY) == key_check(KEY)
    assert key_check(KEY) != key_check(OTHER_KEY)
    assert len(key_check(KEY)) == 32
    assert key_check(KEY) not in MASKER.hash("meetings-cdc field hash key check v1")
    assert MASKER.key_check == key_check(KEY)
    assert Masker(parse_rules(["notes=drop"])).key_check is None
