"""The engine's cycle logic with in-process stand-ins for the API reader and Kafka.

The real thing is tested end to end in tests/integration/test_connector_e2e.py; these tests
pin down decisions that are hard to provoke there (a malformed row that names no meeting,
versions newer than the watermark during reconciliation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from connector.config.settings import Settings
from connector.core.kinds import CycleKind, WindowKind
from connector.core.model import Meeting, Participant
from connector.core.progress import EventProgress
from connector.kafka.layout import Record
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics
from connector.serde import Serdes, SingleObjectFraming
from connector.source.leaf_parts import WindowPart
from connector.source.limiter import RequestLimiter
from connector.source.rows import DeadLetter
from connector.source.windows import Window
from connector.state.store import EventState
from connector.sync.cycles import Collaborators
from connector.sync.engine import EventSync
from connector.sync.schedule import Run, until_next_poll

EVENT = 5
NOW = 1_800_000_000


def meeting(meeting_id: int, modified: int, status: str = "pending") -> Meeting:
    return Meeting(
        event_id=EVENT,
        meeting_id=meeting_id,
        status=status,
        start_at=1_900_000_000_000,
        end_at=1_900_001_800_000,
        location="Hall A",
        created_at=(NOW - 3600) * 1000,
        modified_at=modified * 1000,
        participants=(Participant(1, "requester", "accepted"), Participant(2, "invitee", status)),
    )


@dataclass
class FakeClient:
    now: int = NOW
    api_clock_known: bool = True
    limiter: RequestLimiter = field(default_factory=lambda: RequestLimiter(0, 4))

    def api_now(self) -> int:
        return self.now

    def api_time(self) -> float:
        return float(self.now)

    def clock_probe_delay(self) -> float | None:
        return None

    step: tuple[int, int] | None = None

    def api_step(self) -> tuple[int, int] | None:
        return self.step

    def api_second_at(self, wall: float) -> int:
        return int(self.now - (NOW - wall))  # the wall clock stands at NOW


@dataclass
class FakeReader:
    """Serves what the API would: the given meetings and dead letters, in one part."""

    meetings: list[Meeting]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reads: list[Window] = field(default_factory=list)

    async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
        self.reads.append(window)
        yield WindowPart(
            window=window,
            meetings=[m for m in self.meetings if _in(m, window)],
            dead_letters=self.dead_letters,
            inconsistent=frozenset(),
            rows=0,
            pages=1,
            requests=1,
            max_modified_at=None,
        )


def _in(m: Meeting, window: Window) -> bool:
    second = (m.created_at if window.kind == "created" else m.modified_at) // 1000
    return window.start <= second <= window.end


@dataclass
class FakePublisher:
    transactions: list[list[Record]] = field(default_factory=list)

    async def publish(self, records: list[Record]) -> None:
        self.transactions.append(list(records))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        api_base_url="http://api.invalid",
        event_ids=(EVENT,),
        reconcile_interval_seconds=60,
        delete_check_interval_seconds=0,  # its own tests: test_delete_checker.py
        changes_topic="changes",
        state_topic="state",
        dlq_topic="dlq",
    )


def make_sync(settings: Settings, reader: FakeReader, state: EventState):
    serdes = Serdes(SingleObjectFraming())
    publisher = FakePublisher()
    deps = Collaborators(
        settings=settings,
        client=FakeClient(),  # type: ignore[arg-type]
        reader=reader,  # type: ignore[arg-type]
        serdes=serdes,
        metrics=Metrics(),
        health=HealthState([EVENT], poll_interval_seconds=1),
        state_partitions=3,
        changes_partitions=6,
        wall_clock=lambda: float(NOW),
    )
    return EventSync(EVENT, state, publisher, deps), publisher, serdes  # type: ignore[arg-type]


def tracked_state(serdes: Serdes, *meetings: Meeting, last_reconcile: int) -> EventState:
    state = EventState(EVENT)
    for m in meetings:
        state.meetings[m.meeting_id] = serdes.encode_meeting_state(m, 1)
    state.progress = EventProgress(
        event_id=EVENT,
        phase="streaming",
        snapshot_upper=NOW - 7200,
        created_through=NOW - 10,
        modified_through=NOW - 10,
        last_reconcile_at=last_reconcile,
        updated_at=0,
    )
    return state


def change_events(publisher: FakePublisher, serdes: Serdes) -> list[dict[str, Any]]:
    return [
        serdes.decode_change(r.value)
        for txn in publisher.transactions
        for r in txn
        if r.topic == "changes" and r.value is not None
    ]


async def test_reconciliation_deletes_what_vanished_with_a_tombstone(settings):
    serdes = Serdes(SingleObjectFraming())
    kept, gone = meeting(1, NOW - 100), meeting(2, NOW - 100)
    state = tracked_state(serdes, kept, gone, last_reconcile=NOW - 3600)
    sync, publisher, _ = make_sync(settings, FakeReader([kept]), state)

    await sync.cycle()

    events = change_events(publisher, serdes)
    assert [(e["meeting_id"], e["change_type"], e["version"]) for e in events] == [
        (2, "DELETED", 2)
    ]
    tombstones = [r for r in publisher.transactions[-1] if r.topic == "state" and r.value is None]
    assert len(tombstones) == 1
    assert sorted(state.meetings) == [1]
    assert state.progress is not None
    assert state.progress.last_reconcile_at == NOW - settings.settle_seconds


async def test_a_malformed_row_without_a_meeting_id_holds_deletes_back(settings):
    serdes = Serdes(SingleObjectFraming())
    kept, maybe_gone = meeting(1, NOW - 100), meeting(2, NOW - 100)
    state = tracked_state(serdes, kept, maybe_gone, last_reconcile=NOW - 3600)
    window = Window("created", 0, NOW)  # type: ignore[arg-type]
    letter = DeadLetter(EVENT, '{"meeting_id": "two"}', "meeting_id: not an integer", window)
    sync, publisher, _ = make_sync(settings, FakeReader([kept], [letter]), state)

    await sync.cycle()

    assert change_events(publisher, serdes) == []
    assert sorted(state.meetings) == [1, 2]
    dlq = [r for r in publisher.transactions[-1] if r.topic == "dlq"]
    assert len(dlq) == 1


async def test_reconciliation_leaves_versions_newer_than_the_watermark_to_incremental(settings):
    serdes = Serdes(SingleObjectFraming())
    old = meeting(1, NOW - 100)
    state = tracked_state(serdes, old, last_reconcile=NOW - 3600)
    changed_just_now = meeting(1, NOW - 5, status="confirmed")  # after modified_through
    sync, publisher, _ = make_sync(settings, FakeReader([changed_just_now]), state)

    await sync.cycle()  # the reconciliation
    assert change_events(publisher, serdes) == []

    await sync.cycle()  # the next incremental cycle publishes it, once
    events = change_events(publisher, serdes)
    assert [(e["change_type"], e["version"]) for e in events] == [("CONFIRMED", 2)]
    assert sync.deps.metrics.reconcile_caught.labels(str(EVENT), "CONFIRMED")._value.get() == 0


async def test_an_unchanged_meeting_seen_again_publishes_nothing(settings):
    serdes = Serdes(SingleObjectFraming())
    same = meeting(1, NOW - 8)
    state = tracked_state(serdes, same, last_reconcile=NOW)
    sync, publisher, _ = make_sync(settings, FakeReader([same]), state)

    for _ in range(3):
        await sync.cycle()

    assert change_events(publisher, serdes) == []
    # but every cycle commits its watermarks
    assert len(publisher.transactions) == 3


async def test_a_poll_reads_one_window_per_kind_over_the_overlap_and_the_fresh_seconds(settings):
    """API economy: the overlap and the fresh seconds are one window (one request when it
    fits a page), committed with the watermarks in one transaction."""
    serdes = Serdes(SingleObjectFraming())
    before = meeting(1, NOW - 12)
    state = tracked_state(serdes, before, last_reconcile=NOW)
    reader = FakeReader([meeting(1, NOW - 5, status="confirmed")])
    sync, publisher, _ = make_sync(settings, reader, state)

    await sync.cycle()

    upper = NOW - settings.settle_seconds
    start = NOW - 9 - settings.overlap_seconds
    assert reader.reads == [
        Window("created", start, upper),  # type: ignore[arg-type]
        Window("modified", start, upper),  # type: ignore[arg-type]
    ]
    assert len(publisher.transactions) == 1
    events = change_events(publisher, serdes)
    assert [(e["change_type"], e["version"]) for e in events] == [("CONFIRMED", 2)]
    assert state.progress is not None
    assert state.progress.modified_through == upper
    stored = sync.deps.metrics.state_bytes.labels(str(EVENT))._value.get()
    assert stored == state.meetings.stored_bytes > 0


async def test_after_a_busy_overlap_the_fresh_seconds_are_committed_before_it_is_re_read(
    settings,
):
    """Latency: when the last poll's window held more than half a page, the next one reads
    and commits the fresh seconds before it re-reads the overlap (its pages would delay
    a new change); once quiet again, one window per kind."""
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 12), last_reconcile=NOW)

    @dataclass
    class BusyReader(FakeReader):
        rows: int = 400  # of a 500-row page

        async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
            async for part in super().read(event_id, window):
                yield replace(part, rows=self.rows)

    reader = BusyReader([meeting(1, NOW - 5, status="confirmed")])
    sync, publisher, _ = make_sync(settings, reader, state)
    reads_at_commit: list[int] = []
    publish = publisher.publish

    async def noting(records: list[Record]) -> None:
        reads_at_commit.append(len(reader.reads))
        await publish(records)

    publisher.publish = noting  # type: ignore[method-assign]

    await sync.cycle()  # fused: one window per kind
    assert len(reader.reads) == 2
    sync.deps.client.now += 1  # type: ignore[attr-defined]
    await sync.cycle()
    upper = NOW + 1 - settings.settle_seconds
    through = NOW - settings.settle_seconds
    assert reader.reads[2:] == [
        Window("created", through + 1, upper),  # type: ignore[arg-type]
        Window("modified", through + 1, upper),  # type: ignore[arg-type]
        Window("created", through + 1 - settings.overlap_seconds, through),  # type: ignore[arg-type]
        Window("modified", through + 1 - settings.overlap_seconds, through),  # type: ignore[arg-type]
    ]
    assert reads_at_commit[1] == 4  # committed after the fresh reads
    reader.rows = 10
    sync.deps.client.now += 1  # type: ignore[attr-defined]
    await sync.cycle()
    await sync.cycle()
    assert len(reader.reads) == 6 + 4 + 2  # decided from the busy poll, then fused again


async def test_a_row_landing_late_in_the_overlap_is_published_by_the_look_back(settings):
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 30), last_reconcile=NOW)
    late = meeting(1, NOW - 12, status="cancelled")  # before the watermark, seen only now
    sync, publisher, _ = make_sync(settings, FakeReader([late]), state)

    await sync.cycle()

    assert len(publisher.transactions) == 1  # the late row, with the fresh seconds
    events = change_events(publisher, serdes)
    assert [(e["change_type"], e["version"]) for e in events] == [("CANCELLED", 2)]
    assert state.progress is not None
    assert state.progress.modified_through == NOW - settings.settle_seconds

    await sync.cycle()  # seen again in the next look-back: nothing more
    assert len(change_events(publisher, serdes)) == 1


async def test_a_fatal_api_error_fails_the_cycle_but_not_the_loop(settings):
    import asyncio

    from connector.errors import FatalSourceError

    class RejectingReader(FakeReader):
        async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
            raise FatalSourceError("401 Unauthorized: check MEETINGS_CDC_API_KEY")
            yield  # pragma: no cover - makes this an async generator

    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 100), last_reconcile=NOW)
    sync, publisher, _ = make_sync(settings, RejectingReader([]), state)
    stop = asyncio.Event()

    health = sync.deps.health
    failed_once = asyncio.Event()
    reported = health.cycle_finished

    def report(*args: Any, **kwargs: Any) -> None:
        reported(*args, **kwargs)
        failed_once.set()

    health.cycle_finished = report  # type: ignore[method-assign]
    loop = asyncio.create_task(sync.run(stop))
    await asyncio.wait_for(failed_once.wait(), 5)
    stop.set()
    await asyncio.wait_for(loop, 5)  # returns normally: the error did not escape

    assert publisher.transactions == []
    failed = sync.deps.metrics.cycles.labels(str(EVENT), "incremental", "error")._value.get()
    assert failed == 1


async def test_a_reconciliation_longer_than_the_interval_does_not_starve_incremental(settings):
    # Found by the chaos suite (broker-restart): a pass that takes longer than the interval
    # left the next one due at once, so reconciliations ran back to back and changes waited.
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 100), last_reconcile=NOW - 3600)

    class SlowReader(FakeReader):
        async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
            async for part in super().read(event_id, window):
                client.now += 90  # longer than the 60 s interval
                yield part

    sync, _, _ = make_sync(settings, SlowReader([meeting(1, NOW - 100)]), state)
    client = sync.deps.client
    reader = sync.deps.reader

    await sync.cycle()  # the due reconciliation
    assert [w.kind.value for w in reader.reads] == ["created"]
    assert sync._decide(None) == Run(CycleKind.INCREMENTAL)
    await sync.cycle()  # due again already, but incremental polling gets its turn first
    assert "modified" in [w.kind.value for w in reader.reads[1:]]
    await sync.cycle()  # and then the next reconciliation
    last = reader.reads[-1]
    assert (last.kind.value, last.start) == ("created", 0)


@pytest.mark.parametrize(
    ("interval", "started", "now", "expected"),
    [
        (1.0, 100.15, 100.20, 0.95),  # next poll just after the next tick
        (1.0, 100.16, 100.30, 0.85),  # a little drift does not skip a second
        (1.0, 100.90, 101.40, 0.75),  # a late start re-aligns on the next tick
        (5.0, 100.15, 100.25, 4.90),
        (1.0, 100.15, 103.00, 0.0),  # a long cycle: start again at once
        (0.5, 100.15, 100.20, 0.45),  # below a second: plain interval
    ],
)
def test_polls_start_just_after_a_second_ends_on_the_api_clock(interval, started, now, expected):
    assert until_next_poll(started, now, interval) == pytest.approx(expected)


async def test_after_the_api_clock_steps_back_a_newer_version_with_an_older_time_is_published(
    settings,
):
    """Issue 12: the API's clock went back 120 s; versions written since carry older
    updated_at than the watermarks. Polling (not reconciliation) publishes them."""
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 20), last_reconcile=NOW)
    stepped = NOW - 120
    changed = meeting(1, stepped - 2, status="confirmed")  # written after the step
    # written just before the step, stamped ahead of the API's new clock, never read yet
    ahead = meeting(2, NOW - 1, status="cancelled")
    reader = FakeReader([changed, ahead])
    sync, publisher, _ = make_sync(settings, reader, state)
    sync.deps.client.now = stepped  # type: ignore[attr-defined]
    sync.deps.client.step = (stepped - 20, NOW)  # type: ignore[attr-defined]

    await sync.cycle()

    events = change_events(publisher, serdes)
    assert [(e["meeting_id"], e["change_type"]) for e in events] == [
        (1, "CONFIRMED"),
        (2, "CREATED"),
    ]
    # rewound to the step (and its overlap), not the old watermark
    assert reader.reads[0].start == stepped - 20 - settings.overlap_seconds
    assert state.progress is not None
    assert state.progress.modified_through == stepped - settings.settle_seconds

    await sync.cycle()  # read again in the look-back: nothing more
    assert len(change_events(publisher, serdes)) == 2


async def test_a_stop_requested_while_the_clock_is_learnt_keeps_the_snapshot_from_starting(
    settings,
):
    """Issue 12: SIGTERM just after the restore; the first request (learning the API's
    clock) is in flight. The snapshot must not start: it would run to the shutdown timeout."""
    import asyncio

    serdes = Serdes(SingleObjectFraming())
    reader = FakeReader([meeting(1, NOW - 100)])
    sync, publisher, _ = make_sync(settings, reader, EventState(EVENT))
    stop = asyncio.Event()
    client = sync.deps.client
    client.api_clock_known = False  # type: ignore[attr-defined]

    async def fetch_page(*args: object, **kwargs: object) -> None:
        stop.set()  # the signal arrives meanwhile
        client.api_clock_known = True  # type: ignore[attr-defined]

    client.fetch_page = fetch_page  # type: ignore[attr-defined]

    async with asyncio.timeout(5):
        await sync.run(stop)

    assert reader.reads == []
    assert publisher.transactions == []
    assert change_events(publisher, serdes) == []


async def test_the_cycle_reported_is_the_one_that_ran_when_learning_the_clock_makes_a_pass_due(
    settings,
):
    """Issue 14: the phase was decided before the API's clock was learnt and again after;
    learning it made a pass due, so metrics and /status named an incremental cycle while a
    reconciliation ran. Now one decision, after the clock, names the cycle everywhere."""
    import asyncio

    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 100), last_reconcile=NOW - 30)
    reader = FakeReader([meeting(1, NOW - 100)])
    sync, _, _ = make_sync(settings, reader, state)
    stop = asyncio.Event()
    client = sync.deps.client
    client.api_clock_known = False  # type: ignore[attr-defined]
    client.now = NOW - 60  # type: ignore[attr-defined]  # the estimate before any response

    async def fetch_page(*args: object, **kwargs: object) -> None:
        client.api_clock_known = True  # type: ignore[attr-defined]
        client.now = NOW + 60  # type: ignore[attr-defined]  # the API is ahead: a pass is due

    client.fetch_page = fetch_page  # type: ignore[attr-defined]
    reported = sync.deps.health.cycle_finished

    phases: list[str] = []

    def report(*args: Any, **kwargs: Any) -> None:
        reported(*args, **kwargs)
        phases.append(str(kwargs["phase"]))
        if kwargs["phase"] == "reconcile":
            stop.set()

    sync.deps.health.cycle_finished = report  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        await sync.run(stop)

    passes = [w for w in reader.reads if (w.kind.value, w.start) == ("created", 0)]
    assert len(passes) == 1  # the pass ran, reported as one
    assert phases[-1] == "reconcile"
    status = sync.deps.health.status()["events"][str(EVENT)]
    assert status["last_cycle"]["phase"] == "reconcile"
    cycles = sync.deps.metrics.cycles
    assert cycles.labels(str(EVENT), "reconcile", "ok")._value.get() == 1
    assert "modified" in [w.kind.value for w in reader.reads]  # polling ran beside it


async def test_a_pass_neither_republishes_nor_deletes_what_polling_committed_during_it(settings):
    """Issue 14: the pass runs beside polling. A meeting polling committed after the pass
    began is left alone: the stale row the pass read is not published, and a meeting
    created meanwhile (absent from the pass) is not deleted."""
    from connector.core.kinds import CycleKind
    from connector.sync.committer import Turn

    serdes = Serdes(SingleObjectFraming())
    old = meeting(1, NOW - 100)
    state = tracked_state(serdes, old, meeting(2, NOW - 100), last_reconcile=NOW - 3600)
    stale = meeting(1, NOW - 50, status="declined")  # what the pass read, before polling's
    newer = meeting(1, NOW - 20, status="confirmed")
    born = replace(meeting(3, NOW - 20), created_at=(NOW - 200) * 1000)  # within the bound

    class RacingReader(FakeReader):
        async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
            # polling commits while the pass's page is on its way
            def stage(batch: Any) -> None:
                batch.stage(newer, window, kind="modified")
                batch.stage(born, window, kind="created")

            await sync.committer.commit(
                Turn(CycleKind.INCREMENTAL, 0, 0.0),
                stage,
                lambda p: p,  # type: ignore[arg-type,return-value]
            )
            async for part in super().read(event_id, window):
                yield part

    sync, publisher, _ = make_sync(settings, RacingReader([stale, meeting(2, NOW - 100)]), state)
    state.progress = replace(state.progress, modified_through=NOW - 10)  # type: ignore[arg-type]

    await sync.cycle()  # the pass

    events = change_events(publisher, serdes)
    assert [(e["meeting_id"], e["change_type"], e["version"]) for e in events] == [
        (1, "CONFIRMED", 2),  # polling's
        (3, "CREATED", NOW * 1000),  # a new life starts at the clock (core.versions)
    ]
    assert sorted(state.meetings) == [1, 2, 3]
    assert state.progress is not None
    assert state.progress.last_reconcile_at == NOW - settings.settle_seconds


async def test_a_pass_neither_goes_on_nor_commits_while_a_poll_cycle_runs(settings):
    """Issue 14: polls go first. While a poll cycle of the process runs, a pass waits at
    its next slice: it neither begins its transaction nor holds the loop, so the poll's
    commit does not queue behind the pass's; the pass then re-judges against it."""
    import asyncio

    from connector.core.kinds import CycleKind
    from connector.sync.committer import Turn

    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(
        serdes, meeting(1, NOW - 100), meeting(2, NOW - 100), last_reconcile=NOW - 3600
    )
    # Meeting 2 vanished upstream: the pass's transaction deletes it.
    sync, publisher, _ = make_sync(settings, FakeReader([meeting(1, NOW - 100)]), state)
    polled = meeting(1, NOW - 20, status="confirmed")

    with sync.deps.client.limiter.foreground():  # a poll cycle in progress
        reconciling = asyncio.create_task(sync.cycle())  # the pass is due
        for _ in range(50):
            await asyncio.sleep(0)
        assert not reconciling.done()
        assert publisher.transactions == []
        await sync.committer.commit(
            Turn(CycleKind.INCREMENTAL, 0, 0.0),
            lambda batch: batch.stage(
                polled, Window(WindowKind.MODIFIED, NOW - 20, NOW - 20), kind="modified"
            ),
            lambda p: p,  # type: ignore[arg-type,return-value]
        )
    await reconciling

    events = change_events(publisher, serdes)
    assert [(e["meeting_id"], e["change_type"], e["version"]) for e in events] == [
        (1, "CONFIRMED", 2),  # the poll's, first
        (2, "DELETED", 2),  # the pass's, after
    ]
    assert len(publisher.transactions) == 2


