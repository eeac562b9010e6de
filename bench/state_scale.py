"""Scale: an incremental cycle at 1,000 and 1,000,000 tracked meetings; restore; memory.

``incremental_cycle_ms_1k`` / ``_1m``: an in-process engine with the real collaborators
(``EventSync`` with the ``ExportClient`` and ``WindowReader`` over HTTP to a simulator
process, the real ``Serdes``, ``TransactionalPublisher`` and state restored from Kafka)
tracks the 1,000 meetings of the simulator, plus 999,000 more for ``_1m``. Those are
written straight to the state topic before the engine starts, each a distinct meeting: made
by the simulator's own seeding (``workload.seeded_meeting``; participants' names, e-mails,
companies and titles from ``people.person_for``) for one event of 1M meetings over its
~500,000 accounts, under meeting ids from ``SYNTHETIC_BASE``, turned into ``Meeting``
values the way the source maps export rows (checked against ``render`` + ``RowParser`` +
``assemble`` for the first 200) and encoded by the real serde (version 1). They differ
where real meetings differ (ids, participants and with them names, e-mails and companies,
times, status, location, title, notes), so the compression dictionary the state trains from
the first 4,096 it restores cannot simply memorise the rest. Making them costs ~60 us each:
the prefill takes ~85 s of the benchmark's ~2.5 minutes.
Then, per run, 10 meetings are modified through the admin API and, once their second is
past the settle delay, one ``cycle()`` is timed: plan, read both windows over HTTP,
classify, encode, commit one transaction (checked to hold the 10 events).

``state_restore_meetings_per_s`` and ``rss_bytes_per_meeting``: a fresh child process
(``python -m bench.state_scale --restore-child``) imports the connector, notes its RSS,
runs ``connector.state.restore`` over the 1M-meeting state topic, collects garbage, and
notes its RSS again (consumer closed): the delta over the meetings restored. It also
reports the bytes the state holds per meeting (``stored_bytes``) against the encoded size.

    python -m bench.state_scale [--runs N] [--meetings N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import aiohttp
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.common import (
    bootstrap,
    delete_topics,
    fmt,
    record,
    rss_bytes,
    summary,
    unique_name,
)
from bench.connectors import topics_of
from connector.config.settings import Settings
from connector.core.model import Meeting, Participant
from connector.kafka.layout import Record, transactional_id
from connector.kafka.publisher import TransactionalPublisher, ensure_topics
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics
from connector.serde import Serdes, SingleObjectFraming
from connector.source.assembly import assemble
from connector.source.client import ExportClient
from connector.source.limiter import RequestLimiter
from connector.source.reader import WindowReader
from connector.source.rows import RowParser
from connector.state.restore import restore
from connector.state.store import EventState
from connector.sync.cycles import Collaborators
from connector.sync.engine import EventSync
from meetings_simulator import workload
from meetings_simulator.model import SimMeeting
from meetings_simulator.people import person_for
from meetings_simulator.render import TimeFormatter, meeting_fields, participant_fields
from tests.simulator_harness import SimulatorProcess

EVENT_ID = 1
SIM_MEETINGS = 1_000
LARGE = 1_000_000
CHANGES = 10
RUNS = 5
SETTLE = 1
SYNTHETIC_BASE = 10_000_000  # synthetic meeting ids start here, far from the simulator's
PREFILL_SEED = 7


def settings_for(base_url: str, name: str, snapshot_mode: str = "no_data") -> Settings:
    """Settings of an in-process engine on topics named after ``name``."""
    return Settings(
        api_base_url=base_url,
        event_ids=(EVENT_ID,),
        api_rate_limit_per_second=0,
        kafka_bootstrap_servers=bootstrap(),
        connector_name=name,
        changes_topic=f"{name}.changes",
        state_topic=f"{name}.state",
        dlq_topic=f"{name}.dlq",
        poll_interval_seconds=1,
        settle_seconds=SETTLE,
        snapshot_mode=snapshot_mode,
        reconcile_interval_seconds=0,
    )


def _meeting_of(sim: SimMeeting) -> Meeting:
    """``sim`` as the source maps its export rows (see ``_check_mapping``), only faster."""
    participants = []
    for p in sim.participants:
        person = person_for(p.account_id)
        extra = (
            ("company", person.company),
            ("email", person.email),
            ("first_name", person.first_name),
            ("job_title", person.job_title),
            ("last_name", person.last_name),
        )
        participants.append(Participant(p.account_id, p.role, p.status, extra))
    return Meeting(
        event_id=sim.event_id,
        meeting_id=sim.meeting_id,
        status=sim.status,
        start_at=sim.start * 1000,
        end_at=sim.end * 1000,
        location=sim.location,
        created_at=sim.created_at * 1000,
        modified_at=sim.updated_at * 1000,
        participants=tuple(participants),
        extra=(
            ("duration", sim.duration_minutes),
            ("meeting_type", sim.meeting_type),
            ("notes", sim.notes),
            ("title", sim.title),
        ),
    )


def _check_mapping(sim: SimMeeting, parser: RowParser, times: TimeFormatter) -> None:
    """``_meeting_of`` agrees with rendering rows and mapping them like the source does."""
    head = meeting_fields(sim, times)
    rows = [parser.parse(head | participant_fields(p)) for p in sim.participants]
    assembled = assemble(rows).meetings
    if assembled != [_meeting_of(sim)]:
        raise AssertionError(f"prefill maps meeting {sim.meeting_id} unlike the source")


def simulated_meetings(count: int, first_id: int, seed: int, now: int) -> Iterator[Meeting]:
    """``count`` distinct meetings of ``EVENT_ID`` as the simulator seeds an event of that
    size (``workload.seed_store``), with ids from ``first_id``."""
    rng = random.Random(seed)
    plan = workload.plan_event(EVENT_ID, count, now, UTC)
    parser, times = RowParser(zone=UTC), TimeFormatter(UTC)
    for i in range(count):
        sim = workload.seeded_meeting(rng, plan, first_id + i, now)
        if i < 200:
            _check_mapping(sim, parser, times)
        yield _meeting_of(sim)


def prefill(settings: Settings, count: int) -> tuple[float, int]:
    """Write ``count`` distinct simulated meeting states of ``EVENT_ID`` to the state topic
    (see the module docstring). Returns seconds and the bytes of the values written."""
    started = time.perf_counter()
    partitions = ensure_topics(AdminClient(settings.kafka_client_config()), settings)
    partition = EVENT_ID % partitions[settings.state_topic]
    serdes = Serdes(SingleObjectFraming())
    producer = Producer(
        {
            **settings.kafka_client_config(),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "zstd",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
        }
    )
    written = 0
    for meeting in simulated_meetings(count, SYNTHETIC_BASE, PREFILL_SEED, int(time.time())):
        key = serdes.encode_state_key(EVENT_ID, meeting.meeting_id)
        value = serdes.encode_meeting_state(meeting, 1)
        written += len(value)
        while True:
            try:
                producer.produce(settings.state_topic, key=key, value=value, partition=partition)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("prefill: records left undelivered")
    return time.perf_counter() - started, written


class _Counting:
    """Wraps a publisher: remembers how many records the last transaction held."""

    def __init__(self, inner: TransactionalPublisher) -> None:
        self.inner = inner
        self.last = 0

    async def publish(self, records: list[Record]) -> None:
        self.last = len(records)
        await self.inner.publish(records)


async def run_engine(
    settings: Settings,
    sim: SimulatorProcess,
    runs: int,
    changes: int,
    profiler: cProfile.Profile | None = None,
) -> tuple[list[float], EventState]:
    """Restore, snapshot the simulator's meetings (no events), then ``runs`` timed cycles
    of ``changes`` modifications each. Returns cycle milliseconds and the state."""
    admin = AdminClient(settings.kafka_client_config())
    partitions = ensure_topics(admin, settings)
    serdes = Serdes(SingleObjectFraming())
    publisher = TransactionalPublisher(settings, transactional_id(settings.connector_name, 1))
    await publisher.start()
    try:
        state_partitions = partitions[settings.state_topic]
        states, _ = await asyncio.to_thread(
            restore,
            settings.kafka_client_config(),
            settings.state_topic,
            {EVENT_ID % state_partitions},
            (EVENT_ID,),
            serdes,
        )
        gc.collect()
        gc.freeze()
        counting = _Counting(publisher)
        async with aiohttp.ClientSession() as session:
            client = ExportClient(
                session, settings, Metrics(), limiter=RequestLimiter.from_settings(settings)
            )
            deps = Collaborators(
                settings=settings,
                client=client,
                reader=WindowReader(client, settings.api_per_page),
                serdes=serdes,
                metrics=Metrics(),
                health=HealthState((EVENT_ID,), poll_interval_seconds=1),
                state_partitions=state_partitions,
                changes_partitions=settings.changes_topic_partitions,
            )
            sync = EventSync(EVENT_ID, states[EVENT_ID], counting, deps)  # type: ignore[arg-type]
            if profiler is not None:
                profiler.enable()
            while await sync.cycle():  # the snapshot, until done
                pass
            if profiler is not None:
                profiler.disable()
            await sync.cycle()  # one ordinary incremental cycle
            ids = sorted(m for m in sync.state.meetings if m < SYNTHETIC_BASE)
            timings = []
            for r in range(runs):
                for i in range(changes):
                    note = f"cycle {settings.connector_name} {r}-{i}"
                    await sim.patch(ids[(r * changes + i) % len(ids)], notes=note)
                # past the settle delay of the second of these changes, in the API's clock
                await asyncio.sleep(SETTLE + 1.05 - time.time() % 1)
                started = time.perf_counter()
                await sync.cycle()
                timings.append((time.perf_counter() - started) * 1000)
                if counting.last != 2 * changes + 1:
                    raise RuntimeError(
                        f"cycle wrote {counting.last} records, expected {2 * changes + 1}"
                    )
            return timings, sync.state
    finally:
        await publisher.close()


def restore_child(topic: str) -> None:
    """In a fresh process: restore ``topic`` and print records, seconds and RSS growth."""
    serdes = Serdes(SingleObjectFraming())
    config: dict[str, str | int | float | bool] = {"bootstrap.servers": bootstrap()}
    partitions = AdminClient(config).list_topics(topic, timeout=30).topics[topic].partitions
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    states, report = restore(config, topic, {EVENT_ID % len(partitions)}, (EVENT_ID,), serdes)
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    values = states[EVENT_ID].meetings
    print(
        json.dumps(
            {
                "records": report.records,
                "meetings": len(values),
                "seconds": seconds,
                "rss_delta": after - before,
                "stored_bytes": values.stored_bytes,
            }
        )
    )


def _restore_in_child(topic: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.state_scale", "--restore-child", topic],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


async def measure(runs: int = RUNS, large: int = LARGE) -> dict[str, Any]:
    args = ["--meetings", str(SIM_MEETINGS), "--event-id", str(EVENT_ID), "--seed", "3"]
    small_name, big_name = unique_name("cycle1k"), unique_name("cycle1m")
    try:
        async with SimulatorProcess(args) as sim:
            small = settings_for(sim.base_url, small_name)
            small_ms, state = await run_engine(small, sim, runs, CHANGES)
            print(
                f"  cycle at {len(state.meetings):,} meetings: "
                + ", ".join(f"{t:.0f}" for t in small_ms)
                + " ms",
                flush=True,
            )
            del state
            big = settings_for(sim.base_url, big_name)
            prefill_s, written = await asyncio.to_thread(prefill, big, large - SIM_MEETINGS)
            print(
                f"  prefilled {large - SIM_MEETINGS:,} distinct state records "
                f"({written / (large - SIM_MEETINGS):.0f} bytes each) in {prefill_s:.1f} s",
                flush=True,
            )
            big_ms, state = await run_engine(big, sim, runs, CHANGES)
            tracked = len(state.meetings)
            print(
                f"  cycle at {tracked:,} meetings: "
                + ", ".join(f"{t:.0f}" for t in big_ms)
                + " ms",
                flush=True,
            )
            del state
            gc.unfreeze()
            gc.collect()
        restores = []
        for i in range(max(1, min(runs, 3))):
            restores.append(await asyncio.to_thread(_restore_in_child, f"{big_name}.state"))
            r = restores[-1]
            print(
                f"  restore {i + 1}: {r['meetings']:,} meetings in {r['seconds']:.2f} s, "
                f"RSS +{r['rss_delta'] / 2**20:,.0f} MiB",
                flush=True,
            )
    finally:
        await asyncio.to_thread(delete_topics, topics_of(small_name) + topics_of(big_name))
    return {
        "cycle_1k": summary(small_ms),
        "cycle_1m": summary(big_ms),
        "tracked_large": tracked,
        "restore": summary([r["meetings"] / r["seconds"] for r in restores]),
        "rss_per_meeting": summary([r["rss_delta"] / r["meetings"] for r in restores]),
        "restored_meetings": restores[0]["meetings"],
        "encoded_per_meeting": written / (large - SIM_MEETINGS),
        "stored_per_meeting": restores[0]["stored_bytes"] / restores[0]["meetings"],
    }


def report(m: dict[str, Any], results: dict[str, Any]) -> None:
    record(results, "incremental_cycle_ms_1k", m["cycle_1k"]["runs"], digits=1)
    record(results, "incremental_cycle_ms_1m", m["cycle_1m"]["runs"], digits=1)
    record(results, "state_restore_meetings_per_s", m["restore"]["runs"])
    record(results, "rss_bytes_per_meeting", m["rss_per_meeting"]["runs"])
    results["state_restored_meetings"] = m["restored_meetings"]
    results["state_stored_bytes_per_meeting"] = round(m["stored_per_meeting"])
    print(
        f"incremental cycle, {CHANGES} changes (in-process engine): "
        f"{fmt(m['cycle_1k'], ' ms', 1)} at 1,000 tracked; "
        f"{fmt(m['cycle_1m'], ' ms', 1)} at {m['tracked_large']:,} tracked\n"
        f"state restore ({m['restored_meetings']:,} meetings, fresh process): "
        f"{fmt(m['restore'], ' meetings/s')}; RSS {fmt(m['rss_per_meeting'], ' bytes/meeting')}; "
        f"values held in {m['stored_per_meeting']:.0f} bytes/meeting "
        f"(encoded {m['encoded_per_meeting']:.0f}, "
        f"{m['encoded_per_meeting'] / m['stored_per_meeting']:.2f}x)",
        flush=True,
    )


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook."""
    m = asyncio.run(measure(2 if quick else RUNS, 100_000 if quick else LARGE))
    report(m, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--meetings", type=int, default=LARGE)
    parser.add_argument("--restore-child", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restore_child:
        restore_child(args.restore_child)
        return
    report(asyncio.run(measure(args.runs, args.meetings)), {})


if __name__ == "__main__":
    main()
