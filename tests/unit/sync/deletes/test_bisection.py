"""``connector.delete_check``: the bisection that finds deleted meetings by row counts,
run against a model API (no HTTP, no Kafka)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ops.labels import Ask
from connector.state.row_index import RowIndex
from connector.sync.deletes.bisection import Bisection, Span, judged_span
from connector.sync.deletes.policy import deletions

LEAF = 10


def index_of(meetings: dict[int, tuple[int, int]]) -> RowIndex:
    index = RowIndex()
    for meeting_id, (second, rows) in meetings.items():
        index.put(meeting_id, second, rows)
    return index


def run(
    span: Span, index: RowIndex, api: dict[int, tuple[int, int]], fan_out: int = 4
) -> tuple[list[Span], int]:
    """Run a check to its end; the spans it read, and the requests it sent."""
    machine = Bisection(span, index, leaf_rows=LEAF, fan_out=fan_out)
    read: list[Span] = []
    sent = 0
    while not machine.done:
        requests = machine.next_requests()
        assert requests, "nothing to send, nothing outstanding: it would hang"
        for request in reversed(requests):  # answers may come in any order
            sent += 1
            s = request.span
            rows = sum(r for second, r in api.values() if s.first <= second <= s.last)
            if request.ask is Ask.READ:
                read.append(s)
            machine.answer(request, rows)
    assert sent == sum(machine.requests.values())
    return read, sent


def gone_after(read: list[Span], index: RowIndex, api: dict[int, tuple[int, int]]) -> set[int]:
    """What the shell deletes: tracked meetings of the read spans the API did not return."""
    found: set[int] = set()
    for s in read:
        seen = {m for m, (second, _) in api.items() if s.first <= second <= s.last}
        tracked = index.meetings(s.first, s.last)
        found.update(
            deletions(
                tracked, seen, unattributed=0, bound_ms=2**62, created_at=lambda _: 0
            ).meeting_ids
        )
    return found


meetings_strategy = st.dictionaries(
    st.integers(1, 10_000),
    st.tuples(st.integers(0, 500), st.integers(0, 6)),
    max_size=300,
)


@settings(deadline=None)
@given(meetings=meetings_strategy)
def test_a_check_that_finds_nothing_costs_one_request(meetings):
    index = index_of(meetings)
    read, sent = run(Span(0, 500), index, dict(meetings))
    assert (read, sent) == ([], 1)


@settings(max_examples=300, deadline=None)  # a model API summing rows per request
@given(meetings=meetings_strategy, data=st.data())
def test_every_deleted_meeting_is_found_and_nothing_else(meetings, data):
    index = index_of(meetings)
    ids = sorted(meetings)
    deleted = set(data.draw(st.lists(st.sampled_from(ids), max_size=10))) if ids else set()
    api = {m: v for m, v in meetings.items() if m not in deleted}
    read, _ = run(Span(0, 500), index, api)
    # A deleted meeting without rows cannot change a count (nor does the export show it).
    visible = {m for m in deleted if meetings[m][1] > 0}
    assert visible <= gone_after(read, index, api) <= deleted


@settings(max_examples=200, deadline=None)
@given(meetings=meetings_strategy, data=st.data())
def test_participant_changes_and_untracked_rows_never_delete_a_present_meeting(meetings, data):
    index = index_of(meetings)
    api = dict(meetings)
    for m in data.draw(st.lists(st.sampled_from(sorted(meetings)), max_size=5)) if meetings else []:
        second, rows = api[m]
        api[m] = (second, rows + data.draw(st.integers(-rows, 3)))
    for extra in data.draw(st.lists(st.integers(20_000, 20_100), max_size=5)):
        api[extra] = (data.draw(st.integers(0, 500)), data.draw(st.integers(1, 3)))
    read, _ = run(Span(0, 500), index, api)
    assert gone_after(read, index, api) == set()


def bound(rows: int, fan_out: int) -> int:
    """Requests of one delete: (fan_out - 1) counts per level, a read, the first count."""
    levels = math.ceil(math.log(rows / LEAF, fan_out))
    return (fan_out - 1) * levels + 2


@pytest.mark.parametrize("fan_out", [2, 4, 8])
def test_a_delete_costs_about_a_count_per_part_and_level(fan_out):
    meetings = {m: (m // 4, 2) for m in range(1, 100_001)}  # 200,000 rows over 25,000 s
    index = index_of(meetings)
    api = dict(meetings)
    del api[54_321]
    read, sent = run(Span(0, 25_000), index, api, fan_out)
    assert gone_after(read, index, api) == {54_321}
    assert len(read) == 1
    assert sent <= bound(200_000, fan_out)


@pytest.mark.parametrize("fan_out", [2, 4])
def test_ten_deletes_share_the_upper_levels(fan_out):
    meetings = {m: (m // 4, 2) for m in range(1, 100_001)}
    index = index_of(meetings)
    api = dict(meetings)
    victims = set(range(5_000, 100_001, 10_000))
    for m in victims:
        del api[m]
    read, sent = run(Span(0, 25_000), index, api, fan_out)
    assert gone_after(read, index, api) == victims
    assert sent <= 10 * bound(200_000, fan_out)


def test_a_crowded_second_is_a_leaf_whatever_its_rows():
    meetings = {m: (7, 3) for m in range(1, 50)}  # 147 rows in one second
    index = index_of(meetings)
    api = {m: v for m, v in meetings.items() if m != 20}
    read, _ = run(Span(0, 100), index, api)
    assert Span(7, 7) in read
    assert gone_after(read, index, api) == {20}


def test_answers_must_follow_requests():
    machine = Bisection(Span(0, 9), RowIndex(), leaf_rows=LEAF)
    (request,) = machine.next_requests()
    assert request == machine_request(Ask.COUNT, 0, 9)
    assert machine.next_requests() == []
    assert not machine.done
    with pytest.raises(RuntimeError):
        machine.answer(machine_request(Ask.READ, 0, 9), 0)
    machine.answer(request, 0)
    assert machine.done
    assert machine.next_requests() == []


def machine_request(ask: Ask, first: int, last: int):
    from connector.sync.deletes.bisection import Request

    return Request(ask, Span(first, last))


@pytest.mark.parametrize(
    ("created_through", "untracked_through", "expected"),
    [
        (-1, None, None),
        (100, None, Span(0, 100)),
        (100, 40, Span(41, 100)),
        (40, 40, None),
    ],
)
def test_only_what_is_behind_the_watermark_and_tracked_is_judged(
    created_through, untracked_through, expected
):
    assert judged_span(created_through, untracked_through=untracked_through) == expected
