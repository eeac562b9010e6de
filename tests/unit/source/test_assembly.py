"""Grouping rows into meetings: complete and consistent only, independent of row order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.core.model import Participant
from connector.source.assembly import assemble
from connector.source.rows import ParsedRow, RowError


def row(
    meeting_id: int, account_id: int, *, modified_at: int = 1_000, **fields: object
) -> ParsedRow:
    values: dict[str, object] = {
        "meeting_id": meeting_id,
        "event_id": 3,
        "status": "pending",
        "start_at": 10_000,
        "end_at": 20_000,
        "location": "A1",
        "created_at": 500,
        "modified_at": modified_at,
        "meeting_extra": (("title", f"m{meeting_id}"),),
        "participant": Participant(account_id, "invitee", "pending"),
    }
    values.update(fields)
    return ParsedRow(**values)  # type: ignore[arg-type]


def test_groups_rows_into_meetings_with_sorted_participants() -> None:
    out = assemble([row(2, 9), row(1, 5), row(2, 3)])
    assert [m.meeting_id for m in out.meetings] == [1, 2]
    assert [p.account_id for p in out.meetings[1].participants] == [3, 9]
    assert not out.inconsistent
    assert not out.withheld


def test_rows_that_disagree_make_the_meeting_inconsistent() -> None:
    out = assemble([row(1, 5), row(1, 6, modified_at=2_000), row(2, 7)])
    assert [m.meeting_id for m in out.meetings] == [2]
    assert out.inconsistent == {1}


def test_a_repeated_account_makes_the_meeting_inconsistent() -> None:
    out = assemble([row(1, 5), row(1, 5)])
    assert out.meetings == []
    assert out.inconsistent == {1}


def test_a_malformed_row_withholds_its_meeting() -> None:
    error = RowError("account_id: expected a positive integer, got 'x'", 1, {})
    out = assemble([row(1, 5), row(2, 6)], [error])
    assert [m.meeting_id for m in out.meetings] == [2]
    assert out.withheld == {1}


def test_a_row_without_meeting_id_withholds_every_meeting_it_may_belong_to() -> None:
    error = RowError(
        "meeting_id: expected a positive integer, got None",
        None,
        {
            "status": "pending",
            "modified_at": 2_000,
            "created_at": 500,
        },
    )
    out = assemble([row(1, 5), row(2, 6, modified_at=2_000)], [error])
    assert [m.meeting_id for m in out.meetings] == [1]
    assert out.withheld == {2}
    anything = RowError("row is not a JSON object (got array)", None, {})
    assert assemble([row(1, 5), row(2, 6)], [anything]).meetings == []


rows_strategy = st.lists(
    st.builds(
        row,
        meeting_id=st.integers(min_value=1, max_value=6),
        account_id=st.integers(min_value=1, max_value=8),
        modified_at=st.sampled_from([1_000, 1_000, 1_000, 2_000]),
    ),
    max_size=30,
)


@given(rows_strategy, st.randoms())
def test_grouping_does_not_depend_on_row_order(rows: list[ParsedRow], rnd: object) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    first, second = assemble(rows), assemble(shuffled)
    assert first == second
    assert [m.content_hash for m in first.meetings] == [m.content_hash for m in second.meetings]


@given(rows_strategy)
def test_never_emits_a_meeting_missing_a_row_or_mixing_versions(rows: list[ParsedRow]) -> None:
    out = assemble(rows)
    for meeting in out.meetings:
        mine = [r for r in rows if r.meeting_id == meeting.meeting_id]
        assert sorted(p.account_id for p in meeting.participants) == sorted(
            r.participant.account_id for r in mine
        )
        assert {r.meeting_fields() for r in mine} == {mine[0].meeting_fields()}
        assert meeting.modified_at == mine[0].modified_at
    emitted = {m.meeting_id for m in out.meetings}
    seen = {r.meeting_id for r in rows}
    assert emitted | out.inconsistent == seen
    assert not emitted & out.inconsistent
    for meeting_id in out.inconsistent:  # inconsistent really means the rows disagreed
        mine = [r for r in rows if r.meeting_id == meeting_id]
        accounts = [r.participant.account_id for r in mine]
        fields = {r.meeting_fields() for r in mine}
        assert len(fields) > 1 or len(set(accounts)) < len(accounts)


@given(rows_strategy, st.sets(st.integers(min_value=1, max_value=6)))
def test_malformed_rows_withhold_exactly_their_meetings(
    rows: list[ParsedRow], bad: set[int]
) -> None:
    out = assemble(rows, [RowError("bad", m, {}) for m in bad])
    assert not {m.meeting_id for m in out.meetings} & bad
    assert out.withheld == bad
