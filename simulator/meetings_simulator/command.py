"""``meetings-cdc simulate``: run the ExpoPlatform meetings export API simulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import ConfigError
from meetings_simulator.app import SimulatorConfig, SimulatorServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` flags."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port, 0 = any free (default %(default)s)"
    )
    parser.add_argument(
        "--event-id",
        type=int,
        action="append",
        dest="event_ids",
        metavar="ID",
        help="an event to seed and churn; repeatable (default 1)",
    )
    parser.add_argument(
        "--meetings",
        type=int,
        default=0,
        help="meetings seeded at start, spread over the events (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default %(default)s)"
    )
    parser.add_argument(
        "--churn-per-second",
        type=float,
        default=0.0,
        metavar="X",
        help="background changes per second: creates, reschedules, confirms, cancels, ... "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--clock-skew-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="the API clock runs S seconds ahead (negative: behind) of this machine's "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--no-modified-at-creation",
        action="store_false",
        dest="modified_at_creation",
        help="behave like an API that does not set the last-modified time at creation: a "
        "new meeting matches no last_modified_* filter until its first change (its rows "
        "still show updated_at = created_at; default: creation sets it)",
    )
    parser.add_argument(
        "--omit-total",
        action="store_true",
        help="export pages leave out 'total', like an API that does not count rows (the "
        "connector then finds deletes by full reconciliation only)",
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="the events' time zone for date-times (IANA name; default %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Validate the flags; raise :class:`ConfigError` naming the flag."""
    if args.meetings < 0:
        raise ConfigError(f"--meetings must be >= 0, got {args.meetings}")
    if args.churn_per_second < 0:
        raise ConfigError(f"--churn-per-second must be >= 0, got {args.churn_per_second}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone: unknown time zone {args.timezone!r}") from None
    return SimulatorConfig(
        event_ids=tuple(dict.fromkeys(args.event_ids or [1])),
        meetings=args.meetings,
        seed=args.seed,
        churn_per_second=args.churn_per_second,
        clock_skew_seconds=args.clock_skew_seconds,
        timezone=args.timezone,
        modified_at_creation=args.modified_at_creation,
        omit_total=args.omit_total,
    )


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    started = time.perf_counter()
    async with SimulatorServer(config, host=host, port=port) as server:
        total = sum(server.store.count(e) for e in config.event_ids)
        print(
            f"simulator listening on {server.base_url} "
            f"(events {','.join(map(str, config.event_ids))}, {total} meetings, "
            f"seeded in {time.perf_counter() - started:.1f}s)",
            flush=True,
        )
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""
    config = config_from_args(args)
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(
            f"meetings-cdc simulate: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0
