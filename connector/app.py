"""``meetings-cdc run``: wires settings, Kafka, the API client and one loop per owned event.

Replicas with one connector name share the events through a consumer group over the state
topic (``connector.membership``); this replica runs the events of the partitions the group
assigns it (``connector.replicas``). One replica alone is assigned every partition and
behaves as a single process. Start-up order per assignment matters for exactly-once:
every event's producer runs ``init_transactions()`` (fencing a predecessor and aborting its
open transaction), and its state partition is restored up to the last stable offset taken
only once every producer did (the reading itself overlaps the fencing); nothing is produced
before both are done. SIGTERM/SIGINT stop the loops and leave the group; an in-flight cycle gets
``MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS`` to finish.
Exit codes: 0 after a requested stop, 1 on a fatal error, 2 on bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from confluent_kafka.admin import AdminClient

from connector import __version__
from connector.config.settings import Settings, load_settings
from connector.errors import ConfigError, ConnectorError, FatalPublishError, FatalSourceError
from connector.kafka.membership import Assignment, GroupMembership, group_config, group_id
from connector.kafka.probe import wait_for_brokers
from connector.kafka.publisher import changes_topic_retention_ms, ensure_topics
from connector.kafka.signal_channel import SignalChannel, ensure_operation_topics
from connector.ops.health import HealthState
from connector.ops.logs import Redactor, configure_logging
from connector.ops.metrics import Metrics
from connector.ops.server import start_server
from connector.serde import make_serdes
from connector.source.client import ExportClient
from connector.source.limiter import RequestLimiter
from connector.source.reader import WindowReader
from connector.sync.cycles import Collaborators
from connector.sync.replicas import Ownership

log = logging.getLogger("connector")
#: How long leaving the group may take at shutdown, after the events stopped.
_LEAVE_SECONDS = 5.0
_T = TypeVar("_T")
#: The cyclic collector's thresholds while the connector runs (CPython's are 700, 10, 10).
#: A snapshot makes millions of short-lived objects (rows, participants, meetings) that
#: reference counting frees; at the default, the collector ran ~6,500 times during a
#: snapshot of 100,000 meetings, ~50 of them full rescans of what survives: ~2 of its 12
#: CPU seconds (docs/performance.md). Cycles (asyncio's futures and tracebacks) are still
#: collected, after 50,000 allocations instead of 700.
GC_THRESHOLDS = (50_000, 20, 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``run`` takes its settings from MEETINGS_CDC_* variables only (see README)."""
    parser.epilog = (
        "Settings: MEETINGS_CDC_API_BASE_URL, MEETINGS_CDC_EVENT_IDS (required), "
        "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS, ... - every setting is listed in README.md."
    )


