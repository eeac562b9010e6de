"""``meetings-cdc run``: wires settings, Kafka, the API client and one loop per event.

Start-up order matters for exactly-once: topics are checked, every event's producer runs
``init_transactions()`` (fencing a predecessor and aborting its open transaction), and only
then is the state topic restored, up to its last stable offset. SIGTERM/SIGINT stop the
loops; an in-flight cycle gets ``MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS`` to finish.
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
from connector.config import Settings, load_settings
from connector.engine import Collaborators, EventSync
from connector.errors import ConfigError, ConnectorError, FatalPublishError, FatalSourceError
from connector.health import HealthState
from connector.kafka_probe import wait_for_brokers
from connector.logs import Redactor, configure_logging
from connector.metrics import Metrics
from connector.publisher import (
    TransactionalPublisher,
    ensure_topics,
    state_partition,
    transactional_id,
)
from connector.serde import make_serdes
from connector.server import start_server
from connector.source.client import ExportClient, RequestLimiter
from connector.source.reader import WindowReader
from connector.state import restore

log = logging.getLogger("connector")
_T = TypeVar("_T")


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
    metrics.prime(
        settings.event_ids, poll_interval_seconds=settings.poll_interval_seconds, now=time.time()
    )
    health = HealthState(
        settings.event_ids,
        poll_interval_seconds=settings.poll_interval_seconds,
        redact=Redactor(settings.secret_values()),
        info={"connector": settings.connector_name, "version": __version__},
    )
    runner = await start_server(settings.metrics_host, settings.metrics_port, metrics, health)
    heartbeat = asyncio.create_task(_heartbeat(health))
    publishers: dict[int, TransactionalPublisher] = {}
    try:
        admin = AdminClient(settings.kafka_client_config())
        await _unless_stopped(
            stop, asyncio.to_thread(wait_for_brokers, admin, settings.kafka_bootstrap_servers)
        )
        partitions = await _unless_stopped(stop, asyncio.to_thread(ensure_topics, admin, settings))
        serdes = make_serdes(
            settings, settings.changes_topic, settings.state_topic, settings.dlq_topic
        )
        state_partitions = partitions[settings.state_topic]

        publishers = {
            event_id: TransactionalPublisher(
                settings, transactional_id(settings.connector_name, event_id)
            )
            for event_id in settings.event_ids
        }
        await _unless_stopped(stop, asyncio.gather(*(p.start() for p in publishers.values())))
        health.set_ready("producer", True)

        started = time.monotonic()
        states, report = await _unless_stopped(
            stop,
            asyncio.to_thread(
                restore,
                settings.kafka_client_config(),
                settings.state_topic,
                {state_partition(e, state_partitions) for e in settings.event_ids},
                settings.event_ids,
                serdes,
            ),
        )
        metrics.state_restore_duration.set(time.monotonic() - started)
        metrics.state_restore_records.set(report.records)
        for event_id, state in states.items():
            metrics.tracked_meetings.labels(str(event_id)).set(len(state.meetings))
        health.set_ready("state", True)
        # The restored state is long-lived: keep the garbage collector from rescanning it.
        gc.collect()
        gc.freeze()

        async with aiohttp.ClientSession() as session:
            client = ExportClient(
                session, settings, metrics=metrics, limiter=RequestLimiter.from_settings(settings)
            )
            reader = WindowReader(client, settings.api_per_page, metrics=metrics)
            deps = Collaborators(
                settings=settings,
                client=client,
                reader=reader,
                serdes=serdes,
                metrics=metrics,
                health=health,
                state_partitions=state_partitions,
            )
            syncs = [
                EventSync(event_id, states[event_id], publishers[event_id], deps)
                for event_id in settings.event_ids
            ]
            return await _supervise(syncs, stop, settings.shutdown_timeout_seconds)
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
        for publisher in publishers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.close(), timeout=5)
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


async def _supervise(syncs: list[EventSync], stop: asyncio.Event, grace: float) -> int:
    """Run every event's loop; a fatal error in one stops all (exit 1)."""
    tasks = [asyncio.create_task(s.run(stop), name=f"event-{s.event_id}") for s in syncs]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    failure: BaseException | None = None
    for task in done:
        if task is not stopper and task.exception() is not None:
            failure = task.exception()
    stop.set()
    log.info("stopping", extra={"grace_seconds": grace})
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        # A Kafka call is still blocked in a worker thread (broker unreachable?). Waiting
        # for it would make the shutdown unbounded; the open transaction is aborted by the
        # broker's transaction timeout or fenced by the next start's init_transactions().
        log.warning(
            "shutdown timeout reached with a cycle still running; exiting without it",
            extra={"events": [t.get_name() for t in pending]},
        )
        logging.shutdown()
        os._exit(0 if failure is None else 1)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            failure = failure or task.exception()
    stopper.cancel()
    if failure is not None:
        raise failure
    log.info("stopped")
    return 0
