"""The per-event sync: a poller, a reconciler and a delete checker side by side,
committing through one ``Committer``.

One ``EventSync`` per configured event, all in one process, sharing the API client (and so
its rate and concurrency limits). Each event runs three concerns as three tasks:

- the poller: first the snapshot (``connector.snapshot``: the full export as CREATED
  windows up to a fixed upper bound, committed part by part, resumable after a crash),
  then incremental cycles (``connector.incremental``: the windows after the watermarks up
  to the API's now minus the settle delay, committed at once), deciding what runs next
  once per turn (``connector.schedule``);
- the reconciler: every ``reconcile_interval_seconds`` once the event streams, a full pass
  (``connector.reconcile``) that catches what polling cannot see (hard deletes) and
  anything incremental missed. Polling never waits for it.
- the re-snapshot runner: while the event's progress holds a re-snapshot (a ``resnapshot``
  signal), it re-reads and re-sends the event's meetings as background work
  (``connector.sync.resnapshot``), resumable from its committed cursor;
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

from connector.core.kinds import CycleKind
from connector.core.notifications import NotificationStatus
from connector.core.progress import Phase
from connector.errors import FatalSourceError, RetriablePublishError, RetriableSourceError
from connector.kafka.layout import state_partition
from connector.kafka.publisher import TransactionalPublisher
from connector.ops.labels import CheckOutcome, CycleOutcome, DeleteCheckState
from connector.source.client import CLOCK_PROBE_WINDOW
from connector.source.limiter import BACKGROUND
from connector.state.store import EventState
from connector.sync.batch import Destination
from connector.sync.committer import Committer
from connector.sync.cycles import Collaborators, EventCycles
from connector.sync.deletes.checker import (
    report_no_totals,
)
from connector.sync.heartbeats import heartbeats
from connector.sync.schedule import Action, Idle, Run, next_action, reconcile_delay
from connector.sync.signals import EventSignals

log = logging.getLogger("connector.engine")

SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING
_SOURCE_ERRORS = (RetriableSourceError, RetriablePublishError, FatalSourceError)
#: How long the compression of restored values waits for the event's first commit at most.
_COMPRESS_AFTER_S = 5.0


class EventSync:
    """The sync of one event: its poller, its reconciler and its delete checker."""

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
            changes_partitions=deps.changes_partitions,
            tombstones_on_delete=self.settings.tombstones_on_delete,
            cloudevents_headers=self.settings.cloudevents_headers,
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
        self.cycles = EventCycles(event_id, state, self.committer, deps)
        #: held by the poller for each cycle: signals act between cycles
        self.turn = asyncio.Lock()
        self.signals = (
            None
            if deps.signal_channel is None
            else EventSignals(
                event_id,
                state,
                self.committer,
                self.settings,
                turn=self.turn,
                metrics=deps.metrics,
                health=deps.health,
                api_now=deps.client.api_now,
                wall_clock=deps.wall_clock,
                channel=deps.signal_channel,
            )
        )

        if self.signals is not None:
            self.cycles.halt_snapshot = self.signals.waiting.is_set

    # --- the concerns -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, reconcile and check for deletes side by side until ``stop`` is set.

        Only errors that make the process unusable (a fenced or broken producer) propagate
        to the supervisor (the other concerns are then cancelled); API failures are retried,
        each kind at its own pace.
        """
        self.cycles.stop = stop
        self.cycles.check_field_rules()  # before anything is read or published
        tasks = [
            asyncio.create_task(self._poll(stop), name=f"poll-{self.event_id}"),
            asyncio.create_task(self._reconcile_loop(stop), name=f"reconcile-{self.event_id}"),
            asyncio.create_task(self._delete_check_loop(stop), name=f"deletes-{self.event_id}"),
            asyncio.create_task(self._resnapshot_loop(stop), name=f"resnapshot-{self.event_id}"),
            asyncio.create_task(self._compress_restored(stop), name=f"values-{self.event_id}"),
            asyncio.create_task(
                heartbeats(
                    self.event_id,
                    self.state,
                    self.committer,
                    self.settings,
                    self.deps.metrics,
                    stop,
                    self.deps.wall_clock,
                ),
                name=f"heartbeats-{self.event_id}",
            ),
        ]
        if self.signals is not None:
            tasks.append(
                asyncio.create_task(self.signals.run(stop), name=f"signals-{self.event_id}")
            )
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
            if self._paused():  # by a signal: not one request until it is resumed
                await _wait(stop, 0.2)
                last_started = None
                continue
            try:
                # Window bounds come from the API's clock: learn it before deciding.
                await self.cycles.sync_clock()
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
            async with self.turn:  # signals act between cycles (connector.sync.signals)
                if self._paused():
                    continue
                with self.deps.client.limiter.foreground():  # a pass's work waits meanwhile
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
            if delay > 0 or self._paused():
                # Re-checked at least every second: the snapshot ends, the clock moves.
                await _wait(stop, min(delay, 1.0))
                continue
            outcome = await self._attempt(CycleKind.RECONCILE)
            if isinstance(outcome, Exception):
                failures += 1
                await self._notify_failed("reconcile", outcome)
                await self._report_failure(CycleKind.RECONCILE, outcome, failures)
            else:
                failures = 0

    async def _compress_restored(self, stop: asyncio.Event) -> None:
        """Train the restored values' dictionary and compress them (``compress_steps``) a
        slice at a time, once the first cycle committed (or ``_COMPRESS_AFTER_S`` passed):
        off the path from a restart to that commit (issue 30 item 3)."""
        deadline = time.monotonic() + _COMPRESS_AFTER_S
        while self.committer.last_committed_at is None and time.monotonic() < deadline:
            if stop.is_set():
                return
            await _wait(stop, 0.05)
        for _ in self.state.meetings.compress_steps():
            if stop.is_set():
                return
            await asyncio.sleep(0)

    async def _resnapshot_loop(self, stop: asyncio.Event) -> None:
        """Run the event's re-snapshot (``connector.sync.resnapshot``) whenever its progress
        holds one (a ``resnapshot`` signal set it) and it is not paused."""
        BACKGROUND.set(True)  # its reads yield API slots to polls, as a pass's do
        failures = 0
        while not stop.is_set():
            progress = self.state.progress
            if progress is None or progress.resnapshot is None or progress.paused:
                await _wait(stop, 0.25)
                continue
            outcome = await self._attempt(CycleKind.RESNAPSHOT)
            if isinstance(outcome, Exception):
                failures += 1
                await self._report_failure(CycleKind.RESNAPSHOT, outcome, failures)
            else:
                failures = 0
                await _wait(stop, 0.25)  # stopped early (paused, cancelled): look again soon

    async def _delete_check_loop(self, stop: asyncio.Event) -> None:
        """Check for deletes every interval (from one check's start to the next) once the
        event streams; first learn whether the API reports totals (one request)."""
        BACKGROUND.set(True)
        interval = self.settings.delete_check_interval_seconds
        health = self.deps.health
        metrics = self.deps.metrics
        if interval <= 0:
            health.set_delete_check(self.event_id, "off: deletes are found by reconciliation")
            metrics.set_delete_check_state(self.event_id, DeleteCheckState.OFF)
            return
        failures = 0
        totals = self.deps.api_totals
        while not stop.is_set() and totals.reported is None:
            if self._paused():
                await _wait(stop, 1.0)
                continue
            async with totals.lock:  # the first event to get here probes for all of them
                if totals.reported is not None:
                    break
                try:
                    total = await self.deps.client.count_rows(self.event_id, CLOCK_PROBE_WINDOW)
                except (RetriableSourceError, FatalSourceError) as exc:
                    failures += 1
                    log.debug(
                        "totals probe failed",
                        extra={"event_id": self.event_id, "error": str(exc)},
                    )
                    await _wait(stop, self._backoff(failures))
                    continue
                totals.reported = total is not None
        if not totals.reported:
            if not stop.is_set():
                report_no_totals(self.event_id, self.settings, health, metrics)
            return
        for _ in self.state.index_steps(self.deps.serdes):
            await asyncio.sleep(0)  # a restored event's row index, built between polls
        health.set_delete_check(self.event_id, f"every {interval:g} s")
        metrics.set_delete_check_state(self.event_id, DeleteCheckState.SCHEDULED)
        failures = 0
        next_at = time.monotonic()
        while not stop.is_set():
            progress = self.state.progress
            if (
                progress is None
                or progress.phase != STREAMING
                or progress.paused
                or time.monotonic() < next_at
            ):
                await _wait(stop, min(1.0, max(0.01, next_at - time.monotonic())))
                continue
            next_at = time.monotonic() + interval
            outcome = await self._attempt(CycleKind.DELETE_CHECK)
            if not totals.reported:
                report_no_totals(self.event_id, self.settings, health, metrics)
                return
            if isinstance(outcome, Exception):
                failures += 1
                self.deps.metrics.delete_checks.labels(self._label, CheckOutcome.ERROR).inc()
                await self._notify_failed("delete_check", outcome)
                await self._report_failure(CycleKind.DELETE_CHECK, outcome, failures)
            else:
                failures = 0

    async def _attempt(self, kind: CycleKind) -> bool | Exception:
        """Run a cycle of ``kind``: whether more work waits, or the error it failed with
        (fenced or broken producers propagate)."""
        started = time.monotonic()
        outcome: bool | Exception
        try:
            outcome = await self.cycles.run(kind, started)
        except _SOURCE_ERRORS as exc:
            outcome = exc
        result = CycleOutcome.ERROR if isinstance(outcome, Exception) else CycleOutcome.OK
        self.deps.metrics.cycles.labels(self._label, kind, result).inc()
        self.deps.metrics.cycle_duration.labels(self._label, kind).observe(
            time.monotonic() - started
        )
        return outcome

    async def _notify_failed(self, step: str, exc: Exception) -> None:
        """A FAILED notification of a pass or a delete check (the error's text: source and
        publish errors name what failed, never a secret)."""
        await self.cycles.notices.send(step, {}, status=NotificationStatus.FAILED, reason=str(exc))

    async def _failed(self, kind: CycleKind, exc: Exception, failures: int, seconds: float) -> None:
        self.deps.metrics.cycles.labels(self._label, kind, CycleOutcome.ERROR).inc()
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
        await _wait(self.cycles.stop, delay)

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
        if stop.is_set() or self._paused():
            return True
        try:
            async with asyncio.timeout(max(1.0, seconds - probe_in)):
                await client.probe_clock(self.event_id)
        except (TimeoutError, RetriableSourceError, FatalSourceError) as exc:
            log.debug("clock probe failed", extra={"event_id": self.event_id, "error": str(exc)})
        return True

    def _paused(self) -> bool:
        progress = self.state.progress
        return progress is not None and progress.paused

    def _backoff(self, failures: int) -> float:
        return min(60.0, self.settings.poll_interval_seconds * 2.0 ** min(failures, 6))

    # --- deciding ---------------------------------------------------------------------------

    def _decide(
        self, last_started: float | None, reconcile_interval: float | None = None
    ) -> Action:
        client = self.deps.client
        return next_action(
            self.cycles.progress_now(),
            api_now=client.api_now(),
            api_time=client.api_time(),
            last_started_api=last_started,
            poll_interval_seconds=self.settings.poll_interval_seconds,
            reconcile_interval_seconds=(
                self.settings.reconcile_interval_seconds
                if reconcile_interval is None
                else reconcile_interval
            ),
            reconciled_last=self.cycles.reconciled_last,
        )

    def _first_kind(self) -> CycleKind:
        action = self._decide(None, reconcile_interval=0)
        return action.kind if isinstance(action, Run) else CycleKind.INCREMENTAL

    async def cycle(self) -> bool:
        """One turn in sequence (tests, tools): learn the clock, decide (a due pass
        included), run; True when more work is waiting."""
        await self.cycles.sync_clock()
        if self.cycles.stop.is_set():
            return False
        action = self._decide(None)
        assert isinstance(action, Run)  # noqa: S101 - nothing to wait for without a last start
        return await self.cycles.run(action.kind, time.monotonic())


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["EventSync"]
