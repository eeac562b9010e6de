"""Initial export: a real ``meetings-cdc run`` process snapshots 100,000 meetings.

The simulator (``meetings-cdc simulate --meetings 100000``) and the connector are separate
processes. The clock runs from the connector's "starting event" log line (settings loaded,
topics checked, producer initialised, state restored, API clock learnt: the snapshot
begins) to its "snapshot complete" line (the last transaction committed); its CPU is read
from /proc/<pid>/stat at those two lines. Every run uses fresh topics and is checked
afterwards: a read_committed consumer must find one SNAPSHOT event per meeting.

Each connector run is followed by a run of the baseline, ``bench/bare_copy.py`` (a bare
copy: plain paging, rows produced as JSON by an idempotent producer), against the same
simulator and broker (ABAB). Both are timed the same way for the comparison: from the
process's start to its last record being readable (the connector's "snapshot complete",
the copy's final line after its producer's flush), with the CPU of the whole process over
that time. ``connector_vs_bare_cpu`` and ``connector_vs_bare_wall`` are medians of the
ratios of each pair.

``raw_produce_rows_per_s`` replays the very records the first run committed (its state
records and change events, same keys, values and partitions, in the engine's transaction
size) through a bare transactional confluent-kafka producer with the publisher's settings:
the cost of Kafka alone, so ``initial_export_rows_per_s / raw_produce_rows_per_s`` is the
connector's overhead. Both rates are per export row, over the same row count.

    python -m bench.initial_export [--meetings N] [--runs N]
    python -m bench.initial_export --profile [--meetings N]   # in-process engine, cProfile
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import bootstrap, delete_topics, fmt, record, summary, unique_name
from bench.connectors import connector_env, read_topic, topics_of
from connector.config.settings import ApiSettings, KafkaSettings
from connector.kafka.publisher import ensure_topics, producer_config
from connector.serde import Serdes, SingleObjectFraming
from connector.sync.committer import MAX_RECORDS_PER_TRANSACTION
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

MEETINGS = 100_000
RUNS = 3
EVENT_ID = 1
PER_PAGE = ApiSettings.model_fields["api_per_page"].default  # the connector's default
Replay = list[tuple[str, bytes | None, bytes | None, int | None]]


async def _export_once(base_url: str, rows: int, meetings: int, keep: bool) -> dict[str, Any]:
    name = unique_name("export")
    try:
        proc = await ConnectorProcess(connector_env(base_url, EVENT_ID, name)).start()
        try:
            start = await proc.mark("starting event", within=120)
            done = await proc.mark("snapshot complete", within=1800)
        finally:
            await proc.stop()
        changes = await asyncio.to_thread(read_topic, f"{name}.changes", meetings)
        if len(changes) != meetings:
            raise RuntimeError(f"{len(changes)} committed change events, expected {meetings}")
        seconds = done.monotonic - start.monotonic
        result: dict[str, Any] = {
            "rows_per_s": rows / seconds,
            "cpu_us_per_row": (done.cpu - start.cpu) / rows * 1e6,
            "seconds": seconds,
            "process_seconds": done.monotonic - proc.spawned,
            "process_cpu_seconds": done.cpu,
            "requests": int(done.line["requests"]),
        }
        if keep:
            state = await asyncio.to_thread(read_topic, f"{name}.state", None)
            result["replay"] = _replay(state, changes)
        return result
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))


async def _bare_copy_once(base_url: str, rows: int) -> dict[str, Any]:
    """One run of the baseline on a fresh topic; checks every row arrived."""
    topic = f"{unique_name('bare')}.rows"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap()})
        admin.create_topics([NewTopic(topic, 6)])[topic].result(timeout=30)
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bare_copy",
            base_url,
            str(EVENT_ID),
            topic,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await process.stdout.readline()
        seconds = time.monotonic() - started
        if await process.wait() != 0 or not line:
            raise RuntimeError(f"bench.bare_copy failed (exit {process.returncode})")
        done = json.loads(line)
        copied = await asyncio.to_thread(records_in, topic)
        if done["rows"] != rows or copied < rows:
            raise RuntimeError(f"bare copy: {done['rows']} rows, {copied} readable, {rows} served")
        return {"seconds": seconds, "cpu_seconds": done["cpu_seconds"]}
    finally:
        await asyncio.to_thread(delete_topics, [topic])


def records_in(topic: str) -> int:
    """Records in ``topic`` (no transactions: the sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique_name("count")})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def _replay(state: list[Any], changes: list[Any]) -> Replay:
    """The records in the order the engine wrote them: each meeting's state record, then
    its change event; progress records where they were."""
    serdes = Serdes(SingleObjectFraming())
    by_meeting = {serdes.decode_change_key(m.key())["meeting_id"]: m for m in changes}
    out: Replay = []
    for s in sorted(state, key=lambda m: m.offset()):
        out.append(("state", s.key(), s.value(), s.partition()))
        _, meeting_id = serdes.decode_state_key(s.key())
        change = by_meeting.get(meeting_id) if meeting_id is not None else None
        if change is not None:
            out.append(("changes", change.key(), change.value(), None))
    return out


