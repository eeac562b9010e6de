"""Write logs of concurrent stepped builds: each build's log is its own (issue 30 item 4).

Two builds of one event's sets (different filters, or a build and the build that replaces
a cancelled one) watch the event at once, with logs equal in value while nothing has been
written. Ending one build must stop exactly its own log: the other build still needs every
write made meanwhile, and must be able to stop its log in turn.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from meetings_simulator.model import SimMeeting, SimParticipant
from meetings_simulator.query import ExportQuery, RowFilter
from meetings_simulator.render import TimeFormatter
from meetings_simulator.results import ResultCache
from meetings_simulator.store import MeetingStore

T0 = 1_750_000_000


@dataclass
class FakeClock:
    t: int = T0

    def now(self) -> int:
        return self.t


def make_store(build_step: int = 1) -> tuple[MeetingStore, FakeClock]:
    clock = FakeClock()
    return MeetingStore(clock.now, TimeFormatter(ZoneInfo("UTC")), build_step=build_step), clock


def people(*accounts: int) -> list[SimParticipant]:
    return [
        SimParticipant(a, "requester" if i == 0 else "invitee", "pending")
        for i, a in enumerate(accounts)
    ]


def expected_rows(store: MeetingStore, f: RowFilter) -> list[tuple[int, int]]:
    """(meeting_id, account_id) of the filter's rows by meeting id (time bounds only)."""
    return [
        (m.meeting_id, p.account_id)
        for m in store.meetings(f.event_id)
        if (f.time_from is None or m.start >= f.time_from)
        for p in m.participants
    ]


async def served_rows(store: MeetingStore, f: RowFilter) -> list[tuple[int, int]]:
    got = await store.serve(ExportQuery(f, per_page=500))
    rows = [json.loads(r) for r in got.rows]
    assert got.total == len(rows)
    return [(r["meeting_id"], r["account_id"]) for r in rows]


def test_unwatching_one_log_leaves_an_equal_log_of_the_same_event_watching() -> None:
    cache = ResultCache()
    first, second = cache.watch(1), cache.watch(1)
    assert (first.event_id, first.changes) == (second.event_id, second.changes)  # alike
    cache.unwatch(second)
    meeting = SimMeeting(
        meeting_id=1,
        event_id=1,
        status="pending",
        start=T0,
        duration_minutes=15,
        location=None,
        created_at=T0,
        updated_at=T0,
        participants=tuple(people(1, 2)),
    )
    cache.on_change(None, meeting, lambda m: [])
    assert first.changes == [(None, meeting)]  # still watching
    assert second.changes == []  # no longer watching
    cache.unwatch(first)  # was: ValueError, list.remove(x): x not in list


async def test_a_build_cancelled_beside_another_of_its_event_leaves_that_one_its_writes() -> None:
    """The bench's latency-during-reconcile failure: one request builds the event's whole
    set while another builds a narrower set of the same event and is cancelled (a client
    gave up); a request waiting for the cancelled build builds it anew. Writes land during
    the first build. Each build must end with its own log unwatched, and every set answered
    must show the writes (was: ``ValueError: list.remove(x): x not in list`` from
    ``ResultCache.unwatch`` when the first build ended, after the cancelled build had
    unwatched the first build's log instead of its own)."""
    store, clock = make_store(build_step=1)
    for i in range(12):
        store.create(
            event_id=1,
            start=T0 + 60 * i,
            duration_minutes=15,
            status="pending",
            participants=people(1 + i % 3, 4),
        )
    whole = RowFilter(event_id=1)
    late = RowFilter(event_id=1, time_from=T0 + 60 * 6)

    whole_task = asyncio.create_task(served_rows(store, whole))
    await asyncio.sleep(0)  # the whole set's build has begun: it watches event 1
    late_task = asyncio.create_task(served_rows(store, late))
    await asyncio.sleep(0)  # the late set's build has begun: it watches event 1 too
    late_waiter = asyncio.create_task(served_rows(store, late))
    await asyncio.sleep(0)  # waits for the late set's build
    late_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late_task
    assert not whole_task.done()

    clock.t += 1
    first = store.meetings(1)[0]
    store.update(first.meeting_id, participants=people(5, 6))  # in both builds' logs
    store.create(
        event_id=1, start=T0 + 3_600, duration_minutes=15, status="pending", participants=people(2)
    )
    assert not whole_task.done()  # the writes landed during the whole set's build

    answered = await asyncio.gather(whole_task, late_waiter, return_exceptions=True)
    assert answered == [expected_rows(store, whole), expected_rows(store, late)]
    assert await served_rows(store, late) == expected_rows(store, late)
    assert not store._results._logs  # every build stopped its own log, none left behind
