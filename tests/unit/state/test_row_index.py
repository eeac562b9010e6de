"""``connector.row_index`` against a plain dict model, and the state keeping it."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.model import Meeting, Participant
from connector.serde import Serdes, SingleObjectFraming
from connector.state.row_index import RowIndex
from connector.state.store import EventState, Staging, Tracked

operations = st.lists(
    st.tuples(st.sampled_from(["put", "remove", "query"]), st.integers(1, 40), st.integers(0, 9)),
    max_size=120,
)


def second_of(meeting_id: int) -> int:
    """A meeting's creation second (it never changes): several meetings share one."""
    return meeting_id % 7 * 5


@settings(deadline=None)
@given(
    ops=operations,
    first=st.integers(-1, 31),
    last=st.integers(-1, 31),
    pending_min=st.sampled_from([1, 2, 5, 4_096]),
)
def test_rows_and_meetings_of_a_range_match_a_dict(ops, first, last, pending_min):
    """Whether out-of-order meetings wait to be merged (few or many at a time) or not, and
    whatever queries come between the updates."""
    index = RowIndex(pending_min=pending_min)
    model: dict[int, int] = {}
    for op, meeting_id, rows in ops:
        if op == "put":
            index.put(meeting_id, second_of(meeting_id), rows)
            model[meeting_id] = rows
        elif op == "remove":
            index.remove(meeting_id, second_of(meeting_id))
            model.pop(meeting_id, None)
        else:
            second = second_of(meeting_id)
            assert index.rows(second, second) == sum(
                r for m, r in model.items() if second_of(m) == second
            )
    in_range = {m: r for m, r in model.items() if first <= second_of(m) <= last}
    assert index.rows(first, last) == sum(in_range.values())
    assert sorted(index.meetings(first, last)) == sorted(in_range)
    assert len(index) == len(model)
    assert list(index) == sorted(list(index), key=lambda e: (e[1], e[0]))


def test_meetings_put_in_any_order_are_held_sorted_without_a_query():
    """A snapshot puts meetings in export order: they wait and are merged in batches, and
    the arrays stay sorted (what the bisections rely on) at every merge."""
    index = RowIndex(pending_min=3)
    order = [9, 2, 7, 4, 1, 8, 3, 6, 5, 10]
    for meeting_id in order:
        index.put(meeting_id, 100 - meeting_id, 1)
        held = list(zip(index._seconds, index._ids, strict=True))
        assert held == sorted(held)
        assert len(index._pending) < 3
    assert [m for m, _, _ in index] == sorted(order, reverse=True)
    assert index.rows(0, 95) == 6  # meetings 5 to 10


@settings(deadline=None)
@given(
    entries=st.dictionaries(st.integers(1, 500), st.tuples(st.integers(0, 99), st.integers(0, 5)))
)
def test_a_bulk_load_in_any_order_equals_one_put_at_a_time(entries):
    bulk, single = RowIndex(), RowIndex()
    for meeting_id, (second, rows) in reversed(list(entries.items())):
        bulk.bulk_add(meeting_id, second, rows)
        single.put(meeting_id, second, rows)
    bulk.finish()
    assert list(bulk) == list(single)
    assert list(single) == sorted(list(single), key=lambda e: (e[1], e[0]))


@settings(deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 4)), max_size=60),
    parts=st.integers(2, 8),
)
def test_cuts_are_increasing_inside_the_range_and_balance_the_rows(rows, parts):
    index = RowIndex()
    for meeting_id, (second, n) in enumerate(rows, 1):
        index.put(meeting_id, second, n)
    cuts = index.split_seconds(0, 50, parts)
    assert cuts == sorted(set(cuts))
    assert all(0 <= c < 50 for c in cuts)
    assert 1 <= len(cuts) <= 2 * (parts - 1)  # a crowded second is cut out on its own
    bounds = [0, *(c + 1 for c in cuts), 51]
    pieces = [index.rows(a, b - 1) for a, b in pairwise(bounds)]
    assert sum(pieces) == index.rows(0, 50)
    if len(rows) >= 2 * parts:  # enough tracked to balance: no piece holds most rows
        assert max(pieces) <= index.rows(0, 50) // 2 + 4 * max(len(rows) // 10, 4)
    assert index.split_seconds(7, 7, parts) == []


