"""classify(): precedence, changed_fields, idempotence, versions with older timestamps."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.changes import COMPARED_FIELDS, Change, ChangeType, changed_fields, classify
from connector.core.model import Meeting, Participant

STATUSES = ("pending", "confirmed", "cancelled", "declined")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
)
extras = st.dictionaries(st.text(max_size=8), scalars, max_size=4).map(
    lambda d: tuple(sorted(d.items()))
)
participants = st.lists(
    st.builds(
        Participant,
        account_id=st.integers(1, 50),
        role=st.sampled_from(["requester", "invitee"]),
        status=st.sampled_from(["accepted", "pending", "declined"]),
        extra=extras,
    ),
    max_size=4,
    unique_by=lambda p: p.account_id,
).map(tuple)
meetings = st.builds(
    Meeting,
    event_id=st.just(7),
    meeting_id=st.just(42),
    status=st.sampled_from(STATUSES),
    start_at=st.integers(0, 10**13),
    end_at=st.integers(0, 10**13),
    location=st.none() | st.text(max_size=10),
    created_at=st.integers(0, 10**13),
    modified_at=st.integers(0, 10**13),
    participants=participants,
    extra=extras,
)


def meeting(**changes: object) -> Meeting:
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
            Participant(1, "requester", "accepted"),
            Participant(2, "invitee", "pending"),
        ),
        extra=(("title", "Intro"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def expected_type(before: Meeting, after: Meeting) -> ChangeType:
    """The precedence of DESIGN.md, written independently of the implementation."""
    if before.status != after.status and after.status in ("cancelled", "declined", "confirmed"):
        return {
            "cancelled": ChangeType.CANCELLED,
            "declined": ChangeType.DECLINED,
            "confirmed": ChangeType.CONFIRMED,
        }[after.status]
    if (before.start_at, before.end_at) != (after.start_at, after.end_at):
        return ChangeType.RESCHEDULED
    if before.participants != after.participants:
        return ChangeType.PARTICIPANTS_CHANGED
    return ChangeType.UPDATED


def test_first_sighting_is_created_or_snapshot() -> None:
    m = meeting()
    assert classify(None, m) == Change(ChangeType.CREATED, (), None, m)
    assert classify(None, m, snapshot=True) == Change(ChangeType.SNAPSHOT, (), None, m)


def test_vanished_meeting_is_deleted() -> None:
    m = meeting()
    assert classify(m, None) == Change(ChangeType.DELETED, (), m, None)
    assert classify(None, None) is None


@pytest.mark.parametrize(
    ("changes", "change_type", "fields"),
    [
        ({"status": "cancelled"}, ChangeType.CANCELLED, ("status",)),
        ({"status": "declined"}, ChangeType.DECLINED, ("status",)),
        ({"status": "confirmed"}, ChangeType.CONFIRMED, ("status",)),
        ({"start_at": 1_500_000}, ChangeType.RESCHEDULED, ("start_at",)),
        ({"end_at": 2_500_000}, ChangeType.RESCHEDULED, ("end_at",)),
        (
            {"participants": (Participant(1, "requester", "accepted"),)},
            ChangeType.PARTICIPANTS_CHANGED,
            ("participants",),
        ),
        ({"location": "Hall B"}, ChangeType.UPDATED, ("location",)),
        ({"location": None}, ChangeType.UPDATED, ("location",)),
        ({"extra": (("title", "Other"),)}, ChangeType.UPDATED, ("extra",)),
        ({"created_at": 1}, ChangeType.UPDATED, ("created_at",)),
        ({}, ChangeType.UPDATED, ("modified_at",)),
        (
            {"status": "cancelled", "start_at": 1_500_000, "location": "B"},
            ChangeType.CANCELLED,
            ("location", "start_at", "status"),
        ),
        (
            {"start_at": 1_500_000, "participants": ()},
            ChangeType.RESCHEDULED,
            ("participants", "start_at"),
        ),
    ],
)
def test_classification_table(
    changes: dict[str, object], change_type: ChangeType, fields: tuple[str, ...]
) -> None:
    before = meeting()
    after = meeting(modified_at=before.modified_at + 1000, **changes)

    change = classify(before, after)

    assert change == Change(change_type, fields, before, after)


def test_back_to_pending_is_an_update() -> None:
    before = meeting(status="confirmed")
    change = classify(before, meeting(status="pending", modified_at=before.modified_at + 1))
    assert change is not None
    assert change.change_type is ChangeType.UPDATED
    assert change.changed_fields == ("status",)


def test_a_changed_version_with_an_older_timestamp_is_published() -> None:
    # The API's clock stepped back: the new version carries an older updated_at.
    before = meeting()
    change = classify(before, meeting(status="cancelled", modified_at=before.modified_at - 90_000))
    assert change is not None
    assert change.change_type is ChangeType.CANCELLED


def test_the_same_content_with_an_older_timestamp_is_no_change() -> None:
    before = meeting()
    assert classify(before, meeting(modified_at=before.modified_at - 3_600_000)) is None


def test_versions_of_different_meetings_are_refused() -> None:
    with pytest.raises(ValueError, match="different meetings"):
        classify(meeting(), meeting(meeting_id=43))


@given(meetings)
def test_classify_same_version_yields_nothing(m: Meeting) -> None:
    assert classify(m, m) is None
    assert classify(m, dataclasses.replace(m)) is None


@given(meetings, meetings)
def test_changed_fields_and_precedence(before: Meeting, other: Meeting) -> None:
    after = dataclasses.replace(other, modified_at=max(before.modified_at, other.modified_at))

    change = classify(before, after)

    differing = tuple(f for f in COMPARED_FIELDS if getattr(before, f) != getattr(after, f))
    if not differing and before.modified_at == after.modified_at:
        assert change is None
        return
    assert change is not None  # content differs and modified_at did not go backwards
    assert change.before is before
    assert change.after is after
    assert change.changed_fields == (differing or ("modified_at",))
    assert list(change.changed_fields) == sorted(change.changed_fields)
    assert change.change_type is expected_type(before, after)
    assert changed_fields(before, after) == change.changed_fields


@given(meetings, meetings, st.integers(1, 10**9))
def test_content_decides_whatever_the_timestamps_do(
    before: Meeting, other: Meeting, back: int
) -> None:
    after = dataclasses.replace(other, modified_at=before.modified_at - back)
    change = classify(before, after)
    differing = tuple(f for f in COMPARED_FIELDS if getattr(before, f) != getattr(after, f))
    if differing:
        assert change is not None
        assert change.changed_fields == differing
    else:
        assert change is None
