"""The per-event sync: a poller, a reconciler and a delete checker side by side,
committing through one ``Committer``.

One ``EventSync`` per configured event, all in one process, sharing the API client (and so
its rate and concurrency limits). Each event runs three concerns as three tasks:

- the poller: first the snapshot (the full export as CREATED windows up to a fixed upper
  bound, committed part by part, resumable after a crash: progress records how far it
  got), then incremental cycles: a MODIFIED window (and a CREATED one, unless new meetings
  are known to show in last-modified windows: ``MEETINGS_CDC_CREATED_WINDOWS``) from the
  overlap before the watermarks up to the API's now minus the settle delay, committed at
  once (when the overlap held more than half a page, the next poll reads the fresh seconds
  and commits them before it re-reads the overlap);
- the reconciler: every ``reconcile_interval_seconds`` once the event streams, a full pass
  (``connector.reconcile``) that catches what polling cannot see (hard deletes) and
  anything incremental missed. Polling never waits for it.
- the delete checker: every ``delete_check_interval_seconds`` once the event streams, a
  delete check (``connector.delete_checker``): the API's row counts of ranges of creation
  time against the state's, bisecting only ranges that differ, so a hard delete is
  published within an interval at a cost that grows with the deletes, not the event. An
  API that reports no totals leaves deletes to the reconciler (said once at start-up).

Every write (events, state, dead letters, watermarks) goes out in Kafka transactions, one
at a time and in order, through the event's ``Committer``: it stages each transaction
against the state as committed so far and applies it only after the commit; a failed
cycle is simply redone from the committed state, and because classification compares
content, re-reading never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from connector.batch import Batch, Destination
from connector.committer import Committer, Turn
from connector.config import Settings
from connector.delete_check import CheckOutcome, judged_span
from connector.delete_checker import TotalsNotReported, check_deletes
from connector.errors import FatalSourceError, RetriablePublishError, RetriableSourceError
from connector.health import HealthState
from connector.metrics import Metrics
from connector.model import Meeting
from connector.progress import EventProgress, Phase
from connector.publisher import TransactionalPublisher, state_partition
from connector.reconcile import PassBounds, reconcile
from connector.schedule import Action, CycleKind, Idle, Run, next_action, reconcile_delay
from connector.serde import Serdes
from connector.source.client import BACKGROUND, CLOCK_PROBE_WINDOW, ExportClient
from connector.source.creation_stamps import CreationStamps, CycleReads
from connector.source.reader import WindowPart, WindowReader
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
#: The next poll reads the overlap and the fresh seconds as one window (one request) when
#: this cycle read at most this share of a page per kind; more, and the fresh seconds are
#: read and committed first (latency: a busy overlap costs pages a new change would wait for).
FUSE_BELOW = 0.5
SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING
_SOURCE_ERRORS = (RetriableSourceError, RetriablePublishError, FatalSourceError)


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
    #: Whether the API stamps last-modified at creation: learnt once for all the events.
    creation_stamps: CreationStamps = field(default_factory=CreationStamps)


class EventSync:
    """The sync of one event: its poller and its reconciler."""

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
        destination = Destination(
            event_id=event_id,
            state_partition=state_partition(event_id, deps.state_partitions),
            changes_topic=self.settings.changes_topic,
            state_topic=self.settings.state_topic,
            dlq_topic=self.settings.dlq_topic,
            connector_name=self.settings.connector_name,
        )
        self.committer = Committer(
            state,
            publisher,
            destination,
            deps.serdes,
            deps.metrics,
            deps.health,
            api_now=deps.client.api_now,
            wall_clock=deps.wall_clock,
        )
        # cycle(), one turn at a time: a pass longer than the reconcile interval leaves the
        # next one due at once; after each pass one incremental cycle runs first.
        self._reconciled_last = False
        self._begun: EventProgress | None = None  # before the first commit: how it begins
        self._cycle_number = 0  # of this process: a cycle may commit more than once
        self._fused = True  # the next poll reads overlap and fresh seconds as one window
        self._stop = asyncio.Event()
        self._totals_reported: bool | None = None  # learnt by the delete checker

    # --- the concerns -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, reconcile and check for deletes side by side until ``stop`` is set.

        Only errors that make the process unusable (a fenced or broken producer) propagate
        to the supervisor (the other concerns are then cancelled); API failures are retried,
        each kind at its own pace.
        """
        self._stop = stop
        tasks = [
            asyncio.create_task(self._poll(stop), name=f"poll-{self.event_id}"),
            asyncio.create_task(self._reconcile_loop(stop), name=f"reconcile-{self.event_id}"),
            asyncio.create_task(self._delete_check_loop(stop), name=f"deletes-{self.event_id}"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, stop: asyncio.Event) -> None:
        failures = 0
        last_started: float | None = None  # on the API's clock; None: the next may start now
        while not stop.is_set():
            self.deps.health.beat()
            try:
                # Window bounds come from the API's clock: learn it before deciding.
                await self._sync_clock()
            except (RetriableSourceError, FatalSourceError) as exc:
                failures += 1
                await self._failed(self._first_kind(), exc, failures, 0.0)
                continue
            if stop.is_set():
                # Stopped while the clock was learnt (right after the restore, say): a
                # snapshot started now would only be cut off at the shutdown timeout.
                return
            action = self._decide(last_started, reconcile_interval=0)
            if isinstance(action, Idle):
                if not await self._idle(stop, action.seconds):
                    # Waited the whole delay: poll now, even if the API's clock went back
                    # meanwhile (the delay would be recomputed from the old start forever).
                    last_started = None
                continue
            last_started = self.deps.client.api_time()
            outcome = await self._attempt(action.kind)
            if isinstance(outcome, Exception):
                failures += 1
                await self._report_failure(action.kind, outcome, failures)
                last_started = None
                continue
            failures = 0
            if outcome:
                last_started = None

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        # This task's reads (and the reader's tasks it starts) yield API slots to polls.
        BACKGROUND.set(True)
        interval = self.settings.reconcile_interval_seconds
        failures = 0
        while not stop.is_set():
            progress = self.state.progress
            delay = (
                math.inf
                if progress is None
                else reconcile_delay(progress, self.deps.client.api_now(), interval)
            )
            if delay > 0:
                # Re-checked at least every second: the snapshot ends, the clock moves.
                await _wait(stop, min(delay, 1.0))
                continue
            outcome = await self._attempt(CycleKind.RECONCILE)
            if isinstance(outcome, Exception):
                failures += 1
                await self._report_failure(CycleKind.RECONCILE, outcome, failures)
            else:
                failures = 0

    async def _delete_check_loop(self, stop: asyncio.Event) -> None:
        """Check for deletes every interval (from one check's start to the next) once the
        event streams; first learn whether the API reports totals (one request)."""
        BACKGROUND.set(True)
        interval = self.settings.delete_check_interval_seconds
        health = self.deps.health
        if interval <= 0:
            health.set_delete_check(self.event_id, "off: deletes are found by reconciliation")
            return
        failures = 0
        while not stop.is_set() and self._totals_reported is None:
            try:
                total = await self.deps.client.count_rows(self.event_id, CLOCK_PROBE_WINDOW)
            except (RetriableSourceError, FatalSourceError) as exc:
                failures += 1
                await _wait(stop, self._backoff(failures))
                log.debug(
                    "totals probe failed", extra={"event_id": self.event_id, "error": str(exc)}
                )
                continue
            self._totals_reported = total is not None
        if not self._totals_reported:
            if not stop.is_set():
                self._no_totals()
            return
        for _ in self.state.index_steps(self.deps.serdes):
            await asyncio.sleep(0)  # a restored event's row index, built between polls
        health.set_delete_check(self.event_id, f"every {interval:g} s")
        failures = 0
        next_at = time.monotonic()
        while not stop.is_set():
            progress = self.state.progress
            if progress is None or progress.phase != STREAMING or time.monotonic() < next_at:
                await _wait(stop, min(1.0, max(0.01, next_at - time.monotonic())))
                continue
            next_at = time.monotonic() + interval
            outcome = await self._attempt(CycleKind.DELETE_CHECK)
            if not self._totals_reported:
                self._no_totals()
                return
            if isinstance(outcome, Exception):
                failures += 1
                self.deps.metrics.delete_checks.labels(self._label, CheckOutcome.ERROR).inc()
                await self._report_failure(CycleKind.DELETE_CHECK, outcome, failures)
            else:
                failures = 0

    def _no_totals(self) -> None:
        how = (
            "unavailable: the export API reports no row totals; deletes are found by "
            f"reconciliation every {self.settings.reconcile_interval_seconds:g} s"
        )
        log.warning(
            "delete check unavailable: the export API reports no row totals, so hard deletes "
            "are found by the full reconciliation only (MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS)",
            extra={
                "event_id": self.event_id,
                "reconcile_interval_s": self.settings.reconcile_interval_seconds,
            },
        )
        self.deps.health.set_delete_check(self.event_id, how)

    async def _attempt(self, kind: CycleKind) -> bool | Exception:
        """Run a cycle of ``kind``: whether more work waits, or the error it failed with
        (fenced or broken producers propagate)."""
        started = time.monotonic()
        outcome: bool | Exception
        try:
            outcome = await self._run_cycle(kind, started)
        except _SOURCE_ERRORS as exc:
            outcome = exc
        result = "error" if isinstance(outcome, Exception) else "ok"
        self.deps.metrics.cycles.labels(self._label, kind, result).inc()
        self.deps.metrics.cycle_duration.labels(self._label, kind).observe(
            time.monotonic() - started
        )
        return outcome

    async def _failed(self, kind: CycleKind, exc: Exception, failures: int, seconds: float) -> None:
        self.deps.metrics.cycles.labels(self._label, kind, "error").inc()
        self.deps.metrics.cycle_duration.labels(self._label, kind).observe(seconds)
        await self._report_failure(kind, exc, failures)

    async def _report_failure(self, kind: CycleKind, exc: Exception, failures: int) -> None:
        """Report a failed cycle and wait before the next try.

        Nothing of the cycle was committed: the state and watermarks are as before. A fatal
        *source* error (rejected key, unknown event) is not retried soon, but neither does
        it stop the other events: readiness and the Stalled alert report it, and the event
        recovers by itself once the API is fixed.
        """
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
        await _wait(self._stop, delay)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait ``seconds`` for the next poll; on the way, probe the API's clock if a probe
        is due before it (polls alone, all at one phase of the second, cannot correct the
        clock estimate they are scheduled by: see ``connector.source.api_clock``). True
        when it probed: the loop then decides the rest of the wait on the corrected clock."""
        client = self.deps.client
        probe_in = client.clock_probe_delay()
        if probe_in is None or probe_in >= seconds:
            await _wait(stop, seconds)
            return False
        await _wait(stop, probe_in)
        if stop.is_set():
            return True
        try:
            async with asyncio.timeout(max(1.0, seconds - probe_in)):
                await client.probe_clock(self.event_id)
        except (TimeoutError, RetriableSourceError, FatalSourceError) as exc:
            log.debug("clock probe failed", extra={"event_id": self.event_id, "error": str(exc)})
        return True

    def _backoff(self, failures: int) -> float:
        return min(60.0, self.settings.poll_interval_seconds * 2.0 ** min(failures, 6))

    # --- deciding ---------------------------------------------------------------------------

    def _progress_now(self) -> EventProgress:
        """The committed progress, or how the event begins (decided once, then kept)."""
        if self.state.progress is not None:
            self._begun = None
            return self.state.progress
        if self._begun is None:
            self._begun = self._begin()
        return self._begun

    def _decide(
        self, last_started: float | None, reconcile_interval: float | None = None
    ) -> Action:
        client = self.deps.client
        return next_action(
            self._progress_now(),
            api_now=client.api_now(),
            api_time=client.api_time(),
            last_started_api=last_started,
            poll_interval_seconds=self.settings.poll_interval_seconds,
            reconcile_interval_seconds=(
                self.settings.reconcile_interval_seconds
                if reconcile_interval is None
                else reconcile_interval
            ),
            reconciled_last=self._reconciled_last,
        )

    def _first_kind(self) -> CycleKind:
        action = self._decide(None, reconcile_interval=0)
        return action.kind if isinstance(action, Run) else CycleKind.INCREMENTAL

    async def cycle(self) -> bool:
        """One turn in sequence (tests, tools): learn the clock, decide (a due pass
        included), run; True when more work is waiting."""
        await self._sync_clock()
        if self._stop.is_set():
            return False
        action = self._decide(None)
        assert isinstance(action, Run)  # noqa: S101 - nothing to wait for without a last start
        return await self._run_cycle(action.kind, time.monotonic())

    async def _run_cycle(self, kind: CycleKind, started: float) -> bool:
        """Run the decided cycle; return True when more work is waiting (no need to sleep)."""
        self._cycle_number += 1
        turn = Turn(kind, self._cycle_number, started)
        progress = self._progress_now()
        if kind is CycleKind.SNAPSHOT:
            return await self._snapshot(progress, turn)
        if kind is CycleKind.DELETE_CHECK:
            await self._check_deletes(progress, turn)
            return False
        if kind is CycleKind.RECONCILE:
            await self._reconcile(progress, turn)
            self._reconciled_last = True
            return False
        await self._incremental(progress, turn)
        self._reconciled_last = False
        return False

    async def _sync_clock(self) -> None:
        if not self.deps.client.api_clock_known:
            await self.deps.client.fetch_page(self.event_id, None, page=1, per_page=1)

    # --- cycles -----------------------------------------------------------------------------

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

    async def _snapshot(self, progress: EventProgress, turn: Turn) -> bool:
        upper = progress.snapshot_upper
        assert upper is not None  # noqa: S101 - set when the snapshot phase begins
        emit = self.settings.snapshot_mode == "initial"
        window = Window(WindowKind.CREATED, progress.created_through + 1, upper)

        def stage(parts: list[WindowPart]) -> Callable[[Batch], None]:
            def into(batch: Batch) -> None:
                for part in parts:
                    for meeting in part.meetings:
                        batch.stage(meeting, part.window, kind="snapshot", snapshot=True, emit=emit)
                    batch.add_dead_letters(part)

            return into

        # A full transaction commits in the background while the next one is read
        # (transactions stay one at a time and in order: the committer stages the next one
        # only after the previous one committed). A failed commit fails the cycle as before.
        committing: asyncio.Task[Batch | None] | None = None
        parts: list[WindowPart] = []
        size = rows = requests = 0
        try:
            async for part in self.deps.reader.read(self.event_id, window):
                parts.append(part)
                size += 2 * len(part.meetings) + len(part.dead_letters)
                rows += part.rows
                requests += part.requests
                progress = replace(progress, created_through=part.window.end)
                if size >= MAX_RECORDS_PER_TRANSACTION:
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(
                        self.committer.commit(turn, stage(parts), _fixed(progress))
                    )
                    parts, size = [], 0
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
        await self.committer.commit(turn, stage(parts), _fixed(done))
        log.info(
            "snapshot complete",
            extra={
                "event_id": self.event_id,
                "meetings": len(self.state.meetings),
                # of this process's read (a resumed snapshot read only the rest)
                "rows": rows,
                "requests": requests,
            },
        )
        return True

    async def _incremental(self, progress: EventProgress, turn: Turn) -> None:
        followed = self._follow_api_clock(progress)
        marks = followed.watermarks
        mode = self.settings.created_windows
        created_windows = mode == "always" or (
            mode == "auto" and not self.deps.creation_stamps.proven
        )
        plan = plan_incremental(
            marks,
            self.deps.client.api_now(),
            self.settings.settle_seconds,
            self.settings.overlap_seconds,
            followed.ahead,
            created_windows=created_windows,
            fused=self._fused,
        )
        # Fresh seconds first, committed with the watermarks: while the overlap before them
        # fits a page it is part of the same window (one request per kind); otherwise it is
        # re-read afterwards, so a new change is published without waiting for its pages.
        # Re-reading what was published finds equal content and stages nothing, while a row
        # that landed late in a second already read is caught there.
        reads = _Reads(collect=mode == "auto")
        parts, marks = await self._read_incremental(
            plan.fresh, progress, marks, turn, plan.creations_in_modified, reads
        )
        await self._commit_parts(turn, parts, progress, marks)
        parts, _ = await self._read_incremental(
            plan.lookback, progress, marks, turn, plan.creations_in_modified, reads
        )
        await self._commit_parts(turn, parts, progress, marks, skip_empty=True)
        self._fused = max(reads.rows.values(), default=0) <= self.settings.api_per_page * FUSE_BELOW
        if reads.collect:
            self._weigh_creation_stamps(plan.windows, reads.meetings)

    def _weigh_creation_stamps(
        self, windows: list[Window], seen: dict[WindowKind, list[Meeting]]
    ) -> None:
        """Learn from this cycle whether last-modified windows show new meetings
        (``connector.source.creation_stamps``); say so when the verdict changes."""
        stamps = self.deps.creation_stamps
        before = stamps.proven
        stamps.observe(
            CycleReads(
                created=seen[WindowKind.CREATED],
                modified_windows=[w for w in windows if w.kind is WindowKind.MODIFIED],
                modified=seen[WindowKind.MODIFIED],
            )
        )
        if stamps.proven and not before:
            log.info(
                "new meetings show in last-modified windows: incremental cycles no longer "
                "read created windows",
                extra={"event_id": self.event_id, "confirmations": stamps.confirmations},
            )
        elif before and not stamps.proven:
            log.warning(
                "a meeting's last-modified time does not show its creation: incremental "
                "cycles read created windows again (MEETINGS_CDC_CREATED_WINDOWS=always "
                "keeps them)",
                extra={"event_id": self.event_id},
            )

    async def _read_incremental(
        self,
        windows: list[Window],
        progress: EventProgress,
        marks: Watermarks,
        turn: Turn,
        creations_in_modified: bool,
        reads: _Reads,
    ) -> tuple[list[WindowPart], Watermarks]:
        """Read ``windows``, moving ``marks`` over every part read; parts that fill a
        transaction are committed on the way, with the marks so far. ``reads`` notes what
        was read."""
        parts: list[WindowPart] = []
        size = 0
        for window in windows:
            async for part in self.deps.reader.read(self.event_id, window):
                parts.append(part)
                reads.add(part)
                size += 2 * len(part.meetings) + len(part.dead_letters)
                marks = advance(marks, part.window, creations_in_modified=creations_in_modified)
                if size >= MAX_RECORDS_PER_TRANSACTION:
                    await self._commit_parts(turn, parts, progress, marks)
                    parts, size = [], 0
            marks = advance(marks, window, creations_in_modified=creations_in_modified)
        return parts, marks

    async def _commit_parts(
        self,
        turn: Turn,
        parts: list[WindowPart],
        begun: EventProgress,
        marks: Watermarks,
        *,
        skip_empty: bool = False,
    ) -> None:
        def stage(batch: Batch) -> None:
            for part in parts:
                for meeting in part.meetings:
                    batch.stage(meeting, part.window, kind=part.window.kind.value)
                batch.add_dead_letters(part)

        def moved(committed: EventProgress | None) -> EventProgress:
            # the poller alone moves the watermarks; last_reconcile_at is the reconciler's
            return replace(
                committed or begun,
                created_through=marks.created_through,
                modified_through=marks.modified_through,
            )

        await self.committer.commit(turn, stage, moved, skip_empty=skip_empty)

    async def _reconcile(self, progress: EventProgress, turn: Turn) -> None:
        snapshot_upper = progress.snapshot_upper
        never = self.settings.snapshot_mode == "never" and snapshot_upper is not None
        bounds = PassBounds(
            upper=self._upper_bound(),
            covered_ms=self._follow_api_clock(progress).watermarks.modified_through * 1000,
            never_upper_ms=snapshot_upper * 1000 if never and snapshot_upper else None,
            deletes_checked=bool(self._totals_reported)
            and self.settings.delete_check_interval_seconds > 0,
        )
        await reconcile(
            self.event_id,
            self.deps.reader,
            self.committer,
            self.deps.serdes,
            bounds,
            turn,
            self._stop,
            detected_ms=lambda: self.deps.client.api_now() * 1000,
        )

    async def _check_deletes(self, progress: EventProgress, turn: Turn) -> None:
        snapshot_upper = progress.snapshot_upper
        never = self.settings.snapshot_mode == "never"
        span = judged_span(
            self._follow_api_clock(progress).watermarks.created_through,
            untracked_through=snapshot_upper if never else None,
        )
        if span is None:
            return
        try:
            result = await check_deletes(
                self.event_id,
                self.deps.client,
                self.deps.reader,
                self.committer,
                span,
                turn,
                self._stop,
                detected_ms=lambda: self.deps.client.api_now() * 1000,
                codec=self.deps.serdes,
            )
        except TotalsNotReported:
            self._totals_reported = False
            return
        if result is None:
            return
        metrics, label = self.deps.metrics, self._label
        metrics.delete_checks.labels(label, result.outcome).inc()
        for ask, count in result.requests.items():
            metrics.delete_check_requests.labels(label, ask).inc(count)
        metrics.delete_check_deletions.labels(label).inc(result.deleted)

    # --- helpers ----------------------------------------------------------------------------

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


@dataclass(slots=True)
class _Reads:
    """What an incremental cycle read, per window kind: rows (whether the next cycle may
    read the overlap and the fresh seconds as one window) and, when ``collect``, the
    meetings (evidence for ``CreationStamps``)."""

    collect: bool
    rows: dict[WindowKind, int] = field(default_factory=dict)
    meetings: dict[WindowKind, list[Meeting]] = field(
        default_factory=lambda: {kind: [] for kind in WindowKind}
    )

    def add(self, part: WindowPart) -> None:
        kind = part.window.kind
        self.rows[kind] = self.rows.get(kind, 0) + part.rows
        if self.collect:
            self.meetings[kind].extend(part.meetings)


def _fixed(progress: EventProgress) -> Callable[[EventProgress | None], EventProgress]:
    """The snapshot's progress: the poller is the event's only writer until it streams."""
    return lambda _committed: progress


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["Collaborators", "EventSync"]
