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
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from connector.batch import Batch, Destination
from connector.config import Settings
from connector.errors import (
    FatalSourceError,
    ProducerFencedError,
    RetriablePublishError,
    RetriableSourceError,
)
from connector.health import HealthState
from connector.metrics import Metrics
from connector.model import Meeting
from connector.progress import EventProgress
from connector.publisher import TransactionalPublisher, state_partition
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
#: Polls start this long after a second ends on the API's clock (estimate error, late writes).
TICK_MARGIN_SECONDS = 0.15
SNAPSHOT = "snapshot"
STREAMING = "streaming"


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
        self._cycle_phase = SNAPSHOT
        self._cycle_started = time.monotonic()
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
        while not stop.is_set():
            self.deps.health.beat()
            phase = self._cycle_phase = self._phase()
            started = self._cycle_started = time.monotonic()
            self._cycle_number += 1
            started_api = self.deps.client.api_time()
            try:
                more = await self.cycle()
                failures = 0
                self.deps.metrics.cycles.labels(self._label, phase, "ok").inc()
            except (RetriableSourceError, RetriablePublishError, FatalSourceError) as exc:
                # Nothing of the cycle was committed: the state and watermarks are as before.
                # A fatal *source* error (rejected key, unknown event) is not retried soon,
                # but neither does it stop the other events: readiness and the Stalled alert
                # report it, and the event recovers by itself once the API is fixed.
                failures += 1
                self.deps.metrics.cycles.labels(self._label, phase, "error").inc()
                self.deps.health.cycle_finished(
                    self.event_id, phase=phase, ok=False, detail={"error": str(exc)}
                )
                fatal = isinstance(exc, FatalSourceError)
                delay = 60.0 if fatal else self._backoff(failures)
                (log.error if fatal else log.warning)(
                    "cycle failed; the committed state is unchanged, retrying",
                    extra={
                        "event_id": self.event_id,
                        "phase": phase,
                        "error": str(exc),
                        "retry_in_s": round(delay, 1),
                    },
                )
                await _wait(stop, delay)
                continue
            finally:
                self.deps.metrics.cycle_duration.labels(self._label, phase).observe(
                    time.monotonic() - started
                )
            if not more:
                await self._idle(stop, started_api)

    async def _idle(self, stop: asyncio.Event, started_api: float) -> None:
        """Wait for the next poll; on the way, probe the API's clock if a probe is due
        before it (polls alone, all at one phase of the second, cannot correct the clock
        estimate they are scheduled by: see ``connector.source.api_clock``)."""
        client = self.deps.client
        until_poll = self._until_next_poll(started_api)
        probe_in = client.clock_probe_delay()
        if probe_in is not None and probe_in < until_poll:
            await _wait(stop, probe_in)
            if stop.is_set():
                return
            try:
                async with asyncio.timeout(max(1.0, until_poll - probe_in)):
                    await client.probe_clock(self.event_id)
            except (TimeoutError, RetriableSourceError, FatalSourceError) as exc:
                log.debug(
                    "clock probe failed", extra={"event_id": self.event_id, "error": str(exc)}
                )
            until_poll = self._until_next_poll(started_api)
        await _wait(stop, until_poll)

    def _until_next_poll(self, started_api: float) -> float:
        """Seconds to sleep so the next cycle starts a poll interval after this one began,
        just after a second ends on the API's clock: a window can include a second only
        once it is over, so a poll right after the tick publishes its changes soonest."""
        interval = self.settings.poll_interval_seconds
        target = started_api + interval
        if interval >= 1:
            # the tick nearest the target (the interval may shrink or grow by half a second)
            target = math.ceil(target - TICK_MARGIN_SECONDS - 0.5) + TICK_MARGIN_SECONDS
        # Never longer than an interval (and the tick): the API's clock may have gone back.
        return min(interval + 1.0, max(0.0, target - self.deps.client.api_time()))

    def _backoff(self, failures: int) -> float:
        return min(60.0, self.settings.poll_interval_seconds * 2.0 ** min(failures, 6))

    async def cycle(self) -> bool:
        """Run one cycle; return True when more work is waiting (no need to sleep)."""
        await self._sync_clock()
        if self._stop is not None and self._stop.is_set():
            # Stopped while the clock was learnt (right after the restore, say): a snapshot
            # or pass started now would only be cut off at the shutdown timeout.
            return False
        progress = self.state.progress
        if progress is None:
            progress = self._begin()
        if progress.phase == SNAPSHOT:
            return await self._snapshot(progress)
        if self._reconcile_due(progress) and not self._reconciled_last:
            await self._reconcile(progress)
            self._reconciled_last = True
            return False
        await self._incremental(progress)
        self._reconciled_last = False
        return False

    def _phase(self) -> str:
        progress = self.state.progress
        if progress is None or progress.phase == SNAPSHOT:
            return SNAPSHOT
        due = self._reconcile_due(progress) and not self._reconciled_last
        return "reconcile" if due else "incremental"

    async def _sync_clock(self) -> None:
        # Window bounds come from the API's clock: learn it before the first plan.
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

    async def _snapshot(self, progress: EventProgress) -> bool:
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
                    batch.stage(meeting, part.window, kind=SNAPSHOT, snapshot=True, emit=emit)
                batch.add_dead_letters(part)
                progress = replace(progress, created_through=part.window.end)
                if len(batch) >= MAX_RECORDS_PER_TRANSACTION:
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(batch, progress))
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
        await self._commit(batch, done)
        log.info(
            "snapshot complete",
            extra={"event_id": self.event_id, "meetings": len(self.state.meetings)},
        )
        return True

    async def _incremental(self, progress: EventProgress) -> None:
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
        batch, marks = await self._read_incremental(plan.fresh, progress, marks)
        progress = self._with_marks(progress, marks)
        await self._commit(batch, progress)
        # Then the overlap, for rows that landed late (its windows end at the watermarks, so
        # they never move them): re-reading what was published finds equal content and
        # stages nothing, so usually there is nothing to commit.
        batch, _ = await self._read_incremental(plan.lookback, progress, marks)
        if len(batch):
            await self._commit(batch, progress)

    async def _read_incremental(
        self, windows: list[Window], progress: EventProgress, marks: Watermarks
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
                    await self._commit(batch, self._with_marks(progress, marks))
                    batch = self._new_batch()
            marks = advance(marks, window)
        return batch, marks

    async def _reconcile(self, progress: EventProgress) -> None:
        upper = self._upper_bound()
        started = time.monotonic()
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
                await self._commit(batch, progress)
                batch = self._new_batch()
        deleted = 0
        vanished = [m for m in batch.staging.tracked_ids() if m not in seen]
        if unattributed:
            # A malformed row that names no readable meeting may belong to any of them:
            # deleting now could delete a meeting that still exists. Wait for a clean pass.
            log.warning(
                "reconciliation skips deletes: malformed rows without a meeting id",
                extra={
                    "event_id": self.event_id,
                    "rows": unattributed,
                    "candidates": len(vanished),
                },
            )
            vanished = []
        for meeting_id in vanished:
            tracked = batch.staging.get(meeting_id)
            if tracked is None or tracked.meeting.created_at > upper * 1000:
                continue  # created after this pass's bound: not expected in it
            # Not counted as "caught": polling can never see a hard delete.
            detected = self.deps.client.api_now() * 1000
            batch.stage_delete(tracked, Window(WindowKind.CREATED, 0, upper), detected)
            deleted += 1
        await self._commit(batch, replace(progress, last_reconcile_at=upper))
        log.info(
            "reconciliation complete",
            extra={
                "event_id": self.event_id,
                "seen": len(seen),
                "deleted": deleted,
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

    async def _commit(self, batch: Batch, progress: EventProgress) -> None:
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
        self._observe_commit(batch, progress)

    def _observe_commit(self, batch: Batch, progress: EventProgress) -> None:
        m = self.deps.metrics
        label = self._label
        now = self.deps.wall_clock()
        api_now = self.deps.client.api_now()
        m.transactions.labels(label, "committed").inc()
        for change_type, count in batch.published.items():
            m.events_published.labels(label, change_type).inc(count)
        for change_type, count in batch.caught.items():
            m.reconcile_caught.labels(label, change_type).inc(count)
        if batch.dead_letters:
            m.dead_letters.labels(label).inc(batch.dead_letters)
        offset = api_now - now
        for modified_at in batch.modified_at:
            m.end_to_end_latency.labels(label).observe(max(0.0, now + offset - modified_at / 1000))
        m.last_success.labels(label).set(now)
        m.tracked_meetings.labels(label).set(len(self.state.meetings))
        m.state_bytes.labels(label).set(self.state.meetings.stored_bytes)
        m.watermark.labels(label, "created").set(max(0, progress.created_through))
        m.watermark.labels(label, "modified").set(max(0, progress.modified_through))
        if progress.phase == STREAMING:
            m.source_lag.labels(label).set(max(0, api_now - progress.modified_through))
        self.deps.health.cycle_finished(
            self.event_id,
            phase=self._cycle_phase,
            ok=True,
            detail={
                "phase": progress.phase,
                "created_through": progress.created_through,
                "modified_through": progress.modified_through,
                "last_reconcile_at": progress.last_reconcile_at,
                "lag_seconds": max(0, api_now - progress.modified_through),
                "published": dict(batch.published),
                "dead_letters": batch.dead_letters,
                "tracked_meetings": len(self.state.meetings),
            },
        )
        # One line per transaction that carried something; quiet cycles only at DEBUG.
        log.log(
            logging.INFO if batch.published or batch.dead_letters else logging.DEBUG,
            "cycle committed",
            extra={
                "event_id": self.event_id,
                "phase": progress.phase,  # snapshot | streaming (what the event is in)
                "cycle": self._cycle_phase,  # snapshot | incremental | reconcile
                "cycle_number": self._cycle_number,
                "published": dict(batch.published),
                "dead_letters": batch.dead_letters,
                "records": len(batch),
                "created_through": progress.created_through,
                "modified_through": progress.modified_through,
                "lag_seconds": max(0, api_now - progress.modified_through),
                "seconds": round(time.monotonic() - self._cycle_started, 3),
            },
        )

    # --- helpers ----------------------------------------------------------------------------

    def _new_batch(self, after: Batch | None = None) -> Batch:
        return Batch.start(
            self._destination, self.state, self.deps.serdes, self.deps.wall_clock, after
        )

    def _upper_bound(self) -> int:
        return self.deps.client.api_now() - self.settings.settle_seconds

    def _reconcile_due(self, progress: EventProgress) -> bool:
        interval = self.settings.reconcile_interval_seconds
        if interval <= 0 or progress.last_reconcile_at is None:
            return False
        return self.deps.client.api_now() - progress.last_reconcile_at >= interval

    def _progress(
        self,
        phase: str,
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
