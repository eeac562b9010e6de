"""Pure store logic: filters, ordering, paging, incremental result sets, history."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetings_simulator import results
from meetings_simulator import store as store_module
from meetings_simulator.errors import MeetingNotFound
from meetings_simulator.model import SimMeeting, SimParticipant
from meetings_simulator.query import ExportQuery, RowFilter
from meetings_simulator.render import ROW_KEYS, TimeFormatter
from meetings_simulator.store import MeetingStore

T0 = 1_750_000_000


@dataclass
class FakeClock:
    t: int = T0

    def now(self) -> int:
        return self.t


def make_store(
    clock: FakeClock | None = None, build_step: int = 2_000
) -> tuple[MeetingStore, FakeClock]:
    clock = clock or FakeClock()
    return MeetingStore(clock.now, TimeFormatter(ZoneInfo("UTC")), build_step=build_step), clock


def people(*accounts: int) -> list[SimParticipant]:
    return [
        SimParticipant(a, "requester" if i == 0 else "invitee", "pending")
        for i, a in enumerate(accounts)
    ]


def all_rows(store: MeetingStore, f: RowFilter, per_page: int = 7) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    page = 1
    while True:
        got = store.query(ExportQuery(f, page=page, per_page=per_page))
        rows.extend(json.loads(r) for r in got.rows)
        if not got.rows:
            assert len(rows) == got.total
            return rows
        page += 1


def test_create_stamps_created_and_updated_with_now() -> None:
    store, _clock = make_store()
    m = store.create(
        event_id=1, start=T0 + 99, duration_minutes=30, status="pending", participants=people(5, 3)
    )
    assert (m.created_at, m.updated_at, m.version) == (T0, T0, 1)
    assert m.account_ids == (3, 5)  # rows come by account id


def test_update_bumps_updated_at_and_version_only_when_something_changes() -> None:
    store, clock = make_store()
    m = store.create(
        event_id=1, start=T0, duration_minutes=30, status="pending", participants=people(1, 2)
    )
    clock.t += 5
    same = store.update(m.meeting_id, status="pending", start=T0)
    assert same is m
    clock.t += 5
    changed = store.update(m.meeting_id, status="confirmed")
    assert (changed.updated_at, changed.version, changed.created_at) == (T0 + 10, 2, T0)


def test_delete_removes_rows_and_leaves_a_tombstone() -> None:
    store, clock = make_store()
    m = store.create(
        event_id=1, start=T0, duration_minutes=30, status="pending", participants=people(1, 2)
    )
    clock.t += 1
    store.update(m.meeting_id, location="Hall A")
    clock.t += 1
    store.delete(m.meeting_id)
    assert store.query(ExportQuery(RowFilter(event_id=1))).total == 0
    with pytest.raises(MeetingNotFound):
        store.get(m.meeting_id)
    history = store.history(1)
    assert [(h.version, h.kind, h.at) for h in history] == [
        (1, "created", T0),
        (2, "updated", T0 + 1),
        (3, "deleted", T0 + 2),
    ]
    assert history[-1].meeting is None


def test_rows_have_exactly_the_contract_keys_in_order() -> None:
    store, _ = make_store()
    store.create(
        event_id=1,
        start=T0,
        duration_minutes=45,
        status="pending",
        participants=people(1, 2),
        location=None,
        notes=None,
    )
    rows = all_rows(store, RowFilter(event_id=1))
    assert [list(r) for r in rows] == [list(ROW_KEYS)] * 2
    assert rows[0]["start_time"] == "2025-06-15 15:06:40"
    assert rows[0]["end_time"] == "2025-06-15 15:51:40"
    assert rows[0]["duration"] == 45


def test_unknown_event_is_empty() -> None:
    store, _ = make_store()
    assert store.query(ExportQuery(RowFilter(event_id=42))).total == 0


# -- the reference model: filter and sort by brute force ---------------------------------------


def reference(meetings: list[SimMeeting], f: RowFilter) -> list[tuple[int, int]]:
    def ok(m: SimMeeting) -> bool:
        return (
            m.event_id == f.event_id
            and (f.modified_from is None or m.updated_at >= f.modified_from)
            and (f.modified_to is None or m.updated_at <= f.modified_to)
            and (f.created_from is None or m.created_at >= f.created_from)
            and (f.created_to is None or m.created_at <= f.created_to)
            and (f.time_from is None or m.start >= f.time_from)
            and (f.time_to is None or m.start <= f.time_to)
            and (f.account_id is None or f.account_id in m.account_ids)
        )

    rows = [(m, p.account_id) for m in meetings if ok(m) for p in m.participants]
    if f.order_by == "time":
        rows.sort(key=lambda r: (r[0].start, r[0].meeting_id, r[1]))
    elif f.order_by == "account_id":
        rows.sort(key=lambda r: (r[1], r[0].meeting_id))
    else:
        rows.sort(key=lambda r: (r[0].meeting_id, r[1]))
    if f.order == "DESC":
        rows.reverse()
    return [(m.meeting_id, a) for m, a in rows]


bound = st.none() | st.integers(min_value=0, max_value=12)
filters = st.builds(
    RowFilter,
    event_id=st.sampled_from([1, 2]),
    account_id=st.none() | st.integers(min_value=1, max_value=6),
    time_from=bound,
    time_to=bound,
    created_from=bound,
    created_to=bound,
    modified_from=bound,
    modified_to=bound,
    order=st.sampled_from(["ASC", "DESC"]),
    order_by=st.sampled_from(["meeting_id", "account_id", "time"]),
)
ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "start", "participants", "status", "delete", "tick"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    max_size=40,
)


def apply_ops(store: MeetingStore, clock: FakeClock, steps: list[tuple[str, int, int]]) -> None:
    for op, a, b in steps:
        rng = random.Random(a * 1001 + b)
        live = [m for e in (1, 2) for m in store.meetings(e)]
        if op == "tick":
            clock.t += 1 + a % 3
        elif op == "create" or not live:
            store.create(
                event_id=1 + a % 2,
                start=b % 13,
                duration_minutes=15,
                status="pending",
                participants=people(*rng.sample(range(1, 7), 1 + a % 3)),
            )
        else:
            m = live[a % len(live)]
            if op == "start":
                store.update(m.meeting_id, start=b % 13)
            elif op == "participants":
                store.update(m.meeting_id, participants=people(*rng.sample(range(1, 7), 1 + b % 3)))
            elif op == "status":
                store.update(m.meeting_id, status=rng.choice(["confirmed", "cancelled"]))
            else:
                store.delete(m.meeting_id)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(before=ops, f=filters, after=ops, per_page=st.integers(1, 9))
def test_query_matches_brute_force_reference_across_writes(
    before: list[tuple[str, int, int]],
    f: RowFilter,
    after: list[tuple[str, int, int]],
    per_page: int,
) -> None:
    """Pages equal the reference, also after writes patch the cached result sets."""
    store, clock = make_store(FakeClock(t=0))
    apply_ops(store, clock, before)
    got = [(r["meeting_id"], r["account_id"]) for r in all_rows(store, f, per_page)]
    assert got == reference([m for e in (1, 2) for m in store.meetings(e)], f)
    apply_ops(store, clock, after)  # the result set of `f` is now cached and patched
    got = [(r["meeting_id"], r["account_id"]) for r in all_rows(store, f, per_page)]
    assert got == reference([m for e in (1, 2) for m in store.meetings(e)], f)


@given(f=filters)
def test_every_row_of_a_meeting_repeats_the_meeting_fields(f: RowFilter) -> None:
    store, clock = make_store(FakeClock(t=0))
    apply_ops(store, clock, [("create", i, i * 7) for i in range(8)])
    rows = all_rows(store, f)
    meeting_keys = ROW_KEYS[: ROW_KEYS.index("account_id")]
    by_meeting: dict[object, set[tuple[object, ...]]] = {}
    for row in rows:
        by_meeting.setdefault(row["meeting_id"], set()).add(tuple(row[k] for k in meeting_keys))
    assert all(len(v) == 1 for v in by_meeting.values())


def test_without_modified_at_creation_a_new_meeting_matches_last_modified_from_its_first_change():
    clock = FakeClock()
    store = MeetingStore(clock.now, TimeFormatter(ZoneInfo("UTC")), modified_at_creation=False)
    m = store.create(
        event_id=1, start=T0 + 99, duration_minutes=30, status="pending", participants=people(5, 3)
    )
    modified = RowFilter(event_id=1, modified_from=T0 - 10, modified_to=T0 + 10)
    created = RowFilter(event_id=1, created_from=T0 - 10, created_to=T0 + 10)
    rows = all_rows(store, created)
    assert len(rows) == 2
    assert rows[0]["updated_at"] == rows[0]["created_at"]  # the row still shows it
    assert all_rows(store, modified) == []
    assert all_rows(store, RowFilter(event_id=1, modified_from=0)) == []

    clock.t += 3
    store.update(m.meeting_id, status="confirmed")
    assert len(all_rows(store, modified)) == 2  # the first change stamps it
    store.delete(m.meeting_id)  # the index stays consistent
    assert all_rows(store, modified) == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, f=filters)
def test_a_count_page_equals_the_first_row_and_total_of_the_full_result(
    steps: list[tuple[str, int, int]], f: RowFilter
) -> None:
    """A per_page=1 first page is answered without materialising the result set (issue 15:
    delete checks count ranges); it must say what the materialised set would."""
    store, clock = make_store(FakeClock(t=0))
    apply_ops(store, clock, steps)
    counted = store.query(ExportQuery(f, page=1, per_page=1))
    expected = reference([m for e in (1, 2) for m in store.meetings(e)], f)
    assert counted.total == len(expected)
    assert [(json.loads(r)["meeting_id"], json.loads(r)["account_id"]) for r in counted.rows] == (
        expected[:1]
    )


# -- result sets built in steps by the server, beside writes -----------------------------------


async def _serve_all(store: MeetingStore, f: RowFilter, per_page: int) -> list[tuple[int, int]]:
    rows: list[tuple[int, int]] = []
    page = 1
    while True:
        got = await store.serve(ExportQuery(f, page=page, per_page=per_page))
        rows.extend((json.loads(r)["meeting_id"], json.loads(r)["account_id"]) for r in got.rows)
        if not got.rows:
            return rows
        page += 1


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(before=ops, f=filters, during=ops, per_page=st.integers(2, 9))
def test_a_set_built_in_steps_while_writes_land_equals_the_reference(
    before: list[tuple[str, int, int]],
    f: RowFilter,
    during: list[tuple[str, int, int]],
    per_page: int,
) -> None:
    """The server builds a result set in steps and serves writes between them: the set
    must still show every write made while it was built (else a connector paging it would
    miss a change for good)."""
    store, clock = make_store(FakeClock(t=0), build_step=1)
    apply_ops(store, clock, before)

    async def scenario() -> list[tuple[int, int]]:
        first = asyncio.create_task(store.serve(ExportQuery(f, per_page=per_page)))
        for step in during:  # one write per turn of the loop: between the build's steps
            await asyncio.sleep(0)
            apply_ops(store, clock, [step])
        await first
        return await _serve_all(store, f, per_page)

    got = asyncio.run(scenario())
    assert got == reference([m for e in (1, 2) for m in store.meetings(e)], f)


def test_requests_for_a_set_being_built_share_one_build_and_others_are_served_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _clock = make_store(FakeClock(t=0), build_step=1)
    for event_id, count in ((1, 30), (2, 1)):
        for _ in range(count):
            store.create(
                event_id=event_id,
                start=0,
                duration_minutes=15,
                status="pending",
                participants=people(1, 2),
            )
    big, small = RowFilter(event_id=1), RowFilter(event_id=2)
    builds: list[RowFilter] = []
    real = results.build_steps

    def counted(f: RowFilter, *args: Any, **kwargs: Any) -> Any:
        builds.append(f)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(store_module, "build_steps", counted)

    async def scenario() -> tuple[list[int], int]:
        pages = [asyncio.create_task(store.serve(ExportQuery(big, page=p))) for p in (1, 2, 1)]
        await asyncio.sleep(0)  # the big build has begun
        other = await store.serve(ExportQuery(small))
        done_before_other = sum(task.done() for task in pages)
        return [(await task).total for task in pages] + [other.total], done_before_other

    totals, done_before_other = asyncio.run(scenario())
    assert builds == [big, small]  # three requests, one build
    assert done_before_other == 0  # the small set was answered while the big one was built
    assert totals == [60, 60, 60, 2]


def test_a_cancelled_build_leaves_its_waiters_to_build_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock = make_store(FakeClock(t=0), build_step=1)
    apply_ops(store, clock, [("create", i * 2, i) for i in range(10)])
    f = RowFilter(event_id=1)

    async def scenario() -> int:
        first = asyncio.create_task(store.serve(ExportQuery(f)))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(store.serve(ExportQuery(f)))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return (await waiter).total

    assert asyncio.run(scenario()) == len(reference(store.meetings(1), f))


def test_a_bulk_load_during_a_build_is_in_the_set_it_answers() -> None:
    """A bulk load (seeding) replaces the event's indexes instead of logging writes: the
    set built meanwhile is stale and must be built again, not answered half without the
    loaded meetings."""
    store, clock = make_store(FakeClock(t=0), build_step=1)
    apply_ops(store, clock, [("create", i * 2, i) for i in range(10)])
    f = RowFilter(event_id=1)
    loaded = [
        SimMeeting(
            meeting_id=1_000 + i,
            event_id=1,
            status="pending",
            start=60 * i,
            duration_minutes=15,
            location=None,
            created_at=5,
            updated_at=5,
            participants=tuple(people(7, 8)),
        )
        for i in range(5)
    ]

    async def scenario() -> tuple[int, int]:
        first = asyncio.create_task(store.serve(ExportQuery(f, per_page=500)))
        await asyncio.sleep(0)  # the build has begun
        store.bulk_load(loaded)
        answered = (await first).total
        return answered, len(await _serve_all(store, f, per_page=7))

    answered, served = asyncio.run(scenario())
    expected = len(reference(store.meetings(1), f))
    assert expected == served == answered
    assert {m.meeting_id for m in loaded} <= {m.meeting_id for m in store.meetings(1)}
