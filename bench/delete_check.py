"""Deletes (issue 15): how soon a hard delete is published, and what finding it costs.

One event of 100,000 meetings (``--quick``: 2,000) in ``meetings-cdc simulate``; one
connector (poll 1 s, settle 1 s, delete check every 15 s, no reconciliation, no client
rate limit so the snapshot is quick). Once the snapshot is published:

- ``delete_check_empty_requests``: export requests per check while nothing changes
  (target <= 2; it is one ``per_page=1`` count);
- then 10 meetings (``--deletes``) are deleted through the simulator's admin API, spread
  over 1.3 check intervals (so they meet the check at every phase), twice (``--runs``):
- ``delete_latency_p99_s``: from the admin DELETE to the DELETED event readable by a
  read_committed consumer (target: interval + one poll = 16 s);
- ``delete_check_requests_per_delete``: the requests of the checks that found something
  (counts and reads; the checks that found nothing are the empty cost above) per delete.

Figures come from the connector's own metrics (``meetings_cdc_delete_check_*``).

    python -m bench.delete_check [--meetings N] [--deletes N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from typing import Any

import aiohttp

from bench.common import bootstrap, delete_topics, record, unique_name
from bench.connectors import topics_of
from tests.chaos.runner import log_lines
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, free_port
from tests.simulator_harness import SimulatorProcess

EVENT = 1
INTERVAL_S = 15.0
POLL_S = 1.0
MEETINGS = 100_000
DELETES = 10
RUNS = 2


async def _metrics(port: int) -> dict[str, float]:
    """The delete check's counters (summed over labels we do not split by)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found = {"requests": 0.0, "clean": 0.0, "checks": 0.0, "deletions": 0.0, "snapshot": 0.0}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("meetings_cdc_delete_check_requests_total{"):
            found["requests"] += float(value)
        elif name.startswith("meetings_cdc_delete_checks_total{"):
            found["checks"] += float(value)
            if 'outcome="clean"' in name:
                found["clean"] += float(value)
        elif name.startswith("meetings_cdc_delete_check_deletions_total{"):
            found["deletions"] += float(value)
        elif name.startswith("meetings_cdc_events_published_total{") and "SNAPSHOT" in name:
            found["snapshot"] += float(value)
    return found


async def _until(port: int, key: str, at_least: float, within: float) -> dict[str, float]:
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                m = await _metrics(port)
                if m[key] >= at_least:
                    return m
            await asyncio.sleep(0.5)


async def _deletes(
    sim: SimulatorProcess, log: ChangeLog, victims: list[int], spread_s: float
) -> list[float]:
    """Delete ``victims`` over ``spread_s``; each one's latency to its DELETED event."""
    deleted_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}
    gap = spread_s / len(victims)

    async def delete_all() -> None:
        for meeting_id in victims:
            await sim.delete(meeting_id)
            deleted_at[meeting_id] = time.monotonic()
            await asyncio.sleep(gap)

    deleting = asyncio.create_task(delete_all())
    try:
        async with asyncio.timeout(spread_s + 4 * INTERVAL_S):
            while len(seen_at) < len(victims):
                await log.poll(0.2)
                now = time.monotonic()
                for event in log.events:
                    m = event["meeting_id"]
                    if event["change_type"] == "DELETED" and m in deleted_at and m not in seen_at:
                        seen_at[m] = now
                log.events.clear()
    finally:
        deleting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deleting
    return [seen_at[m] - deleted_at[m] for m in victims]


async def measure(meetings: int, deletes: int, runs: int) -> dict[str, Any]:
    """Every figure's values (latencies of every delete; one cost per run)."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT), "--seed", "15"]
    name = unique_name("deletes")
    port = free_port()
    env = connector_env(
        api_base_url="",
        event_ids=str(EVENT),
        bootstrap=bootstrap(),
        name=name,
        MEETINGS_CDC_METRICS_PORT=str(port),
        MEETINGS_CDC_POLL_INTERVAL_SECONDS=str(POLL_S),
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS=str(INTERVAL_S),
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="0",
        MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND="0",
        MEETINGS_CDC_LOG_LEVEL="INFO",
    )
    latencies: list[float] = []
    per_delete: list[float] = []
    empty: list[float] = []
    async with SimulatorProcess(args, startup_timeout=300) as sim:
        env["MEETINGS_CDC_API_BASE_URL"] = sim.base_url
        ids = sorted(m["meeting_id"] for m in await sim.truth(EVENT))
        connector = await ConnectorProcess(env).start()
        log = ChangeLog(bootstrap(), env["MEETINGS_CDC_CHANGES_TOPIC"])
        try:
            await _until(port, "snapshot", len(ids), 600)
            # the consumer catches up with the snapshot before the clock starts
            await log.wait_for(lambda e: len(e) >= len(ids), 600, "the snapshot")
            log.events.clear()
            before = await _until(port, "clean", 1, 3 * INTERVAL_S)
            after = await _until(port, "clean", before["clean"] + 2, 4 * INTERVAL_S)
            checks = after["checks"] - before["checks"]
            empty.append((after["requests"] - before["requests"]) / checks)
            rng = random.Random(15)
            for run in range(runs):
                victims = rng.sample(ids, deletes)
                ids = [m for m in ids if m not in victims]
                start = await _metrics(port)
                found = await _deletes(sim, log, victims, 1.3 * INTERVAL_S)
                end = await _until(port, "deletions", start["deletions"] + deletes, INTERVAL_S)
                differed = (end["requests"] - start["requests"]) - (end["clean"] - start["clean"])
                per_delete.append(differed / deletes)
                latencies.extend(found)
                print(
                    f"  run {run + 1}: {deletes} deletes, latency max {max(found):.2f} s, "
                    f"median {statistics.median(found):.2f} s; "
                    f"{differed / deletes:.1f} requests per delete",
                    flush=True,
                )
            durations = [
                line["seconds"]
                for line in log_lines(connector.log)
                if line.get("msg") == "delete check found deleted meetings"
            ]
            if durations:
                print(
                    f"  checks that found deletes took {statistics.median(durations):.2f} s "
                    f"(median of {len(durations)}; max {max(durations):.2f} s)",
                    flush=True,
                )
        finally:
            log.close()
            await connector.stop_quietly()
            await asyncio.to_thread(delete_topics, topics_of(name))
    return {"latencies": latencies, "per_delete": per_delete, "empty": empty}


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank: of 20 values, the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered) + 0.5) - 1))]


def run(results: dict[str, Any], quick: bool = False) -> None:
    """Measure and add the delete figures to ``results``."""
    meetings = 2_000 if quick else MEETINGS
    runs = 1 if quick else RUNS
    print(
        f"delete_check: {meetings:,} meetings, {DELETES} deletes x {runs}, check every "
        f"{INTERVAL_S:g} s, poll {POLL_S:g} s",
        flush=True,
    )
    m = asyncio.run(measure(meetings, DELETES, runs))
    results["delete_latency_p99_s"] = round(p99(m["latencies"]), 2)
    results["delete_latency_p99_s_spread"] = [
        round(min(m["latencies"]), 2),
        round(max(m["latencies"]), 2),
    ]
    record(results, "delete_check_requests_per_delete", m["per_delete"], 2)
    record(results, "delete_check_empty_requests", m["empty"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--deletes", type=int, default=DELETES)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    m = asyncio.run(measure(args.meetings, args.deletes, args.runs))
    print(
        f"delete_latency_p99_s {p99(m['latencies']):.2f}; "
        f"requests per delete {m['per_delete']}; empty check {m['empty']}"
    )


if __name__ == "__main__":
    main()
