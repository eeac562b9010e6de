"""The owner of an event acting on its signals (``connector.core.signals``).

Each owned event reads the signals topic from the offsets its progress holds
(``connector.kafka.signal_channel``). Whatever arrived is decided at once against the
committed progress, under the event's *turn* (the poller is between cycles: a pause stops
it before its next request, a rewind is not overwritten by a cycle that began before it),
and committed in one transaction of the event: the effect (paused, watermarks), the
notifications and the offsets after the records (the "handled" mark). After a crash the
transaction either happened, and the offsets are past the signals, or not, and they are
read again: a signal acts exactly once, on whichever replica owns the event by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import replace

from connector.config.settings import Settings
from connector.core.notifications import Notification, NotificationStatus
from connector.core.progress import EventProgress
from connector.core.signals import Handler, RawSignal, decide
from connector.errors import RetriablePublishError
from connector.kafka.layout import Record
from connector.kafka.signal_channel import SignalChannel
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics
from connector.state.store import EventState
from connector.sync.batch import Batch
from connector.sync.committer import Committer

log = logging.getLogger("connector.signals")

#: How often the signals topic is looked at (seconds): a signal's latency.
POLL_SECONDS = 0.25


def replica_name(settings: Settings) -> str:
    """How this replica names itself in heartbeats and notifications."""
    return settings.instance_id or f"{socket.gethostname()}:{os.getpid()}"


class EventSignals:
    """Reads and acts on the signals of one owned event."""

    def __init__(
        self,
        event_id: int,
        state: EventState,
        committer: Committer,
        settings: Settings,
        *,
        turn: asyncio.Lock,
        metrics: Metrics,
        health: HealthState,
        api_now: Callable[[], int],
        wall_clock: Callable[[], float],
        channel: Callable[[int], SignalChannel],
    ) -> None:
        self.event_id = event_id
        self.state = state
        self.committer = committer
        self.settings = settings
        self._turn = turn
        self._metrics = metrics
        self._health = health
        self._api_now = api_now
        self._wall_clock = wall_clock
        self._channel = channel
        self._handler = Handler(
            event_id,
            tuple(settings.event_ids),
            settings.connector_name,
            replica_name(settings),
            settle_seconds=settings.settle_seconds,
        )
        self._label = str(event_id)
        #: set while a signal waits for the poller's turn (a snapshot stops at its next part)
        self.waiting = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Act on the event's signals until ``stop``."""
        while self.state.progress is None and not stop.is_set():
            await _wait(stop, POLL_SECONDS)  # a fresh event: from its first commit on
        if stop.is_set():
            return
        self.show_paused()
        channel = self._channel(self.event_id)
        try:
            await self._start(channel, stop)
            pending: list[RawSignal] = []
            failures = 0
            while not stop.is_set():
                pending.extend((r.partition, r.offset, r.key, r.value) for r in channel.poll())
                if not pending:
                    await _wait(stop, POLL_SECONDS)
                    continue
                try:
                    await self.handle(pending)
                except RetriablePublishError as exc:
                    failures += 1
                    log.warning(
                        "signals not committed; trying again",
                        extra={"event_id": self.event_id, "error": str(exc)},
                    )
                    await _wait(stop, min(30.0, 0.5 * 2**failures))
                    continue
                pending, failures = [], 0
        finally:
            await asyncio.to_thread(channel.close)

    async def _start(self, channel: SignalChannel, stop: asyncio.Event) -> None:
        progress = self.state.progress
        assert progress is not None  # noqa: S101 - run waits for it
        known = dict(progress.signal_offsets) if progress.signal_offsets is not None else None
        # An event that has read none yet takes the signals written since its snapshot began
        # (a fresh event: those sent meanwhile; after a state reset: none of the old ones).
        since_ms = max(0, progress.snapshot_upper or 0) * 1000
        failures = 0
        while True:
            try:
                starts = await asyncio.to_thread(channel.start, known, since_ms)
                if known is None:
                    # where this event starts reading, committed now: a signal sent from
                    # here on is seen after a restart or by another owner too
                    await self.handle([], offsets=starts)
                return
            except RetriablePublishError as exc:
                failures += 1
                log.warning(
                    "signals topic not readable yet",
                    extra={"event_id": self.event_id, "error": str(exc)},
                )
                await _wait(stop, min(30.0, 0.5 * 2**failures))
                if stop.is_set():
                    return

    async def handle(
        self, records: list[RawSignal], *, offsets: dict[int, int] | None = None
    ) -> list[Notification]:
        """Decide ``records`` against the committed progress and commit the outcome in one
        transaction of the event (``offsets``: start offsets to record beside them)."""
        decided: list[tuple[EventProgress, list[Notification]]] = []

        def stage(batch: Batch) -> None:
            progress = self.state.progress
            assert progress is not None  # noqa: S101 - only called once there is one
            if offsets is not None:
                progress = _with_offsets(progress, offsets)
            outcome = decide(
                records,
                progress,
                self._handler,
                api_now=self._api_now(),
                at=int(self._wall_clock() * 1000),
            )
            decided.append(outcome)
            topic = self.settings.notifications_topic
            for note in outcome[1]:
                value = batch.serdes.encode_notification(note)
                batch.records.append(Record(topic, note.key, value))

        self.waiting.set()
        try:
            async with self._turn:  # between the poller's cycles
                self.waiting.clear()
                await self.committer.commit(None, stage, lambda _committed: decided[-1][0])
        finally:
            self.waiting.clear()
        notes = decided[-1][1]
        for note in notes:
            self._metrics.signals.labels(self._label, note.kind, note.status).inc()
            rejected = note.status is NotificationStatus.REJECTED
            (log.warning if rejected else log.info)(
                "signal rejected" if rejected else "signal handled",
                extra={
                    "event_id": note.event_id,
                    "signal_id": note.signal_id,
                    "kind": note.kind,
                    "status": str(note.status),
                    "reason": note.reason,
                },
            )
        self.show_paused()
        return notes

    def show_paused(self) -> None:
        """Report the committed paused flag to ``/status`` and the metric."""
        progress = self.state.progress
        paused = progress is not None and progress.paused
        by = progress.paused_by if progress is not None and paused else None
        self._health.set_paused(self.event_id, paused=paused, by=by)
        self._metrics.event_paused.labels(self._label).set(1 if paused else 0)


def _with_offsets(progress: EventProgress, offsets: dict[int, int]) -> EventProgress:
    merged = dict(progress.signal_offsets or ())
    for partition, offset in offsets.items():
        merged.setdefault(partition, offset)
    return replace(progress, signal_offsets=tuple(sorted(merged.items())))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["EventSignals", "replica_name"]
