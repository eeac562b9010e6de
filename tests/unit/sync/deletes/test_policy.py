"""``connector.deletes``: the reconcile delete policy, over plain values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.sync.deletes.policy import Deletions, deletions

BOUND = 1_000_000


def created(table: dict[int, int]):
    return table.get


def test_tracked_meetings_the_pass_did_not_see_are_deleted():
    result = deletions(
        [1, 2, 3], {1}, unattributed=0, bound_ms=BOUND, created_at=created({2: 5, 3: 6})
    )
    assert result == Deletions((2, 3))


def test_a_malformed_row_without_a_meeting_id_holds_every_delete_back():
    result = deletions([1, 2], {1}, unattributed=1, bound_ms=BOUND, created_at=created({2: 5}))
    assert result == Deletions((), held_back=1)


def test_a_meeting_created_after_the_bound_or_no_longer_tracked_is_kept():
    result = deletions(
        [2, 3], set(), unattributed=0, bound_ms=BOUND, created_at=created({2: BOUND + 1})
    )
    assert result == Deletions(())


def test_a_meeting_polling_committed_during_the_pass_is_never_deleted():
    result = deletions(
        [2, 3], set(), unattributed=0, bound_ms=BOUND, created_at=created({2: 1, 3: 1}), touched={2}
    )
    assert result == Deletions((3,))


@given(
    tracked=st.dictionaries(st.integers(0, 200), st.integers(0, 2 * BOUND), max_size=60),
    seen=st.sets(st.integers(0, 200)),
    touched=st.sets(st.integers(0, 200)),
    unattributed=st.integers(0, 3),
)
def test_only_unseen_untouched_tracked_meetings_within_the_bound_are_deleted(
    tracked, seen, touched, unattributed
):
    result = deletions(
        tracked,
        seen,
        unattributed=unattributed,
        bound_ms=BOUND,
        created_at=tracked.get,
        touched=touched,
    )
    gone = set(result.meeting_ids)
    assert len(gone) == len(result.meeting_ids)  # each at most once
    assert gone <= set(tracked) - seen - touched
    assert all(tracked[m] <= BOUND for m in gone)
    if unattributed:
        assert not gone
        assert result.held_back == len(set(tracked) - seen - touched)
    else:
        expected = {m for m in set(tracked) - seen - touched if tracked[m] <= BOUND}
        assert gone == expected
