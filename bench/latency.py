"""Incremental latency: upstream modification to read_committed visibility.

A ``meetings-cdc run`` process (1 s poll interval, settle delay 1 s: the smallest that
still reads a second only once it is over) tracks 20,000 meetings of a simulator process
(snapshot mode ``no_data``). This process then modifies meetings through the simulator's
admin API at 200 changes/s, each change on a different meeting, and notes the wall time of
each request as it is sent; a read_committed consumer in a thread notes the wall time each
change event arrives. Latency = arrival - request. Same machine, same clock. Each run is
a 20 s burst (4,000 changes); the percentiles are per run, reported as the median of the
runs with the spread.

    python -m bench.latency [--runs N] [--seconds S] [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError

from bench.common import bootstrap, delete_topics, fmt, record, summary, unique_name
from bench.connectors import connector_env, topics_of
from connector.serde import Serdes, SingleObjectFraming
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

MEETINGS = 20_000
EVENT_ID = 1
RATE = 200.0
SECONDS = 20.0
RUNS = 3
POLL_INTERVAL = 1.0
SETTLE = 1


class Arrivals(threading.Thread):
    """A read_committed consumer noting when each change event of a meeting arrives."""

    def __init__(self, topic: str, *, skip_snapshots: bool = False) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        #: leave SNAPSHOT events out (a re-snapshot's re-sends are no arrival of a change)
        self.skip_snapshots = skip_snapshots
        self.seen: dict[int, float] = {}
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        serdes = Serdes(SingleObjectFraming())
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap(),
                "group.id": f"bench-latency-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.subscribe([self.topic], on_assign=lambda *_: self.ready.set())
        try:
            while not self.stopping.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.05):
                    arrived = time.time()
                    error = msg.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            self.error = error.str()
                        continue
                    if self.skip_snapshots and _is_snapshot(msg.value()):
                        continue
                    meeting_id = serdes.decode_change_key(msg.key())["meeting_id"]
                    self.seen.setdefault(meeting_id, arrived)
        finally:
            consumer.close()


def _is_snapshot(value: bytes | None) -> bool:
    """Whether a single-object encoded MeetingChange is a SNAPSHOT, read without decoding
    it: after the 10-byte header, two varints (event_id, meeting_id), then the change type's
    index (SNAPSHOT is the first symbol: a zero byte)."""
    if not value or len(value) < 13:
        return False
    at = 10
    for _ in range(2):
        while value[at] & 0x80:
            at += 1
        at += 1
    return value[at] == 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _burst(sim: SimulatorProcess, ids: list[int], rate: float, tag: str) -> dict[int, float]:
    """Modify each of ``ids`` once, at ``rate`` per second; the wall time of each request."""
    sent: dict[int, float] = {}
    tasks: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, meeting_id in enumerate(ids):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[meeting_id] = time.time()
        task = asyncio.create_task(sim.patch(meeting_id, notes=f"{tag}-{i}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return sent


async def measure(runs: int = RUNS, seconds: float = SECONDS, rate: float = RATE) -> dict[str, Any]:
    args = ["--meetings", str(MEETINGS), "--event-id", str(EVENT_ID), "--seed", "2"]
    name = unique_name("latency")
    env = connector_env(
        "",
        EVENT_ID,
        name,
        MEETINGS_CDC_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        MEETINGS_CDC_SETTLE_SECONDS=str(SETTLE),
        MEETINGS_CDC_SNAPSHOT_MODE="no_data",
    )
    p50s: list[float] = []
    p99s: list[float] = []
    maxes: list[float] = []
    missing = 0
    try:
        async with SimulatorProcess(args) as sim:
            env["MEETINGS_CDC_API_BASE_URL"] = sim.base_url
            ids = [m["meeting_id"] for m in await sim.truth(EVENT_ID)]
            per_run = int(seconds * rate)
            if per_run * runs > len(ids):
                raise ValueError("not enough meetings for distinct changes in every run")
            proc = await ConnectorProcess(env).start()
            arrivals = Arrivals(f"{name}.changes")
            try:
                await proc.mark("snapshot complete", within=300)
                arrivals.start()
                await asyncio.to_thread(arrivals.ready.wait, 30)
                await asyncio.sleep(3)  # a few ordinary cycles first
                for r in range(runs):
                    chunk = ids[r * per_run : (r + 1) * per_run]
                    sent = await _burst(sim, chunk, rate, f"r{r}")
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not all(  # noqa: ASYNC110
                        m in arrivals.seen for m in chunk
                    ):
                        await asyncio.sleep(0.2)  # the consumer is a thread: poll its dict
                    latencies = [
                        (arrivals.seen[m] - sent[m]) * 1000 for m in chunk if m in arrivals.seen
                    ]
                    missing += len(chunk) - len(latencies)
                    p50s.append(percentile(latencies, 0.50))
                    p99s.append(percentile(latencies, 0.99))
                    maxes.append(max(latencies))
                    print(
                        f"  latency run {r + 1}/{runs}: p50 {p50s[-1]:,.0f} ms, "
                        f"p99 {p99s[-1]:,.0f} ms, max {maxes[-1]:,.0f} ms, "
                        f"{len(chunk) - len(latencies)} not seen",
                        flush=True,
                    )
                    await asyncio.sleep(2)
            finally:
                arrivals.stopping.set()
                with contextlib.suppress(RuntimeError):
                    await asyncio.to_thread(arrivals.join, 10)
                await proc.stop()
            if arrivals.error:
                raise RuntimeError(f"consumer error: {arrivals.error}")
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))
    return {
        "p50": summary(p50s),
        "p99": summary(p99s),
        "max": summary(maxes),
        "missing": missing,
        "rate": rate,
        "changes": per_run,
    }


def report(m: dict[str, Any], results: dict[str, Any]) -> None:
    record(results, "incremental_latency_p50_ms", m["p50"]["runs"])
    record(results, "incremental_latency_p99_ms", m["p99"]["runs"])
    record(results, "incremental_latency_max_ms", m["max"]["runs"])
    results["incremental_latency_not_seen"] = m["missing"]
    print(
        f"incremental latency ({m['rate']:.0f} changes/s, {m['changes']:,} per run, poll "
        f"{POLL_INTERVAL:g} s, settle {SETTLE} s): p50 {fmt(m['p50'], ' ms')}; "
        f"p99 {fmt(m['p99'], ' ms')}; max {fmt(m['max'], ' ms')}; not seen {m['missing']}",
        flush=True,
    )


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook."""
    m = asyncio.run(measure(1 if quick else RUNS, 5.0 if quick else SECONDS))
    report(m, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rate", type=float, default=RATE)
    args = parser.parse_args()
    report(asyncio.run(measure(args.runs, args.seconds, args.rate)), {})


if __name__ == "__main__":
    main()
