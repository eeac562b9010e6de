"""Incremental latency while reconciliations run back to back (issue 14).

The latency benchmark of ``bench.latency`` (1 s polls, settle 1 s, 200 changes/s, each on
a different meeting, upstream request to read_committed arrival) on one event of
``--meetings`` meetings (100,000 by default), quiet (no reconciliation) and, under a
restart of the same connector (its state restored, no new snapshot) with
``MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS=1``, while full passes over the event run back to
back beside polling (measured from the end of the first). Quiet and busy runs alternate,
each under its own restart, so that load which comes and goes on a shared machine weighs
on both alike. Prints both p99s and their difference (target: within 250 ms).

    python -m bench.latency_during_reconcile [--meetings N] [--runs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from bench.common import delete_topics, fmt, record, summary, unique_name
from bench.connectors import connector_env, topics_of
from bench.latency import POLL_INTERVAL, RATE, SETTLE, Arrivals, _burst, percentile
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

MEETINGS = 100_000
EVENT_ID = 1
SECONDS = 20.0
RUNS = 2
TARGET_MS = 250


async def _run(sim: SimulatorProcess, arrivals: Arrivals, chunk: list[int], label: str) -> float:
    """One burst of changes on ``chunk`` (distinct meetings); its p99 in ms."""
    sent = await _burst(sim, chunk, RATE, label)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(  # noqa: ASYNC110
        m in arrivals.seen for m in chunk
    ):
        await asyncio.sleep(0.2)  # the consumer is a thread: poll its dict
    latencies = [(arrivals.seen[m] - sent[m]) * 1000 for m in chunk if m in arrivals.seen]
    p99 = percentile(latencies, 0.99)
    print(
        f"  {label}: p50 {percentile(latencies, 0.5):,.0f} ms, p99 {p99:,.0f} ms, "
        f"{len(chunk) - len(latencies)} not seen",
        flush=True,
    )
    await asyncio.sleep(2)
    return p99


async def measure(
    meetings: int = MEETINGS, runs: int = RUNS, seconds: float = SECONDS, pace: float = 0.0
) -> dict[str, Any]:
    """Quiet and busy runs alternate (quiet, busy, quiet, ...), each under a restarted
    connector: on a shared machine, load that comes and goes then weighs on both alike."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "14"]
    name = unique_name("latency-reconcile")
    env = connector_env(
        "",
        EVENT_ID,
        name,
        MEETINGS_CDC_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        MEETINGS_CDC_SETTLE_SECONDS=str(SETTLE),
        MEETINGS_CDC_SNAPSHOT_MODE="no_data",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="0",
    )
    per_run = int(seconds * RATE)
    quiet: list[float] = []
    busy: list[float] = []
    took: list[float] = []
    try:
        async with SimulatorProcess(args) as sim:
            env["MEETINGS_CDC_API_BASE_URL"] = sim.base_url
            ids = [m["meeting_id"] for m in await sim.truth(EVENT_ID)]
            if per_run * runs * 2 > len(ids):
                raise ValueError("not enough meetings for distinct changes in every run")
            chunks = iter(ids[i * per_run : (i + 1) * per_run] for i in range(runs * 2))
            arrivals = Arrivals(f"{name}.changes")
            try:
                for r in range(runs):
                    proc = await ConnectorProcess(env).start()
                    try:
                        # the first start snapshots (no_data); later ones restore the state
                        ready = "snapshot complete" if r == 0 else "partitions assigned"
                        await proc.mark(ready, within=600)
                        if r == 0:
                            arrivals.start()
                            await asyncio.to_thread(arrivals.ready.wait, 30)
                        await asyncio.sleep(3)
                        quiet.append(
                            await _run(sim, arrivals, next(chunks), f"quiet run {r + 1}/{runs}")
                        )
                    finally:
                        await proc.stop()
                    busy_env = {
                        **env,
                        "MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS": "1",
                        "MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND": str(pace),
                    }
                    proc = await ConnectorProcess(busy_env).start()
                    try:
                        first = await proc.mark("reconciliation complete", within=600)
                        took.append(float(first.line.get("seconds", "nan")))
                        busy.append(
                            await _run(
                                sim,
                                arrivals,
                                next(chunks),
                                f"during-reconcile run {r + 1}/{runs} (a first pass took "
                                f"{took[-1]:.1f} s)",
                            )
                        )
                    finally:
                        await proc.stop()
            finally:
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
        "pass_seconds": summary(took),
    }


def report(m: dict[str, Any], results: dict[str, Any]) -> None:
    record(results, "incremental_latency_during_reconcile_p99_ms", m["busy"]["runs"])
    record(results, "incremental_latency_quiet_p99_ms", m["quiet"]["runs"])
    difference = m["busy"]["median"] - m["quiet"]["median"]
    results["incremental_latency_during_reconcile_minus_quiet_ms"] = round(difference)
    ratio = m["busy"]["median"] / m["quiet"]["median"] if m["quiet"]["median"] else 0.0
    print(
        f"incremental latency during back-to-back reconciliations of {m['meetings']:,} "
        f"meetings: p99 {fmt(m['busy'], ' ms')} against {fmt(m['quiet'], ' ms')} quiet in "
        f"the same run: {difference:+,.0f} ms ({ratio:.2f}x; target within {TARGET_MS} ms: "
        f"{'yes' if difference <= TARGET_MS else 'NO'}); a first pass took "
        f"{fmt(m['pass_seconds'], ' s', 1)}",
        flush=True,
    )


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook."""
    if quick:
        m = asyncio.run(measure(meetings=20_000, runs=1, seconds=5.0))
    else:
        m = asyncio.run(measure())
    report(m, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND of the busy runs (0: unpaced)",
    )
    args = parser.parse_args()
    report(asyncio.run(measure(args.meetings, args.runs, args.seconds, args.pace)), {})


if __name__ == "__main__":
    main()
