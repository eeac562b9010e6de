"""The owner's side of signals (``connector.sync.signals``) with a fake channel and producer:
when a signal acts, what one transaction holds, where a first read starts."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import Any

from connector.config.settings import Settings
from connector.core.progress import EventProgress, Phase
from connector.kafka.layout import Record
from connector.kafka.signal_channel import SignalRecord
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics
from connector.serde import Serdes, SingleObjectFraming
from connector.state.store import EventState
from connector.sync.batch import Destination
from connector.sync.committer import Committer
from connector.sync.signals import EventSignals

EVENT = 7
NOW = 1_800_000_000


@dataclass
class FakePublisher:
    transactions: list[list[Record]] = field(default_factory=list)

    async def publish(self, records: list[Record]) -> None:
        self.transactions.append(list(records))


@dataclass
class FakeChannel:
    records: list[SignalRecord] = field(default_factory=list)
    started: list[tuple[Any, int]] = field(default_factory=list)
    closed: bool = False

    def start(self, offsets: Any, since_ms: int) -> dict[int, int]:
        self.started.append((offsets, since_ms))
        return {0: 3} if offsets is None else dict(offsets)

    def poll(self) -> list[SignalRecord]:
        found, self.records = self.records, []
        return found

    def close(self) -> None:
        self.closed = True


def owner(progress: EventProgress) -> tuple[EventSignals, FakePublisher, FakeChannel, EventState]:
    settings = Settings(api_base_url="http://api.invalid", event_ids=(EVENT,))
    serdes = Serdes(SingleObjectFraming())
    state = EventState(EVENT)
    state.progress = progress
    publisher = FakePublisher()
    health = HealthState([EVENT], poll_interval_seconds=1)
    to = Destination(EVENT, 1, "changes", "state", "dlq", "cdc", changes_partitions=3)
    committer = Committer(
        state,
        publisher,  # type: ignore[arg-type]
        to,
        serdes,
        Metrics(),
        health,
        api_now=lambda: NOW,
        wall_clock=lambda: float(NOW),
    )
    channel = FakeChannel()
    signals = EventSignals(
        EVENT,
        state,
        committer,
        settings,
        turn=asyncio.Lock(),
        metrics=Metrics(),
        health=health,
        api_now=lambda: NOW,
        wall_clock=lambda: float(NOW),
        channel=lambda _event: channel,  # type: ignore[arg-type,return-value]
    )
    return signals, publisher, channel, state


PROGRESS = EventProgress(
    event_id=EVENT,
    phase=Phase.STREAMING,
    snapshot_upper=NOW - 600,
    created_through=NOW - 10,
    modified_through=NOW - 10,
    last_reconcile_at=None,
    updated_at=0,
    signal_offsets=((0, 3),),
)


def pause(offset: int, key: bytes = b"p") -> SignalRecord:
    return SignalRecord(0, offset, key, json.dumps({"type": "pause", "event_id": EVENT}).encode())


async def test_a_signal_waits_for_the_cycle_in_flight_then_commits_with_its_offset() -> None:
    signals, publisher, _, state = owner(PROGRESS)
    turn = signals._turn
    await turn.acquire()  # the poller's cycle
    handling = asyncio.create_task(signals.handle([(0, 3, b"p", pause(3).value)]))
    await asyncio.sleep(0.05)
    assert not handling.done()
    assert publisher.transactions == []
    turn.release()
    [note] = await handling
    assert note.status == "COMPLETED"
    [records] = publisher.transactions
    topics = [r.topic for r in records]
    assert topics == [signals.settings.notifications_topic, "state"]  # one transaction
    note = signals.committer.serdes.decode_as("Notification", records[0].value)  # type: ignore[arg-type]
    assert note["signal_id"] == "p"
    assert state.progress is not None
    assert state.progress.paused
    assert state.progress.signal_offsets == ((0, 4),)


async def test_a_first_read_starts_at_the_snapshot_and_commits_where_it_started() -> None:
    signals, publisher, channel, state = owner(replace(PROGRESS, signal_offsets=None))
    stop = asyncio.Event()
    running = asyncio.create_task(signals.run(stop))
    for _ in range(100):
        if publisher.transactions:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await running
    assert channel.started == [(None, (NOW - 600) * 1000)]
    assert state.progress is not None
    assert state.progress.signal_offsets == ((0, 3),)
    assert len(publisher.transactions) == 1  # the start offsets alone, no notification
    assert channel.closed