def raw_produce(replay: Replay) -> float:
    """Seconds a bare transactional producer takes to write ``replay`` to fresh topics, in
    transactions of the engine's size. Blocking."""
    name = unique_name("raw")
    settings = KafkaSettings(
        kafka_bootstrap_servers=bootstrap(),
        changes_topic=f"{name}.changes",
        state_topic=f"{name}.state",
        dlq_topic=f"{name}.dlq",
    )
    topics = {"state": settings.state_topic, "changes": settings.changes_topic}
    try:
        ensure_topics(AdminClient(settings.kafka_client_config()), settings)
        producer = Producer(producer_config(settings, f"{name}-{uuid.uuid4().hex[:6]}"))
        producer.init_transactions(30)
        started = time.perf_counter()
        in_txn = 0
        producer.begin_transaction()
        for kind, key, value, partition in replay:
            kwargs: dict[str, Any] = {"key": key, "value": value}
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    producer.produce(topics[kind], **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)
            in_txn += 1
            if in_txn >= MAX_RECORDS_PER_TRANSACTION:
                producer.commit_transaction(60)
                producer.begin_transaction()
                in_txn = 0
        producer.commit_transaction(60)
        seconds = time.perf_counter() - started
        producer.flush(10)
        return seconds
    finally:
        delete_topics([settings.changes_topic, settings.state_topic, settings.dlq_topic])


