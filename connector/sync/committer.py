"""``Committer``: one event's transactions, one in flight at a time, in order.

An event's concerns (the poller: snapshot and incremental cycles; the reconciler: full
passes) run side by side and share the event's one transactional producer through it.
Each hands over *what to stage*, not staged records: the batch is staged under the lock,
against the state as committed by every transaction before it, so versions stay
consecutive whichever concern committed last, and the progress record is derived from the
latest committed progress (the poller moves the watermarks, the reconciler only
``last_reconcile_at``; neither overwrites the other's). The in-memory state changes only
after the commit; a failed transaction leaves it as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from connector.core.kinds import CycleKind
from connector.core.progress import EventProgress
from connector.errors import ProducerFencedError, RetriablePublishError
from connector.kafka.layout import Record
from connector.kafka.publisher import TransactionalPublisher
from connector.ops.health import HealthState
from connector.ops.labels import TransactionOutcome
from connector.ops.metrics import Metrics
from connector.serde import Serdes
from connector.state.store import EventState
from connector.sync.batch import Batch, Destination
from connector.sync.report import CycleReport

log = logging.getLogger("connector.sync.engine")

#: Records (events, state, dead letters) a cycle gathers before it commits a transaction.
MAX_RECORDS_PER_TRANSACTION = 10_000

#: Stages records into a batch built on the latest committed state.
Stager = Callable[[Batch], None]
#: The progress to commit, from the latest committed one (None before the first commit).
ProgressUpdate = Callable[[EventProgress | None], EventProgress]


@dataclass(frozen=True, slots=True)
class Turn:
    """The cycle a transaction belongs to (for its report)."""

    kind: CycleKind
    number: int
    started: float  # time.monotonic()


class Committer:
    """Owns an event's producer: "one transaction in flight, in order"."""

    def __init__(
        self,
        state: EventState,
        publisher: TransactionalPublisher,
        destination: Destination,
        serdes: Serdes,
        metrics: Metrics,
        health: HealthState,
        api_now: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.publisher = publisher
        self._to = destination
        self._serdes = serdes
        self._metrics = metrics
        self._health = health
        self._api_now = api_now
        self._wall_clock = wall_clock
        self._label = str(destination.event_id)
        # FIFO: transactions commit in the order they were handed over.
        self._lock = asyncio.Lock()
        self._watchers: list[set[int]] = []
        #: when a cycle of this event last committed here (wall clock, epoch s): heartbeats
        self.last_committed_at: float | None = None

    @property
    def serdes(self) -> Serdes:
        """What the event's records are encoded with (notifications and heartbeats too)."""
        return self._serdes

    @contextlib.contextmanager
    def watch(self) -> Iterator[set[int]]:
        """The ids committed by *other* concerns while the block runs (a reconcile pass
        must not judge a meeting polling changed after the pass read it)."""
        touched: set[int] = set()
        self._watchers.append(touched)
        try:
            yield touched
        finally:
            # by identity: two concerns' sets may be equal (both empty), and list.remove
            # would take the other one's (a pass and a delete check watch at once)
            self._watchers = [w for w in self._watchers if w is not touched]

    async def commit(
        self,
        turn: Turn | None,
        stage: Stager,
        progress: ProgressUpdate,
        *,
        skip_empty: bool = False,
    ) -> Batch | None:
        """Stage, publish and apply one transaction; return its batch.

        ``skip_empty``: publish nothing when ``stage`` staged nothing (returns None).
        ``turn`` None: not a cycle (a signal's effect): nothing is reported for it.
        Raises ``RetriablePublishError`` (aborted: nothing of it is visible or applied) and
        ``ProducerFencedError``.
        """
        async with self._lock:
            batch = Batch.start(self._to, self.state, self._serdes, self._wall_clock)
            stage(batch)
            if skip_empty and not len(batch):
                return None
            committed = replace(
                progress(self.state.progress), updated_at=int(self._wall_clock() * 1000)
            )
            batch.close(committed)
            try:
                await self.publisher.publish(batch.records)
            except RetriablePublishError:
                self._metrics.transactions.labels(self._label, TransactionOutcome.ABORTED).inc()
                raise
            except ProducerFencedError:
                self._metrics.producer_fenced.labels(self._label).inc()
                raise
            self.state.apply(batch.staging)
            if turn is None or turn.kind is not CycleKind.RECONCILE:
                for touched in self._watchers:
                    touched.update(batch.staging.encoded)
            if turn is not None:
                self.last_committed_at = self._wall_clock()
                self._report(turn, batch, committed)
            return batch

    async def send(self, records: list[Record]) -> None:
        """Publish ``records`` alone in one transaction, after every one handed over before
        (a heartbeat: what it says was committed is readable once it is). Not a cycle."""
        async with self._lock:
            await self.publisher.publish(records)

    def _report(self, turn: Turn, batch: Batch, progress: EventProgress) -> None:
        report = CycleReport(
            event_id=self._to.event_id,
            cycle=turn.kind,
            cycle_number=turn.number,
            progress=progress,
            published=dict(batch.published),
            caught=dict(batch.caught),
            dead_letters=batch.dead_letters,
            records=len(batch),
            modified_at=tuple(batch.modified_at),
            tracked_meetings=len(self.state.meetings),
            state_bytes=self.state.meetings.stored_bytes,
            api_now=self._api_now(),
            wall_now=self._wall_clock(),
            seconds=time.monotonic() - turn.started,
        )
        report.observe(self._metrics)
        self._health.cycle_finished(
            report.event_id, phase=report.cycle, ok=True, detail=report.status_detail()
        )
        log.log(report.log_level, "cycle committed", extra=report.log_extra())


__all__ = ["Committer", "ProgressUpdate", "Stager", "Turn"]