async def test_a_pass_begun_before_a_clock_step_back_leaves_writes_since_to_polling(settings):
    """Issue 30 item 2: a pass took its coverage (the incremental watermark) before the
    API's clock went back 120 s. A meeting changed after the step carries a second below
    that watermark; the pass read it before the next poll could, and published it as a
    change polling had missed (``reconcile_caught_changes_total``). Coverage follows the
    clock at each part and at commit: the pass leaves it, the next poll publishes it."""
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 100), last_reconcile=NOW - 3600)
    stepped = NOW - 120
    changed = meeting(1, stepped + 1, status="confirmed")  # written after the step

    class SteppingReader(FakeReader):
        async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
            if window.kind is WindowKind.CREATED and window.start == 0:
                # The pass began on the old clock; the response that carries the new
                # version is stamped by the new one (the client sees the step first).
                client = sync.deps.client
                client.now = stepped + 2  # type: ignore[attr-defined]
                client.step = (stepped, NOW + 1)  # type: ignore[attr-defined]
            async for part in super().read(event_id, window):
                yield part

    sync, publisher, _ = make_sync(settings, SteppingReader([changed]), state)

    await sync.cycle()  # the pass (due)
    assert change_events(publisher, serdes) == []
    caught = sync.deps.metrics.reconcile_caught.labels(str(EVENT), "CONFIRMED")
    assert caught._value.get() == 0

    await sync.cycle()  # the next poll reads from the step's floor
    events = change_events(publisher, serdes)
    assert [(e["meeting_id"], e["change_type"], e["source"]["window_kind"]) for e in events] == [
        (1, "CONFIRMED", "modified")
    ]
    assert caught._value.get() == 0