async def measure(meetings: int = MEETINGS, runs: int = RUNS) -> dict[str, Any]:
    """One simulator; ``runs`` connector processes, each on fresh topics; then the raw replay."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    async with SimulatorProcess(args) as sim:
        rows = int((await sim.export_page(EVENT_ID, per_page=1))["total"])
        passes = []
        bare = []
        for i in range(runs):
            passes.append(await _export_once(sim.base_url, rows, meetings, keep=i == 0))
            bare.append(await _bare_copy_once(sim.base_url, rows))
            a, b = passes[-1], bare[-1]
            print(
                f"  initial export run {i + 1}/{runs}: {a['rows_per_s']:,.0f} rows/s, "
                f"{a['cpu_us_per_row']:.1f} CPU us/row; process start to done "
                f"{a['process_seconds']:.1f} s, {a['process_cpu_seconds']:.1f} CPU s; "
                f"bare copy {b['seconds']:.1f} s, {b['cpu_seconds']:.1f} CPU s",
                flush=True,
            )
    replay = passes[0].pop("replay")
    raw = [rows / await asyncio.to_thread(raw_produce, replay) for _ in range(runs)]
    return {
        "rows": rows,
        "meetings": meetings,
        "records": len(replay),
        "rows_per_s": summary([p["rows_per_s"] for p in passes]),
        "cpu_us_per_row": summary([p["cpu_us_per_row"] for p in passes]),
        "raw_rows_per_s": summary(raw),
        "bare_rows_per_s": summary([rows / b["seconds"] for b in bare]),
        "bare_cpu_us_per_row": summary([b["cpu_seconds"] / rows * 1e6 for b in bare]),
        # the API's cost: requests of the snapshot's read against ceil(rows / per_page)
        "requests_vs_minimum": summary(
            [p["requests"] / math.ceil(rows / PER_PAGE) for p in passes]
        ),
        "requests": [p["requests"] for p in passes],
        "vs_bare_cpu": summary(
            [a["process_cpu_seconds"] / b["cpu_seconds"] for a, b in zip(passes, bare, strict=True)]
        ),
        "vs_bare_wall": summary(
            [a["process_seconds"] / b["seconds"] for a, b in zip(passes, bare, strict=True)]
        ),
    }


def report(m: dict[str, Any], results: dict[str, Any]) -> None:
    """Add the figures to ``results`` and print them."""
    record(results, "initial_export_rows_per_s", m["rows_per_s"]["runs"])
    record(results, "cpu_us_per_row", m["cpu_us_per_row"]["runs"], digits=1)
    record(results, "raw_produce_rows_per_s", m["raw_rows_per_s"]["runs"])
    ratio = m["raw_rows_per_s"]["median"] / m["rows_per_s"]["median"]
    results["connector_vs_raw_slowdown"] = round(ratio, 2)
    record(results, "bare_copy_rows_per_s", m["bare_rows_per_s"]["runs"])
    record(results, "bare_copy_cpu_us_per_row", m["bare_cpu_us_per_row"]["runs"], digits=1)
    record(results, "connector_vs_bare_cpu", m["vs_bare_cpu"]["runs"], digits=2)
    record(results, "connector_vs_bare_wall", m["vs_bare_wall"]["runs"], digits=2)
    results["initial_export_rows"] = m["rows"]
    record(results, "snapshot_requests_vs_minimum", m["requests_vs_minimum"]["runs"], digits=3)
    print(
        f"initial export ({m['meetings']:,} meetings, {m['rows']:,} rows, 'meetings-cdc run' "
        f"process): {fmt(m['rows_per_s'], ' rows/s')}; {fmt(m['cpu_us_per_row'], ' CPU us/row', 1)}"
        f"\nraw transactional producer ({m['records']:,} records): "
        f"{fmt(m['raw_rows_per_s'], ' rows/s')}; connector is {ratio:.2f}x slower"
        f"\nbare copy (bench/bare_copy.py, process start to last record): "
        f"{fmt(m['bare_rows_per_s'], ' rows/s')}; {fmt(m['bare_cpu_us_per_row'], ' CPU us/row', 1)}"
        f"\nsnapshot requests {m['requests']} against a minimum of "
        f"{math.ceil(m['rows'] / PER_PAGE)} full pages: {fmt(m['requests_vs_minimum'], 'x', 3)}"
        f"\nconnector vs bare copy, per ABAB pair: CPU {fmt(m['vs_bare_cpu'], 'x', 2)}; "
        f"wall {fmt(m['vs_bare_wall'], 'x', 2)}",
        flush=True,
    )


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook."""
    m = asyncio.run(measure(10_000 if quick else MEETINGS, 1 if quick else RUNS))
    report(m, results)


async def profile(meetings: int, top: int = 40) -> None:
    """The same snapshot in an in-process engine (real collaborators) under cProfile."""
    import cProfile
    import pstats

    from bench.state_scale import run_engine, settings_for

    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    name = unique_name("profile")
    try:
        async with SimulatorProcess(args) as sim:
            settings = settings_for(sim.base_url, name, snapshot_mode="initial")
            profiler = cProfile.Profile()
            started = time.perf_counter()
            await run_engine(settings, sim, runs=0, changes=0, profiler=profiler)
            seconds = time.perf_counter() - started
            rows = int((await sim.export_page(EVENT_ID, per_page=1))["total"])
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))
    print(f"{rows:,} rows in {seconds:.1f} s under cProfile: {rows / seconds:,.0f} rows/s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--profile", action="store_true", help="cProfile an in-process engine")
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args.meetings))
        return
    report(asyncio.run(measure(args.meetings, args.runs)), {})


if __name__ == "__main__":
    main()
