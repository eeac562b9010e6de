"""Simulator throughput: export rows/s at per_page=500 with 100,000 meetings loaded.

The simulator runs as a separate process (``meetings-cdc simulate``); one aiohttp client
pages sequentially through the whole export of the event and parses every page, like the
connector does. One cold pass (rows rendered for the first time) is reported apart; the
figure is the median of the warm passes, with min-max spread.

    python -m bench.simulator [--meetings N] [--runs N] [--churn-per-second X]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp

from meetings_simulator.export import EXPORT_PATH
from tests.simulator_harness import SimulatorProcess

MEETINGS = 100_000
PER_PAGE = 500
RUNS = 5
EVENT_ID = 1


async def _pass(session: aiohttp.ClientSession, base_url: str) -> tuple[int, float]:
    """Page through the whole export once; return (rows, seconds)."""
    rows, page = 0, 1
    started = time.perf_counter()
    while True:
        params = {"event_id": EVENT_ID, "per_page": PER_PAGE, "page": page}
        async with session.get(base_url + EXPORT_PATH, params=params) as response:
            response.raise_for_status()
            body = await response.json()
        rows += len(body["data"])
        if page >= body["last_page"]:
            return rows, time.perf_counter() - started
        page += 1


async def measure(meetings: int = MEETINGS, runs: int = RUNS, churn: float = 0.0) -> dict[str, Any]:
    """Start a simulator subprocess, time one cold and ``runs`` warm passes."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    args += ["--churn-per-second", str(churn)]
    started = time.perf_counter()
    async with SimulatorProcess(args) as sim, aiohttp.ClientSession() as session:
        startup = time.perf_counter() - started
        rows, cold = await _pass(session, sim.base_url)
        rates = []
        for _ in range(runs):
            rows, seconds = await _pass(session, sim.base_url)
            rates.append(rows / seconds)
    return {
        "rows": rows,
        "startup_s": startup,
        "cold_rows_per_s": rows / cold,
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "runs": rates,
    }


def _line(m: dict[str, Any], meetings: int) -> str:
    return (
        f"simulator export: {m['median']:,.0f} rows/s median "
        f"(min {m['min']:,.0f}, max {m['max']:,.0f}, {len(m['runs'])} runs; "
        f"cold pass {m['cold_rows_per_s']:,.0f} rows/s) - {m['rows']:,} rows, "
        f"{meetings:,} meetings, per_page={PER_PAGE}, simulator start {m['startup_s']:.1f}s"
    )


def run(results: dict[str, Any]) -> None:
    """``make bench`` hook: add ``simulator_export_rows_per_s`` (median) and print a line."""
    measured = asyncio.run(measure())
    results["simulator_export_rows_per_s"] = round(measured["median"])
    results["simulator_export_rows_per_s_spread"] = [round(measured["min"]), round(measured["max"])]
    print(_line(measured, MEETINGS), flush=True)


def main() -> None:
    """Standalone: ``python -m bench.simulator``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--churn-per-second", type=float, default=0.0)
    args = parser.parse_args()
    measured = asyncio.run(measure(args.meetings, args.runs, args.churn_per_second))
    print(_line(measured, args.meetings), f"churn {args.churn_per_second}/s", flush=True)


if __name__ == "__main__":
    main()