def _meeting(meeting_id: int, created_ms: int, participants: int) -> Meeting:
    return Meeting(
        meeting_id=meeting_id,
        event_id=1,
        status="pending",
        start_at=1_900_000_000_000,
        end_at=1_900_000_900_000,
        location="Hall A" if meeting_id % 2 else None,
        created_at=created_ms,
        modified_at=created_ms,
        participants=tuple(
            Participant(account_id=a, role="invitee", status="pending")
            for a in range(1, participants + 1)
        ),
    )


def test_the_state_keeps_its_index_through_commits_and_restores():
    serdes = Serdes(SingleObjectFraming())
    state = EventState(1)
    staging = Staging(state, serdes)
    for meeting_id, participants in ((1, 2), (2, 3), (3, 1)):
        m = _meeting(meeting_id, 1_700_000_000_000 + meeting_id * 1000, participants)
        staging.put(meeting_id, Tracked(m, 1), serdes.encode_meeting_state(m, 1))
    state.apply(staging)
    assert state.rows.rows(1_700_000_001, 1_700_000_003) == 6
    staging = Staging(state, serdes)
    staging.put(2, None, None)  # deleted
    grown = _meeting(3, 1_700_000_003_000, 4)
    staging.put(3, Tracked(grown, 2), serdes.encode_meeting_state(grown, 2))
    state.apply(staging)
    assert state.rows.meetings(0, 2**40) == [1, 3]
    assert state.rows.rows(0, 2**40) == 6
    restored = EventState(1, rows_ready=False)  # as restore() leaves it
    for meeting_id in state.meetings:
        raw = state.meetings.get(meeting_id)
        assert raw is not None
        restored.meetings[meeting_id] = raw
    restored.index_rows(serdes)
    assert restored.rows_ready
    assert list(restored.rows) == list(state.rows)


def test_commits_made_while_a_restored_index_is_built_are_not_lost():
    serdes = Serdes(SingleObjectFraming())
    state = EventState(1, rows_ready=False)
    for meeting_id in range(1, 11):
        m = _meeting(meeting_id, meeting_id * 1000, 2)
        state.meetings[meeting_id] = serdes.encode_meeting_state(m, 1)
    steps = state.index_steps(serdes, per_step=3)
    next(steps)  # meetings 1-3 indexed
    staging = Staging(state, serdes)
    staging.put(2, None, None)  # indexed already, deleted
    staging.put(9, None, None)  # not reached yet, deleted
    grown = _meeting(8, 8000, 5)  # not reached yet, grows
    staging.put(8, Tracked(grown, 2), serdes.encode_meeting_state(grown, 2))
    new = _meeting(11, 11_000, 1)  # created meanwhile
    staging.put(11, Tracked(new, 1), serdes.encode_meeting_state(new, 1))
    state.apply(staging)
    for _ in steps:
        pass
    assert state.rows_ready
    expected = [(m, m, 5 if m == 8 else 1 if m == 11 else 2) for m in (1, 3, 4, 5, 6, 7, 8, 10, 11)]
    assert list(state.rows) == expected


@settings(deadline=None)
@given(participants=st.integers(0, 70), location=st.booleans(), created=st.integers(0, 2**41))
def test_the_cheap_read_of_a_state_value_agrees_with_decoding_it(participants, location, created):
    serdes = Serdes(SingleObjectFraming())
    meeting = _meeting(2 if location else 1, created, participants)
    encoded = serdes.encode_meeting_state(meeting, 7)
    assert serdes.meeting_state_rows(encoded) == (created, participants)