def main(args: argparse.Namespace) -> int:
    """Run the connector until SIGTERM/SIGINT."""
    settings = load_settings(Settings)
    redactor = configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return asyncio.run(run(settings))
    except ConfigError:
        raise  # found at start-up (the metrics port in use): the CLI prints it, exit 2
    except (FatalPublishError, FatalSourceError, ConnectorError) as exc:
        log.error("connector stopped: %s", exc)
        print(f"meetings-cdc run: {redactor.redact(str(exc))}", file=sys.stderr)
        return 1


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """The connector's lifetime; returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    metrics = Metrics()
    # Per-event series start when this replica is assigned the event (connector.replicas).
    metrics.prime((), poll_interval_seconds=settings.poll_interval_seconds, now=time.time())
    metrics.prime_configured(settings.event_ids)
    health = HealthState(
        settings.event_ids,
        poll_interval_seconds=settings.poll_interval_seconds,
        redact=Redactor(settings.secret_values()),
        info={
            "connector": settings.connector_name,
            "version": __version__,
            "instance_id": settings.instance_id,
            "group": group_id(settings.connector_name),
        },
        idle_ok=True,  # a replica the group gave no partition to is ready (a standby)
    )
    runner = await start_server(settings.metrics_host, settings.metrics_port, metrics, health)
    heartbeat = asyncio.create_task(_heartbeat(health))
    try:
        admin = AdminClient(settings.kafka_client_config())
        await _unless_stopped(
            stop, asyncio.to_thread(wait_for_brokers, admin, settings.kafka_bootstrap_servers)
        )
        partitions = await _unless_stopped(stop, asyncio.to_thread(ensure_topics, admin, settings))
        await _unless_stopped(stop, asyncio.to_thread(ensure_operation_topics, admin, settings))
        retention = await _unless_stopped(
            stop, asyncio.to_thread(changes_topic_retention_ms, admin, settings)
        )
        health.set_info(
            "changes_topic",
            {
                "name": settings.changes_topic,
                "partitions": partitions[settings.changes_topic],
                "retention_ms": retention,
            },
        )
        serdes = make_serdes(
            settings,
            settings.changes_topic,
            settings.state_topic,
            settings.dlq_topic,
            settings.notifications_topic,
            settings.heartbeats_topic,
        )
        state_partitions = partitions[settings.state_topic]

        health.set_events([])
        async with aiohttp.ClientSession() as session:
            client = ExportClient(
                session, settings, metrics=metrics, limiter=RequestLimiter.from_settings(settings)
            )
            reader = WindowReader(client, settings.api_per_page)
            deps = Collaborators(
                settings=settings,
                client=client,
                reader=reader,
                serdes=serdes,
                metrics=metrics,
                health=health,
                state_partitions=state_partitions,
                changes_partitions=partitions[settings.changes_topic],
                notify_steps=True,
                signal_channel=lambda event_id: SignalChannel(
                    settings, event_id, settings.connector_name
                ),
            )
            ownership = Ownership(settings, deps)
            changes: asyncio.Queue[Assignment] = asyncio.Queue()
            membership = GroupMembership(
                group_config(
                    settings.kafka_client_config(),
                    settings.connector_name,
                    session_timeout_ms=settings.group_session_timeout_ms,
                    instance_id=settings.instance_id,
                ),
                settings.state_topic,
                loop,
                changes,
                release_timeout=settings.shutdown_timeout_seconds,
                on_contact=lambda contact: health.group_contact(contact.in_group, contact.detail),
            )
            return await _supervise(
                ownership, membership, changes, health, stop, settings.shutdown_timeout_seconds
            )
    except _StoppedDuringStartUp:
        # A start-up call is still blocked in a worker thread (broker unreachable?), and
        # the interpreter would wait for it (up to its Kafka timeout) before exiting.
        # Nothing was published yet: exit now, with the code of a requested stop.
        log.info("stopped during start-up")
        await runner.cleanup()
        logging.shutdown()
        os._exit(0)
    finally:
        heartbeat.cancel()
        await runner.cleanup()


class _StoppedDuringStartUp(Exception):
    """SIGTERM/SIGINT arrived before the start-up finished."""


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[_T]) -> _T:
    """``work``'s result, unless ``stop`` is set first (then :class:`_StoppedDuringStartUp`)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()  # a worker thread runs on: the caller exits without waiting for it
        raise _StoppedDuringStartUp
    return task.result()


async def _heartbeat(health: HealthState, every: float = 1.0) -> None:
    """Liveness means "the event loop runs": beat while restores and long cycles work.

    Progress is judged by readiness (recent cycles) and the stalled alert, never by liveness,
    so a large restore or reconciliation cannot get the pod restarted in a loop.
    """
    while True:
        health.beat()
        await asyncio.sleep(every)


async def _supervise(
    ownership: Ownership,
    membership: GroupMembership,
    changes: asyncio.Queue[Assignment],
    health: HealthState,
    stop: asyncio.Event,
    grace: float,
) -> int:
    """Join the group and run the events it assigns until ``stop``; a fatal error of one
    event (other than being fenced) stops the process (exit 1)."""
    serving = asyncio.create_task(ownership.serve(changes), name="ownership")
    membership.start()
    ready = asyncio.create_task(_ready_after_first_assignment(ownership, health))
    stopper = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(ownership.failures.get())
    done, _ = await asyncio.wait([serving, stopper, failed], return_when=asyncio.FIRST_COMPLETED)
    failure: BaseException | None = None
    if failed in done:
        failure = failed.result()
    elif serving in done and serving.exception() is not None:
        failure = serving.exception()
    elif serving in done and membership.failure is not None:
        failure = membership.failure
    stop.set()
    ready.cancel()
    failed.cancel()
    log.info("stopping", extra={"grace_seconds": grace})
    stopped = await ownership.shutdown()
    if stopped:
        # Leave the group (what is left is revoked; the events already stopped) so the
        # others take the partitions over at once rather than after the session timeout.
        closing = asyncio.create_task(membership.close())
        _, pending = await asyncio.wait([serving, closing], timeout=_LEAVE_SECONDS)
        if pending:
            log.warning("leaving the group timed out; the session timeout will move the events")
    if not stopped or not serving.done():
        # A Kafka call is still blocked in a worker thread (broker unreachable?). Waiting
        # for it would make the shutdown unbounded; the open transaction is aborted by the
        # broker's transaction timeout or fenced by the next owner's init_transactions().
        if not stopped:
            log.warning("shutdown timeout reached with a cycle still running; exiting without it")
        logging.shutdown()
        os._exit(0 if failure is None else 1)
    stopper.cancel()
    if failure is None and not serving.cancelled() and serving.exception() is not None:
        failure = serving.exception()
    if failure is not None:
        raise failure
    log.info("stopped")
    return 0


async def _ready_after_first_assignment(ownership: Ownership, health: HealthState) -> None:
    """The producer and state components are ready once the first assignment runs."""
    await ownership.first_assignment.wait()
    health.set_ready("producer", True)
    health.set_ready("state", True)
