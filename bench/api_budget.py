"""API budget (issue 15): requests per quiet poll, and 50 events in one process within the
API's rate limit. Requests are counted where the vendor counts them: at the simulator
(``GET /admin/requests``); polls at the connector (``meetings_cdc_cycles_total`` of its
/metrics).

``requests_per_quiet_poll``: one event of 200 meetings, every setting at its default (poll
every 5 s, rate limit 20/s, reconciliation hourly). Three new meetings first teach the
connector that last-modified windows show creations (``MEETINGS_CDC_CREATED_WINDOWS=auto``),
the clock estimate settles (its probes slow to one a minute); then nothing changes for a
minute and every export request the simulator receives (clock probes included) is divided
by the polls the connector ran. Medians of consecutive minutes. The same against a
simulator that does not stamp creations (``--no-modified-at-creation``), where the created
window must stay: ``requests_per_poll_with_created``.

``budget_50_events_*``: one process, 50 events of 20 meetings, default poll interval and
rate limit, the simulator enforcing 20 requests/s itself (its 429s are what a real API
would answer). Over a quiet minute: 429s at the simulator and the connector (target 0),
polls skipped (target 0: an event ran fewer polls than the minute holds, less one for the
tick alignment, i.e. a poll overran its interval or waited on the limit), requests/s.

    python -m bench.api_budget [--minutes N] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import socket
import statistics
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import delete_topics, unique_name
from bench.connectors import connector_env, topics_of
from connector.source.creation_stamps import CONFIRMATIONS
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

POLL_INTERVAL = 5.0  # the default
RATE_LIMIT = 20  # the default
LEARNT = (
    "new meetings show in last-modified windows: incremental cycles no longer read created windows"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _scrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The connector's metrics, as ``name{label=value,...}`` -> value (sorted labels)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def _polls(metrics: dict[str, float], event_id: int) -> float:
    return metrics.get(
        f"meetings_cdc_cycles_total{{event_id={event_id},outcome=ok,phase=incremental}}", 0.0
    )


def _sum(metrics: dict[str, float], prefix: str, needle: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix) and needle in k)


async def _settled(session: aiohttp.ClientSession, port: int, within: float) -> float:
    """Wait until the API clock estimate's uncertainty is down to a round trip (its probes
    then come once a minute); the uncertainty reached."""
    deadline = time.monotonic() + within
    uncertainty = math.inf
    while time.monotonic() < deadline:
        metrics = await _scrape(session, port)
        uncertainty = metrics.get("meetings_cdc_api_clock_uncertainty_seconds{}", math.inf)
        if uncertainty <= 0.03:
            break
        await asyncio.sleep(1)
    return uncertainty


async def _quiet_minutes(
    sim: SimulatorProcess,
    session: aiohttp.ClientSession,
    port: int,
    event_ids: Sequence[int],
    minutes: int,
    seconds: float,
) -> list[dict[str, float]]:
    """Per measured period: requests at the simulator, polls, 429s, fewest polls of an
    event, and the polls the period holds."""
    periods = []
    for _ in range(minutes):
        before_requests = await sim.requests()
        before = await _scrape(session, port)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        after_requests = await sim.requests()
        after = await _scrape(session, port)
        elapsed = time.monotonic() - started
        polls = [_polls(after, e) - _polls(before, e) for e in event_ids]
        prefix = "meetings_cdc_api_requests_total"
        periods.append(
            {
                "requests": after_requests["export"] - before_requests["export"],
                "created": after_requests["created"] - before_requests["created"],
                "rate_limited": after_requests["rate_limited"] - before_requests["rate_limited"],
                "connector_429": _sum(after, prefix, "status_class=429")
                - _sum(before, prefix, "status_class=429"),
                "polls": sum(polls),
                "fewest_polls": min(polls),
                "expected_polls": elapsed / POLL_INTERVAL,
                "seconds": elapsed,
            }
        )
        p = periods[-1]
        print(
            f"  {len(event_ids)} event(s), {elapsed:.0f} s: {p['requests']:.0f} requests "
            f"({p['created']:.0f} created windows), {p['polls']:.0f} polls "
            f"(fewest per event {p['fewest_polls']:.0f}), "
            f"{p['requests'] / max(1.0, p['polls']):.3f} per poll, "
            f"429s {p['rate_limited']:.0f}",
            flush=True,
        )
    return periods


async def measure(
    events: int,
    meetings_per_event: int,
    minutes: int,
    seconds: float = 60.0,
    *,
    stamped: bool = True,
    rate_limited: bool = False,
) -> list[dict[str, float]]:
    """Run a simulator and one connector (defaults but for its topics and metrics port),
    teach it, let its clock settle, then measure ``minutes`` quiet periods."""
    event_ids = list(range(1, events + 1))
    args = ["--meetings", str(events * meetings_per_event), "--seed", "4"]
    for e in event_ids:
        args += ["--event-id", str(e)]
    if not stamped:
        args.append("--no-modified-at-creation")
    name = unique_name("budget")
    port = _free_port()
    env = connector_env(
        "",
        1,
        name,
        MEETINGS_CDC_EVENT_IDS=",".join(map(str, event_ids)),
        MEETINGS_CDC_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND=str(RATE_LIMIT),
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="3600",
        MEETINGS_CDC_SNAPSHOT_MODE="no_data",
        MEETINGS_CDC_METRICS_PORT=str(port),
        MEETINGS_CDC_METRICS_HOST="127.0.0.1",
    )
    try:
        async with SimulatorProcess(args) as sim, aiohttp.ClientSession() as session:
            if rate_limited:
                await sim.set_faults(rate_limit_per_second=RATE_LIMIT)
            env["MEETINGS_CDC_API_BASE_URL"] = sim.base_url
            proc = await ConnectorProcess(env).start()
            try:
                await proc.mark("snapshot complete", within=300)
                await _all_streaming(session, port, event_ids, within=300)
                now = (await sim.get_clock())["now"]
                for i in range(CONFIRMATIONS):
                    await sim.create(
                        event_id=event_ids[i % events], start=now + 86_400, participants=[1, 2]
                    )
                if stamped:
                    await proc.mark(LEARNT, within=60)
                await asyncio.sleep(2 * POLL_INTERVAL)  # the creations' overlap is over
                uncertainty = await _settled(session, port, within=120)
                print(f"  clock uncertainty {uncertainty * 1000:.0f} ms", flush=True)
                return await _quiet_minutes(sim, session, port, event_ids, minutes, seconds)
            finally:
                await proc.stop()
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))


async def _all_streaming(
    session: aiohttp.ClientSession, port: int, event_ids: Sequence[int], within: float
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        metrics = await _scrape(session, port)
        if all(_polls(metrics, e) > 0 for e in event_ids):
            return
        await asyncio.sleep(1)
    raise RuntimeError("not every event polled within the time allowed")


def _per_poll(periods: list[dict[str, float]]) -> list[float]:
    return [p["requests"] / max(1.0, p["polls"]) for p in periods]


def report(
    quiet: list[dict[str, float]],
    created: list[dict[str, float]] | None,
    fifty: list[dict[str, float]],
    results: dict[str, Any],
) -> None:
    per_poll = _per_poll(quiet)
    results["requests_per_quiet_poll"] = round(statistics.median(per_poll), 3)
    results["requests_per_quiet_poll_spread"] = [round(min(per_poll), 3), round(max(per_poll), 3)]
    if created is not None:
        results["requests_per_poll_with_created"] = round(statistics.median(_per_poll(created)), 3)
    skipped = [max(0.0, math.floor(p["expected_polls"]) - 1 - p["fewest_polls"]) for p in fifty]
    rejected = sum(p["rate_limited"] + p["connector_429"] for p in fifty)
    results["budget_50_events_429s"] = int(rejected)
    results["budget_50_events_skipped_polls"] = int(sum(skipped))
    results["budget_50_events_requests_per_s"] = round(
        sum(p["requests"] for p in fifty) / sum(p["seconds"] for p in fifty), 2
    )
    results["budget_50_events_requests_per_poll"] = round(statistics.median(_per_poll(fifty)), 3)
    print(
        f"api budget: requests per quiet poll {results['requests_per_quiet_poll']} "
        f"(min {min(per_poll):.3f}, max {max(per_poll):.3f}, {len(per_poll)} periods; "
        f"with created windows {results.get('requests_per_poll_with_created', '-')}); "
        f"50 events: {results['budget_50_events_requests_per_s']} requests/s, "
        f"429s {results['budget_50_events_429s']}, skipped polls "
        f"{results['budget_50_events_skipped_polls']}",
        flush=True,
    )


async def measure_all(minutes: int, seconds: float, events: int, created: bool) -> tuple[Any, ...]:
    quiet = await measure(1, 200, minutes, seconds)
    with_created = await measure(1, 200, minutes, seconds, stamped=False) if created else None
    fifty = await measure(events, 20, max(1, minutes - 1), seconds, rate_limited=True)
    return quiet, with_created, fifty


def run(results: dict[str, Any], quick: bool = False) -> None:
    """``make bench`` hook: three minutes each (quick: one period of 20 s, no
    created-windows run)."""
    if quick:
        args = asyncio.run(measure_all(1, 20.0, 50, created=False))
    else:
        args = asyncio.run(measure_all(3, 60.0, 50, created=True))
    report(*args, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--events", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    report(*asyncio.run(measure_all(args.minutes, 60.0, args.events, created=True)), results)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
