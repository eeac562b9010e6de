"""Source-side throughput: a full, drift-free export of 100,000 meetings (~270k rows).

The simulator runs as a separate process (``meetings-cdc simulate``), so the CPU time
measured here (``time.process_time`` of this process) is the reader's alone: HTTP, JSON,
row mapping, splitting and meeting assembly. Each run reads the CREATED window
``[0, api_now]`` through :class:`WindowReader` exactly as the connector's snapshot does,
and checks that every meeting came out once. One warm-up run is not counted; the figures
are the medians of the measured runs, with min-max spread.

    python -m bench.export [--meetings N] [--runs N] [--per-page N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from typing import Any

from connector.config.settings import ApiSettings
from connector.core.kinds import WindowKind
from connector.ops.metrics import Metrics
from connector.source.client import ExportClient
from connector.source.limiter import RequestLimiter
from connector.source.reader import WindowReader
from connector.source.windows import Window
from tests.simulator_harness import SimulatorProcess

MEETINGS = 100_000
RUNS = 5
PER_PAGE = 500
EVENT_ID = 1


async def _pass(client: ExportClient, per_page: int, meetings: int) -> dict[str, float]:
    await client.fetch_page(EVENT_ID, None, 1, 1)  # the API clock, as the engine does
    window = Window(WindowKind.CREATED, 0, client.api_now())
    reader = WindowReader(client, per_page)
    rows = requests = found = 0
    wall, cpu = time.perf_counter(), time.process_time()
    async for part in reader.read(EVENT_ID, window):
        rows += part.rows
        requests += part.requests
        found += len(part.meetings)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if found != meetings:
        raise RuntimeError(f"exported {found} meetings, expected {meetings}")
    return {
        "rows": rows,
        "requests": requests,
        "rows_per_s": rows / wall,
        "cpu_us_per_row": cpu / rows * 1e6,
        "requests_per_row": requests / rows,
        "seconds": wall,
    }


async def measure(
    meetings: int = MEETINGS, runs: int = RUNS, per_page: int = PER_PAGE, profile: bool = False
) -> dict[str, Any]:
    """Start a simulator subprocess; one warm-up pass, then ``runs`` measured passes."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    async with SimulatorProcess(args) as sim:
        settings = ApiSettings(
            api_base_url=sim.base_url,
            event_ids=(EVENT_ID,),
            api_rate_limit_per_second=0,
            api_per_page=per_page,
        )
        limiter = RequestLimiter.from_settings(settings)
        async with ExportClient.connect(settings, Metrics(), limiter=limiter) as client:
            await _pass(client, per_page, meetings)  # warm-up: the simulator renders rows
            passes = []
            profiler = cProfile.Profile() if profile else None
            for _ in range(runs):
                if profiler:
                    profiler.enable()
                passes.append(await _pass(client, per_page, meetings))
                if profiler:
                    profiler.disable()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    summary: dict[str, Any] = {"passes": passes, "concurrency": settings.api_max_concurrency}
    for key in ("rows_per_s", "cpu_us_per_row", "requests_per_row", "rows", "requests"):
        values = [p[key] for p in passes]
        summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return summary


def _line(m: dict[str, Any], meetings: int, per_page: int) -> str:
    r, c, q = m["rows_per_s"], m["cpu_us_per_row"], m["requests_per_row"]
    return (
        f"export (reader): {r['median']:,.0f} rows/s median (min {r['min']:,.0f}, max "
        f"{r['max']:,.0f}); {c['median']:.1f} CPU us/row (min {c['min']:.1f}, max {c['max']:.1f}); "
        f"{q['median']:.4f} requests/row ({m['requests']['median']:,.0f} requests for "
        f"{m['rows']['median']:,.0f} rows) - {meetings:,} meetings, per_page={per_page}, "
        f"concurrency {m['concurrency']}, {len(m['passes'])} runs"
    )


def run(results: dict[str, Any]) -> None:
    """``make bench`` hook: add ``export_rows_per_s``, ``export_cpu_us_per_row``, ..."""
    measured = asyncio.run(measure())
    r, c, q = measured["rows_per_s"], measured["cpu_us_per_row"], measured["requests_per_row"]
    results["export_rows_per_s"] = round(r["median"])
    results["export_rows_per_s_spread"] = [round(r["min"]), round(r["max"])]
    results["export_cpu_us_per_row"] = round(c["median"], 2)
    results["export_cpu_us_per_row_spread"] = [round(c["min"], 2), round(c["max"], 2)]
    results["export_requests_per_row"] = round(q["median"], 5)
    print(_line(measured, MEETINGS, PER_PAGE), flush=True)


def main() -> None:
    """Standalone: ``python -m bench.export``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--per-page", type=int, default=PER_PAGE)
    parser.add_argument("--profile", action="store_true", help="cProfile the measured runs")
    args = parser.parse_args()
    measured = asyncio.run(measure(args.meetings, args.runs, args.per_page, args.profile))
    print(_line(measured, args.meetings, args.per_page), flush=True)


if __name__ == "__main__":
    main()
