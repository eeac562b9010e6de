"""Heartbeats: one record per owned event per interval, in the event's transaction order.

A heartbeat is published through the event's ``Committer`` after every transaction handed
over before it, so when a read_committed consumer sees it, everything the event committed
before it is readable too. It says where the event is (watermarks, last committed cycle,
paused) and who owns it: a consumer tells a quiet event (fresh heartbeats, watermarks
following the API's clock) from a stuck one (fresh heartbeats, ``last_committed_at``
falling behind) and from a dead connector (no heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from connector.config.settings import Settings
from connector.core.notifications import Heartbeat
from connector.errors import RetriablePublishError
from connector.kafka.layout import Record
from connector.ops.metrics import Metrics
from connector.state.store import EventState
from connector.sync.committer import Committer
from connector.sync.signals import replica_name

log = logging.getLogger("connector.heartbeats")


async def heartbeats(
    event_id: int,
    state: EventState,
    committer: Committer,
    settings: Settings,
    metrics: Metrics,
    stop: asyncio.Event,
    wall_clock: Callable[[], float],
) -> None:
    """Send the event's heartbeats until ``stop``: one per interval (none with 0), the first
    an interval after the event started here, once it has committed progress."""
    interval = settings.heartbeat_interval_seconds
    if interval <= 0:
        return
    owner = replica_name(settings)
    await _wait(stop, interval)
    while not stop.is_set():
        progress = state.progress
        if progress is None:
            await _wait(stop, min(interval, 0.5))
            continue
        last = committer.last_committed_at
        now = wall_clock()
        beat = Heartbeat(
            event_id=event_id,
            connector=settings.connector_name,
            owner=owner,
            at=int(now * 1000),
            phase=str(progress.phase),
            created_through=progress.created_through,
            modified_through=progress.modified_through,
            last_committed_at=None if last is None else int(last * 1000),
            paused=progress.paused,
            paused_by=progress.paused_by,
        )
        value = committer.serdes.encode_heartbeat(beat)
        record = Record(settings.heartbeats_topic, beat.key, value)
        try:
            await committer.send([record])
        except RetriablePublishError as exc:
            log.warning("heartbeat not sent", extra={"event_id": event_id, "error": str(exc)})
        else:
            metrics.heartbeat_last.labels(str(event_id)).set(now)
        await _wait(stop, interval)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["heartbeats"]
