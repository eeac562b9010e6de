"""The per-event sync loop: plan windows, read them, classify, publish in transactions.

One ``EventSync`` per configured event, all in one process, sharing the API client (and so
its rate and concurrency limits). Each event moves through three kinds of cycle:

- snapshot: the full export as CREATED windows up to a fixed upper bound, committed part
  by part (resumable after a crash: progress records how far it got);
- incremental: a CREATED and a MODIFIED window from the watermarks up to the API's now
  minus the settle delay, committed at once; then the same two kinds over the overlap
  before the watermarks (late rows), committed only if they found anything;
- reconcile: every ``reconcile_interval_seconds`` a full pass that catches what polling
  cannot see: hard deletes (DELETED + state tombstone) and anything incremental missed.

Every write of a cycle (events, state, dead letters, watermarks) goes out in Kafka
transactions (one per cycle, unless it is large or finds late rows in the overlap).
The in-memory view changes only after the commit; a failed cycle is simply redone from the
committed state, and because classification compares content, re-reading never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from connector.batch import Batch, Destination
from connector.config import Settings
from connector.deletes import deletions
from connector.errors import (
    FatalSourceError,
    ProducerFencedError,
    RetriablePublishError,
    RetriableSourceError,
)
from connector.health import HealthState
from connector.metrics import Metrics
from connector.model import Meeting
from connector.progress import EventProgress, Phase
from connector.publisher import TransactionalPublisher, state_partition
from connector.report import CycleReport
from connector.schedule import Action, CycleKind, Idle, Run, next_action
from connector.serde import Serdes
from connector.source.client import ExportClient
from connector.source.reader import WindowReader
from connector.source.windows import (
    Followed,
    Watermarks,
    Window,
    WindowKind,
    advance,
    follow_api_clock,
    plan_incremental,
)
from connector.state import EventState

log = logging.getLogger(__name__)

MAX_RECORDS_PER_TRANSACTION = 10_000
SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What every event's loop shares."""

    settings: Settings
    client: ExportClient
    reader: WindowReader
    serdes: Serdes
    metrics: Metrics
    health: HealthState
    state_partitions: int
    wall_clock: Callable[[], float] = time.time