async def test_after_a_restart_that_missed_a_clock_step_polling_reads_from_before_the_commit(
    settings,
):
    """Issue 30 item 2: the process that saw the API's clock go back 120 s was killed before
    it committed watermarks on the new clock. Its successor knows no step; it rewinds to
    before the last commit (on the new clock), not only by the overlap, and publishes what
    was written between the step and the restart."""
    serdes = Serdes(SingleObjectFraming())
    state = tracked_state(serdes, meeting(1, NOW - 20), last_reconcile=NOW)
    assert state.progress is not None
    committed = NOW - 8  # wall clock of the last commit, on the old API clock
    state.progress = replace(state.progress, updated_at=committed * 1000)
    stepped = NOW - 120
    changed = meeting(1, committed - 120 + 2, status="confirmed")  # after the step
    reader = FakeReader([changed])
    sync, publisher, _ = make_sync(settings, reader, state)
    # restarted 20 s after the step: the overlap before the new clock's bound is too short
    sync.deps.client.now = stepped + 20  # type: ignore[attr-defined]

    await sync.cycle()

    assert [(e["meeting_id"], e["change_type"]) for e in change_events(publisher, serdes)] == [
        (1, "CONFIRMED")
    ]
    assert reader.reads[0].start <= committed - 120  # the step happened after the commit


async def test_a_snapshot_reads_the_meetings_created_ahead_of_the_api_clock(settings):
    """Issue 30 item 2: the snapshot began after the API's clock went back; meetings created
    just before the step carry times ahead of the new clock and of the snapshot's bound. The
    snapshot reads them too (its bound, the watermarks, stay on the new clock): no window
    would read them before the new clock reaches their times."""
    serdes = Serdes(SingleObjectFraming())
    state = EventState(EVENT)
    ahead = replace(meeting(2, NOW + 50), created_at=(NOW + 50) * 1000)
    sync, publisher, _ = make_sync(settings, FakeReader([meeting(1, NOW - 100), ahead]), state)

    await sync.cycle()  # the snapshot

    events = change_events(publisher, serdes)
    assert sorted((e["meeting_id"], e["change_type"]) for e in events) == [
        (1, "SNAPSHOT"),
        (2, "SNAPSHOT"),
    ]
    assert state.progress is not None
    assert state.progress.created_through == NOW - settings.settle_seconds
