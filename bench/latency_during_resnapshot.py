"""Incremental latency while a re-snapshot runs (issue 32).

The latency benchmark of ``bench.latency`` (1 s polls, settle 1 s, 200 changes/s, each on
a different meeting, upstream request to read_committed arrival) on one event of
``--meetings`` meetings (100,000 by default, snapshot mode ``no_data``), in one connector
process: quiet bursts and bursts during a re-snapshot of the whole event (a ``resnapshot``
signal, sent just before the burst; the next quiet burst waits for its end) alternate, so
that load which comes and goes on a shared machine weighs on both alike. A re-snapshot's
own SNAPSHOT re-sends are not arrivals of the burst's changes (their change type tells).
Prints both p99s, their difference (target: within 250 ms, as for reconciliation) and how
long each re-snapshot took.

    python -m bench.latency_during_resnapshot [--meetings N] [--runs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from bench.common import bootstrap, delete_topics, fmt, record, summary, unique_name
from bench.connectors import connector_env, topics_of
from bench.latency import POLL_INTERVAL, RATE, SETTLE, Arrivals
from bench.latency_during_reconcile import _run
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

MEETINGS = 100_000
EVENT_ID = 1
SECONDS = 20.0
RUNS = 3
TARGET_MS = 250


def _signal(topic: str) -> str:
    signal_id = f"bench-resnapshot-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap()})
    value = json.dumps({"type": "resnapshot", "event_id": EVENT_ID}).encode()
    producer.produce(topic, key=signal_id.encode(), value=value)
    assert producer.flush(15) == 0
    return signal_id


def _marks(proc: ConnectorProcess, message: str, signal_id: str) -> int:
    return sum(1 for line in proc.log.splitlines() if message in line and signal_id in line)


async def measure(
    meetings: int = MEETINGS, runs: int = RUNS, seconds: float = SECONDS
) -> dict[str, Any]:
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "32"]
    name = unique_name("latency-resnapshot")
    env = connector_env(
        "",
        EVENT_ID,
        name,
        MEETINGS_CDC_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        MEETINGS_CDC_SETTLE_SECONDS=str(SETTLE),
        MEETINGS_CDC_SNAPSHOT_MODE="no_data",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="0",
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="0",
    )
    per_run = int(seconds * RATE)
    quiet: list[float] = []
    busy: list[float] = []
    took: list[float] = []
    unfinished = 0
    try:
        async with SimulatorProcess(args) as sim:
            env["MEETINGS_CDC_API_BASE_URL"] = sim.base_url
            ids = [m["meeting_id"] for m in await sim.truth(EVENT_ID)]
            if per_run * runs * 2 > len(ids):
                raise ValueError("not enough meetings for distinct changes in every run")
            chunks = iter(ids[i * per_run : (i + 1) * per_run] for i in range(runs * 2))
            arrivals = Arrivals(f"{name}.changes", skip_snapshots=True)
            proc = await ConnectorProcess(env).start()
            try:
                await proc.mark("snapshot complete", within=600)
                arrivals.start()
                await asyncio.to_thread(arrivals.ready.wait, 30)
                await asyncio.sleep(3)
                for r in range(runs):
                    quiet.append(
                        await _run(sim, arrivals, next(chunks), f"quiet run {r + 1}/{runs}")
                    )
                    signal_id = await asyncio.to_thread(_signal, env["MEETINGS_CDC_SIGNALS_TOPIC"])
                    started = time.monotonic()
                    while not _marks(proc, "re-snapshot running", signal_id):  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                    busy.append(
                        await _run(
                            sim, arrivals, next(chunks), f"during-resnapshot run {r + 1}/{runs}"
                        )
                    )
                    if _marks(proc, "re-snapshot complete", signal_id):
                        unfinished += 1  # ended before the burst did: the figure flatters
                    while not _marks(proc, "re-snapshot complete", signal_id):  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                    took.append(time.monotonic() - started)
                    print(f"  re-snapshot {r + 1}/{runs} took {took[-1]:.1f} s", flush=True)
            finally:
                await proc.stop()
                arrivals.stopping.set()
                with contextlib.suppress(RuntimeError):
                    await asyncio.to_thread(arrivals.join, 10)
            if arrivals.error:
                raise RuntimeError(f"consumer error: {arrivals.error}")
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))
    return {
        "quiet": summary(quiet),
        "busy": summary(busy),
        "meetings": meetings,
        "resnapshot_seconds": summary(took),
        "ended_before_the_burst": unfinished,
    }


def report(m: dict[str, Any], results: dict[str, Any]) -> None:
    record(results, "incremental_latency_during_resnapshot_p99_ms", m["busy"]["runs"])
    difference = m["busy"]["median"] - m["quiet"]["median"]
    results["incremental_latency_during_resnapshot_minus_quiet_ms"] = round(difference)
    rate = m["meetings"] / m["resnapshot_seconds"]["median"]
    results["resnapshot_meetings_per_s"] = round(rate)
    caveat = (
        f"; {m['ended_before_the_burst']} re-snapshot(s) ended before the burst did"
        if m["ended_before_the_burst"]
        else ""
    )
    print(
        f"incremental latency during a re-snapshot of {m['meetings']:,} meetings: p99 "
        f"{fmt(m['busy'], ' ms')} against {fmt(m['quiet'], ' ms')} quiet in the same run: "
        f"{difference:+,.0f} ms (target within {TARGET_MS} ms: "
        f"{'yes' if difference <= TARGET_MS else 'NO'}); a re-snapshot took "
        f"{fmt(m['resnapshot_seconds'], ' s', 1)} ({rate:,.0f} meetings/s){caveat}",
        flush=True,
    )


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook."""
    if quick:
        m = asyncio.run(measure(meetings=20_000, runs=1, seconds=3.0))
    else:
        m = asyncio.run(measure())
    report(m, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    report(asyncio.run(measure(args.meetings, args.runs, args.seconds)), results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