class EventSync:
    """The sync loop of one event."""

    def __init__(
        self,
        event_id: int,
        state: EventState,
        publisher: TransactionalPublisher,
        deps: Collaborators,
    ) -> None:
        self.event_id = event_id
        self.state = state
        self.publisher = publisher
        self.deps = deps
        self.settings = deps.settings
        self._label = str(event_id)
        self._destination = Destination(
            event_id=event_id,
            state_partition=state_partition(event_id, deps.state_partitions),
            changes_topic=self.settings.changes_topic,
            state_topic=self.settings.state_topic,
            dlq_topic=self.settings.dlq_topic,
            connector_name=self.settings.connector_name,
        )
        # A pass longer than the reconcile interval leaves the next one due at once: after
        # each pass one incremental cycle runs first, so polling is never starved.
        self._reconciled_last = False
        self._begun: EventProgress | None = None  # before the first commit: how it begins
        self._cycle_number = 0  # of this process: a cycle may commit more than once
        self._stop: asyncio.Event | None = None

    # --- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run cycles until ``stop`` is set.

        Only errors that make the process unusable (a fenced or broken producer) propagate
        to the supervisor; API failures are retried, each kind at its own pace.
        """
        failures = 0
        self._stop = stop
        last_started: float | None = None  # on the API's clock; None: the next may start now
        while not stop.is_set():
            self.deps.health.beat()
            try:
                # Window bounds come from the API's clock: learn it before deciding.
                await self._sync_clock()
            except (RetriableSourceError, FatalSourceError) as exc:
                failures += 1
                first = self._decide(None)
                kind = first.kind if isinstance(first, Run) else CycleKind.INCREMENTAL
                await self._failed(kind, exc, failures, 0.0)
                continue
            if stop.is_set():
                # Stopped while the clock was learnt (right after the restore, say): a
                # snapshot or pass started now would only be cut off at the shutdown timeout.
                return
            action = self._decide(last_started)
            if isinstance(action, Idle):
                await self._idle(stop, action.seconds)
                continue
            started = time.monotonic()
            last_started = self.deps.client.api_time()
            try:
                more = await self._run_cycle(action.kind)
            except (RetriableSourceError, RetriablePublishError, FatalSourceError) as exc:
                failures += 1
                await self._failed(action.kind, exc, failures, time.monotonic() - started)
                last_started = None
                continue
            failures = 0
            self.deps.metrics.cycles.labels(self._label, action.kind, "ok").inc()
            self.deps.metrics.cycle_duration.labels(self._label, action.kind).observe(
                time.monotonic() - started
            )
            if more:
                last_started = None

    async def _failed(self, kind: CycleKind, exc: Exception, failures: int, seconds: float) -> None:
        """Report a failed cycle and wait before the next try.

        Nothing of the cycle was committed: the state and watermarks are as before. A fatal
        *source* error (rejected key, unknown event) is not retried soon, but neither does
        it stop the other events: readiness and the Stalled alert report it, and the event
        recovers by itself once the API is fixed.
        """
        self.deps.metrics.cycles.labels(self._label, kind, "error").inc()
        self.deps.metrics.cycle_duration.labels(self._label, kind).observe(seconds)
        self.deps.health.cycle_finished(
            self.event_id, phase=kind, ok=False, detail={"error": str(exc)}
        )
        fatal = isinstance(exc, FatalSourceError)
        delay = 60.0 if fatal else self._backoff(failures)
        (log.error if fatal else log.warning)(
            "cycle failed; the committed state is unchanged, retrying",
            extra={
                "event_id": self.event_id,
                "phase": str(kind),
                "error": str(exc),
                "retry_in_s": round(delay, 1),
            },
        )
        assert self._stop is not None  # noqa: S101 - set by run()
        await _wait(self._stop, delay)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait ``seconds`` for the next poll; on the way, probe the API's clock if a probe
        is due before it (polls alone, all at one phase of the second, cannot correct the
        clock estimate they are scheduled by: see ``connector.source.api_clock``). The loop
        then decides again, on the corrected clock."""
        client = self.deps.client
        probe_in = client.clock_probe_delay()
        if probe_in is None or probe_in >= seconds:
            await _wait(stop, seconds)
            return
        await _wait(stop, probe_in)
        if stop.is_set():
            return
        try:
            async with asyncio.timeout(max(1.0, seconds - probe_in)):
                await client.probe_clock(self.event_id)
        except (TimeoutError, RetriableSourceError, FatalSourceError) as exc:
            log.debug("clock probe failed", extra={"event_id": self.event_id, "error": str(exc)})

    def _backoff(self, failures: int) -> float:
        return min(60.0, self.settings.poll_interval_seconds * 2.0 ** min(failures, 6))

    def _progress_now(self) -> EventProgress:
        """The committed progress, or how the event begins (decided once, then kept)."""
        if self.state.progress is not None:
            self._begun = None
            return self.state.progress
        if self._begun is None:
            self._begun = self._begin()
        return self._begun

    def _decide(self, last_started: float | None) -> Action:
        client = self.deps.client
        return next_action(
            self._progress_now(),
            api_now=client.api_now(),
            api_time=client.api_time(),
            last_started_api=last_started,
            poll_interval_seconds=self.settings.poll_interval_seconds,
            reconcile_interval_seconds=self.settings.reconcile_interval_seconds,
            reconciled_last=self._reconciled_last,
        )

    async def cycle(self) -> bool:
        """Learn the clock, decide, run one cycle; True when more work is waiting."""
        await self._sync_clock()
        if self._stop is not None and self._stop.is_set():
            return False
        action = self._decide(None)
        assert isinstance(action, Run)  # noqa: S101 - nothing to wait for without a last start
        return await self._run_cycle(action.kind)

    async def _run_cycle(self, kind: CycleKind) -> bool:
        """Run the decided cycle; return True when more work is waiting (no need to sleep)."""
        self._cycle_number += 1
        started = time.monotonic()
        progress = self._progress_now()
        if kind is CycleKind.SNAPSHOT:
            return await self._snapshot(progress, started)
        if kind is CycleKind.RECONCILE:
            await self._reconcile(progress, started)
            self._reconciled_last = True
            return False
        await self._incremental(progress, started)
        self._reconciled_last = False
        return False

    async def _sync_clock(self) -> None:
        if not self.deps.client.api_clock_known:
            await self.deps.client.fetch_page(self.event_id, None, page=1, per_page=1)

    # --- phases ---------------------------------------------------------------------------

    def _begin(self) -> EventProgress:
        upper = self._upper_bound()
        mode = self.settings.snapshot_mode
        log.info(
            "starting event",
            extra={"event_id": self.event_id, "snapshot_mode": mode, "snapshot_upper": upper},
        )
        if mode == "never":
            return self._progress(STREAMING, upper, upper, upper, last_reconcile_at=upper)
        return self._progress(SNAPSHOT, upper, -1, upper, last_reconcile_at=None)

    async def _snapshot(self, progress: EventProgress, started: float) -> bool:
        upper = progress.snapshot_upper
        assert upper is not None  # noqa: S101 - set when the snapshot phase begins
        emit = self.settings.snapshot_mode == "initial"
        batch = self._new_batch()
        window = Window(WindowKind.CREATED, progress.created_through + 1, upper)
        # A full transaction commits in the background while the next one is read and
        # staged (transactions stay one at a time and in order; the next one starts only
        # after the previous one committed). A failed commit fails the cycle as before.
        committing: asyncio.Task[None] | None = None
        try:
            async for part in self.deps.reader.read(self.event_id, window):
                for meeting in part.meetings:
                    batch.stage(meeting, part.window, kind="snapshot", snapshot=True, emit=emit)
                batch.add_dead_letters(part)
                progress = replace(progress, created_through=part.window.end)
                if len(batch) >= MAX_RECORDS_PER_TRANSACTION:
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(
                        self._commit(batch, progress, CycleKind.SNAPSHOT, started)
                    )
                    batch = self._new_batch(after=batch)
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                # The cycle failed while a commit was in flight: let it end (its outcome
                # no longer matters: the cycle is redone from whatever was committed).
                with contextlib.suppress(Exception):
                    await asyncio.shield(committing)
            elif committing is not None and not committing.cancelled():
                committing.exception()  # retrieved here if the loop failed before awaiting it
        done = replace(progress, phase=STREAMING, created_through=upper, last_reconcile_at=upper)
        await self._commit(batch, done, CycleKind.SNAPSHOT, started)
        log.info(
            "snapshot complete",
            extra={"event_id": self.event_id, "meetings": len(self.state.meetings)},
        )
        return True

    async def _incremental(self, progress: EventProgress, started: float) -> None:
        followed = self._follow_api_clock(progress)
        marks = followed.watermarks
        plan = plan_incremental(
            marks,
            self.deps.client.api_now(),
            self.settings.settle_seconds,
            self.settings.overlap_seconds,
            followed.ahead,
        )
        # Fresh seconds first, committed with the watermarks: a new change is published
        # without waiting for the overlap to be re-read.
        batch, marks = await self._read_incremental(plan.fresh, progress, marks, started)
        progress = self._with_marks(progress, marks)
        await self._commit(batch, progress, CycleKind.INCREMENTAL, started)
        # Then the overlap, for rows that landed late (its windows end at the watermarks, so
        # they never move them): re-reading what was published finds equal content and
        # stages nothing, so usually there is nothing to commit.
        batch, _ = await self._read_incremental(plan.lookback, progress, marks, started)
        if len(batch):
            await self._commit(batch, progress, CycleKind.INCREMENTAL, started)

    async def _read_incremental(
        self, windows: list[Window], progress: EventProgress, marks: Watermarks, started: float
    ) -> tuple[Batch, Watermarks]:
        """Read ``windows`` into a batch, moving ``marks`` over every part read; a batch
        that fills up is committed on the way, with the marks so far."""
        batch = self._new_batch()
        for window in windows:
            async for part in self.deps.reader.read(self.event_id, window):
                for meeting in part.meetings:
                    batch.stage(meeting, part.window, kind=window.kind.value)
                batch.add_dead_letters(part)
                marks = advance(marks, part.window)
                if len(batch) >= MAX_RECORDS_PER_TRANSACTION:
                    await self._commit(
                        batch, self._with_marks(progress, marks), CycleKind.INCREMENTAL, started
                    )
                    batch = self._new_batch()
            marks = advance(marks, window)
        return batch, marks

    async def _reconcile(self, progress: EventProgress, started: float) -> None:
        upper = self._upper_bound()
        covered = self._follow_api_clock(progress).watermarks.modified_through * 1000
        unattributed = 0
        seen: set[int] = set()
        batch = self._new_batch()
        window = Window(WindowKind.CREATED, 0, upper)
        async for part in self.deps.reader.read(self.event_id, window):
            seen.update(m.meeting_id for m in part.meetings)
            seen.update(part.inconsistent)  # changed while read, or withheld for a bad row
            unattributed += sum(1 for d in part.dead_letters if d.meeting_id is None)
            for meeting in part.meetings:
                if meeting.modified_at > covered or self._untracked_by_design(
                    batch, meeting, progress
                ):
                    # Newer than the incremental watermark: the next incremental window
                    # reads it. Reconciliation only judges what incremental claims to cover.
                    continue
                change = batch.stage(meeting, part.window, kind="reconcile")
                if change is not None:
                    batch.caught[change.change_type.value] += 1
            batch.add_dead_letters(part)
            if len(batch) >= MAX_RECORDS_PER_TRANSACTION:
                await self._commit(batch, progress, CycleKind.RECONCILE, started)
                batch = self._new_batch()

        def created_at(meeting_id: int) -> int | None:
            tracked = batch.staging.get(meeting_id)
            return None if tracked is None else tracked.meeting.created_at

        gone = deletions(
            batch.staging.tracked_ids(),
            seen,
            unattributed=unattributed,
            bound_ms=upper * 1000,
            created_at=created_at,
        )
        if gone.held_back:
            # A malformed row that names no readable meeting may belong to any of them:
            # deleting now could delete a meeting that still exists. Wait for a clean pass.
            log.warning(
                "reconciliation skips deletes: malformed rows without a meeting id",
                extra={
                    "event_id": self.event_id,
                    "rows": unattributed,
                    "candidates": gone.held_back,
                },
            )
        for meeting_id in gone.meeting_ids:
            tracked = batch.staging.get(meeting_id)
            assert tracked is not None  # noqa: S101 - deletions() keeps tracked ids only
            # Not counted as "caught": polling can never see a hard delete.
            detected = self.deps.client.api_now() * 1000
            batch.stage_delete(tracked, window, detected)
        await self._commit(
            batch, replace(progress, last_reconcile_at=upper), CycleKind.RECONCILE, started
        )
        log.info(
            "reconciliation complete",
            extra={
                "event_id": self.event_id,
                "seen": len(seen),
                "deleted": len(gone.meeting_ids),
                "caught": dict(batch.caught),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    # --- policy ----------------------------------------------------------------------------

    def _untracked_by_design(self, batch: Batch, meeting: Meeting, progress: EventProgress) -> bool:
        # snapshot_mode=never: meetings that existed before the connector started are not
        # captured until they change; reconciliation must not "discover" them either.
        if self.settings.snapshot_mode != "never" or progress.snapshot_upper is None:
            return False
        return (
            meeting.created_at <= progress.snapshot_upper * 1000
            and batch.staging.get(meeting.meeting_id) is None
        )

    # --- committing -------------------------------------------------------------------------

    async def _commit(
        self, batch: Batch, progress: EventProgress, kind: CycleKind, started: float
    ) -> None:
        progress = replace(progress, updated_at=int(self.deps.wall_clock() * 1000))
        batch.close(progress)
        try:
            await self.publisher.publish(batch.records)
        except RetriablePublishError:
            self.deps.metrics.transactions.labels(self._label, "aborted").inc()
            raise
        except ProducerFencedError:
            self.deps.metrics.producer_fenced.labels(self._label).inc()
            raise
        self.state.apply(batch.staging)
        report = self._report(batch, progress, kind, started)
        report.observe(self.deps.metrics)
        self.deps.health.cycle_finished(
            self.event_id, phase=report.cycle, ok=True, detail=report.status_detail()
        )
        log.log(report.log_level, "cycle committed", extra=report.log_extra())

    def _report(
        self, batch: Batch, progress: EventProgress, kind: CycleKind, started: float
    ) -> CycleReport:
        return CycleReport(
            event_id=self.event_id,
            cycle=kind,
            cycle_number=self._cycle_number,
            progress=progress,
            published=dict(batch.published),
            caught=dict(batch.caught),
            dead_letters=batch.dead_letters,
            records=len(batch),
            modified_at=tuple(batch.modified_at),
            tracked_meetings=len(self.state.meetings),
            state_bytes=self.state.meetings.stored_bytes,
            api_now=self.deps.client.api_now(),
            wall_now=self.deps.wall_clock(),
            seconds=time.monotonic() - started,
        )

    # --- helpers ----------------------------------------------------------------------------

    def _new_batch(self, after: Batch | None = None) -> Batch:
        return Batch.start(
            self._destination, self.state, self.deps.serdes, self.deps.wall_clock, after
        )

    def _upper_bound(self) -> int:
        return self.deps.client.api_now() - self.settings.settle_seconds

    def _progress(
        self,
        phase: Phase,
        snapshot_upper: int,
        created_through: int,
        modified_through: int,
        *,
        last_reconcile_at: int | None,
    ) -> EventProgress:
        return EventProgress(
            event_id=self.event_id,
            phase=phase,
            snapshot_upper=snapshot_upper,
            created_through=created_through,
            modified_through=modified_through,
            last_reconcile_at=last_reconcile_at,
            updated_at=int(self.deps.wall_clock() * 1000),
        )

    def _follow_api_clock(self, progress: EventProgress) -> Followed:
        """The watermarks, rewound if the API's clock went back below them."""
        client = self.deps.client
        return follow_api_clock(
            Watermarks(progress.created_through, progress.modified_through),
            client.api_now(),
            self.settings.settle_seconds,
            self.settings.overlap_seconds,
            client.api_step(),
        )

    @staticmethod
    def _with_marks(progress: EventProgress, marks: Watermarks) -> EventProgress:
        return replace(
            progress,
            created_through=marks.created_through,
            modified_through=marks.modified_through,
        )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["Collaborators", "EventSync"]
