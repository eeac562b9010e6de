"""Which events this replica runs: those whose state partition the group assigned it.

On an assignment: every newly owned event's producer runs ``init_transactions()`` (fencing
a previous owner and aborting its open transaction) while their state partitions are
restored (read_committed, to the end offsets taken once every producer fenced), then their
loops start. On a revocation or loss: their loops stop (the cycle in flight gets the
shutdown timeout to commit or abort), their producers are closed and their state is
dropped. A fenced producer (another replica took the event while this one did not know yet)
stops that event only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connector.config.settings import Settings
from connector.core.kinds import WindowKind
from connector.errors import ProducerFencedError
from connector.kafka.layout import state_partition, transactional_id
from connector.kafka.membership import Assignment
from connector.kafka.publisher import TransactionalPublisher
from connector.ops.labels import MembershipChange
from connector.state.restore import Fencing, restore
from connector.state.store import EventState
from connector.sync.cycles import Collaborators
from connector.sync.engine import EventSync

log = logging.getLogger("connector.replicas")

PublisherFactory = Callable[[str], TransactionalPublisher]


@dataclass(slots=True)
class _Owned:
    sync: EventSync
    publisher: TransactionalPublisher
    stop: asyncio.Event
    task: asyncio.Task[None]


class Ownership:
    """The events this replica runs, started and stopped as the group assigns partitions.

    ``failures`` receives an error that must stop the process (a broken producer that was
    not fenced, a failed restore); a fenced producer stops only its event.
    """

    def __init__(
        self,
        settings: Settings,
        deps: Collaborators,
        *,
        publisher_factory: PublisherFactory | None = None,
    ) -> None:
        self._settings = settings
        self._deps = deps
        self._partitions = deps.state_partitions
        self._factory = publisher_factory or (lambda txn: TransactionalPublisher(settings, txn))
        self._owned: dict[int, _Owned] = {}
        self.partitions: set[int] = set()
        self.first_assignment = asyncio.Event()  # set once one ran: the replica is ready
        self.failures: asyncio.Queue[BaseException] = asyncio.Queue()
        self.stopping = False

    @property
    def events(self) -> list[int]:
        """The events running here, in configured order."""
        return [e for e in self._settings.event_ids if e in self._owned]

    def events_of(self, partitions: Iterable[int]) -> list[int]:
        """The configured events stored in ``partitions``."""
        wanted = set(partitions)
        return [
            e for e in self._settings.event_ids if state_partition(e, self._partitions) in wanted
        ]

    # --- changes from the group -----------------------------------------------------------

    async def serve(self, changes: asyncio.Queue[Assignment]) -> None:
        """Carry out the group's changes in order until the membership closes."""
        while True:
            item = await changes.get()
            try:
                if item.change is MembershipChange.CLOSED:
                    await self.release(self._owned)
                    item.done.set_result(None)
                    return
                if item.change is MembershipChange.ASSIGNED:
                    await self.assign(item.partitions)
                else:
                    await self.revoke(item.partitions, lost=item.change is MembershipChange.LOST)
                item.done.set_result(None)
            except BaseException as exc:
                item.done.set_exception(exc)
                raise

    async def assign(self, partitions: Iterable[int]) -> None:
        """Take over the events of ``partitions``: fence, restore, run."""
        started = time.monotonic()
        partitions = set(partitions)
        self.partitions |= partitions
        events = [e for e in self.events_of(partitions) if e not in self._owned]
        m = self._deps.metrics
        m.rebalances.labels(MembershipChange.ASSIGNED).inc()
        fenced_in: float | None = None
        if events:
            publishers = {
                e: self._factory(transactional_id(self._settings.connector_name, e)) for e in events
            }
            # The restore reads while the producers fence their predecessors; it takes its
            # end offsets once they all did, and nothing is produced before both are done.
            fencing = Fencing()
            restoring = asyncio.ensure_future(
                asyncio.to_thread(
                    restore,
                    self._settings.kafka_client_config(),
                    self._settings.state_topic,
                    {state_partition(e, self._partitions) for e in events},
                    events,
                    self._deps.serdes,
                    fencing=fencing,
                )
            )
            try:
                await asyncio.gather(*(p.start() for p in publishers.values()))
            except BaseException:
                fencing.abandon()  # the restore stops within one read
                with contextlib.suppress(Exception):  # the producer's failure is the one to see
                    await restoring
                raise
            fencing.done()
            fenced_in = time.monotonic() - started
            states, report = await restoring
            m.state_restore_duration.set(report.seconds)
            m.state_restore_records.set(report.records)
            gc.collect()
            gc.freeze()  # restored state is long-lived: keep the collector from rescanning it
            if self.stopping:  # stopped while restoring: start nothing
                await self._close(publishers.values())
                return
            now = time.time()
            m.prime(events, poll_interval_seconds=self._settings.poll_interval_seconds, now=now)
            for event_id in events:
                self._start(event_id, states[event_id], publishers[event_id])
        self._deps.health.set_events(self.events)
        self.first_assignment.set()
        m.last_assignment_duration.set(time.monotonic() - started)
        log.info(
            "partitions assigned",
            extra={
                "partitions": sorted(partitions),
                "started_events": events,
                "owned_events": self.events,
                "seconds": round(time.monotonic() - started, 3),
                # the producers' init_transactions(), beside which the restore read
                "init_transactions_seconds": None if fenced_in is None else round(fenced_in, 3),
            },
        )

    async def revoke(self, partitions: Iterable[int], *, lost: bool = False) -> None:
        """Stop the events of ``partitions`` and forget them."""
        partitions = set(partitions)
        self.partitions -= partitions
        change = MembershipChange.LOST if lost else MembershipChange.REVOKED
        self._deps.metrics.rebalances.labels(change).inc()
        events = [e for e in self.events_of(partitions) if e in self._owned]
        if lost:
            # Readiness keeps judging them while this replica is out of the group.
            self._deps.health.events_lost(events)
        await self.release(events)
        log.info(
            "partitions %s",
            change,
            extra={
                "partitions": sorted(partitions),
                "stopped_events": events,
                "owned_events": self.events,
            },
        )

    async def shutdown(self) -> bool:
        """Stop every event (and start no more); False when one did not stop in time."""
        self.stopping = True
        return await self.release(list(self._owned))

    async def release(self, events: Iterable[int]) -> bool:
        """Stop ``events`` within the shutdown timeout, close their producers, drop them;
        False when a loop did not stop in time (it is cancelled, its producer left as is)."""
        owned = [self._owned.pop(e) for e in list(events) if e in self._owned]
        if not owned:
            return True
        for item in owned:
            item.stop.set()
        grace = self._settings.shutdown_timeout_seconds
        _, pending = await asyncio.wait([o.task for o in owned], timeout=grace)
        for task in pending:
            # A Kafka call is still blocked in a worker thread: its transaction is aborted by
            # the new owner's init_transactions() (or the broker's transaction timeout).
            log.warning(
                "event did not stop within the shutdown timeout",
                extra={"event": task.get_name(), "grace_seconds": grace},
            )
            task.cancel()
        for item in owned:
            self._forget(item.sync.event_id)
        self._deps.health.set_events(self.events)
        if pending and self.stopping:
            return False  # the process exits now: the next owner fences what is left open
        await self._close([o.publisher for o in owned])
        return not pending

    @staticmethod
    async def _close(publishers: Iterable[TransactionalPublisher]) -> None:
        async def close(publisher: TransactionalPublisher) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.close(), timeout=5)

        await asyncio.gather(*(close(p) for p in publishers))

    # --- one event ------------------------------------------------------------------------

    def _start(self, event_id: int, state: EventState, publisher: TransactionalPublisher) -> None:
        stop = asyncio.Event()
        sync = EventSync(event_id, state, publisher, self._deps)
        task = asyncio.create_task(sync.run(stop), name=f"event-{event_id}")
        self._owned[event_id] = _Owned(sync, publisher, stop, task)
        self._deps.metrics.event_owned.labels(str(event_id)).set(1)
        self._deps.metrics.owned_events.set(len(self._owned))
        task.add_done_callback(lambda t: self._ended(event_id, t))

    def _ended(self, event_id: int, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        item = self._owned.get(event_id)
        if exc is None or item is None or item.task is not task:
            return  # stopped on purpose (revocation, shutdown)
        if isinstance(exc, ProducerFencedError):
            # Another replica runs this event now (it was assigned its partition and fenced
            # us before this replica heard of the rebalance): stop only this event.
            log.warning(
                "event fenced by another replica; stopped here",
                extra={"event_id": event_id, "error": str(exc)},
            )
            task.get_loop().create_task(self.release([event_id]))
            return
        self.failures.put_nowait(exc)

    def _forget(self, event_id: int) -> None:
        m = self._deps.metrics
        label = str(event_id)
        m.event_owned.labels(label).set(0)
        m.owned_events.set(len(self._owned))
        # Series that only the owner can keep current: another replica reports them now.
        for gauge in (m.last_success, m.source_lag, m.tracked_meetings, m.state_bytes):
            with contextlib.suppress(KeyError):
                gauge.remove(label)
        for kind in WindowKind:
            with contextlib.suppress(KeyError):
                m.watermark.remove(label, kind)
        m.forget_delete_check_state(event_id)
