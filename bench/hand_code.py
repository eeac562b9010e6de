"""What each hand-optimised piece saves: the snapshot's per-row CPU with it and without it.

Issue 14 keeps a hand-written encoder, parser or cache only where removing it costs more
than 10 % of ``cpu_us_per_row``. This bench pages once through a simulator's export (the
real page bytes), then runs the connector's per-row CPU work in this process, again and
again: JSON decode, row parsing, assembly into meetings, ``Batch.stage`` (classification,
the change event and the state record, Avro-encoded) and applying the staged state. Each
variant replaces one hand-written piece with the plain alternative and is timed in turns
with the connector as it is (ABAB), so load and clock speed move both alike:

- ``fastavro_records``: every key and value by fastavro (no ``FastEncoder``);
- ``fastavro_bodies``: ``FastEncoder`` kept, the ``Meeting`` body by fastavro;
- ``careful_rows``: every row by the row parser's careful path (no fast path: no cached
  row shapes, no interned extras, no day/hour tables);
- ``no_encoder_caches``: the hand encoder without its caches of key strings, longs and
  extra maps (capacity 0: each miss clears its cache);
- ``no_date_caches``: date-time texts and days parsed every time (caches that keep nothing);
- ``stdlib_json``: ``json.loads`` instead of orjson (a library, listed for scale).

A variant's ``cost`` is its extra CPU per row over the connector's, as a share of the
connector's in-process per-row CPU (``pipeline_cpu_us_per_row``). That pipeline is a part
of what ``cpu_us_per_row`` counts (which adds HTTP, the reader's checks, producing), so a
cost below 10 % here is below 10 % of ``cpu_us_per_row`` too.

    python -m bench.hand_code [--meetings N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any
from unittest.mock import patch

import aiohttp

from connector.core.changes import ReadKind
from connector.core.kinds import WindowKind
from connector.serde import Serdes, SingleObjectFraming
from connector.serde.bodies import MeetingBodies
from connector.serde.fastpath import MeetingEncoder
from connector.source import export_page
from connector.source.assembly import assemble
from connector.source.rows import RowError, RowParser
from connector.source.windows import Window
from connector.state.store import EventState
from connector.sync.batch import Batch, Destination
from meetings_simulator.export import EXPORT_PATH
from tests.simulator_harness import SimulatorProcess

MEETINGS = 20_000
PER_PAGE = 500
ROUNDS = 5
EVENT_ID = 1
WINDOW = Window(WindowKind.CREATED, 0, 2**31)
DESTINATION = Destination(EVENT_ID, 0, "changes", "state", "dlq", "hand-code-bench", 6)


async def _pages(meetings: int) -> list[bytes]:
    """Every page of the export of a fresh simulator, as the API sent it."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    pages: list[bytes] = []
    async with SimulatorProcess(args) as sim, aiohttp.ClientSession() as session:
        page = 1
        while True:
            params = {"event_id": EVENT_ID, "per_page": PER_PAGE, "page": page}
            async with session.get(sim.base_url + EXPORT_PATH, params=params) as response:
                response.raise_for_status()
                pages.append(await response.read())
            if page >= json.loads(pages[-1])["last_page"]:
                return pages
            page += 1


def _snapshot(pages: list[bytes], serdes: Serdes, parser: RowParser) -> tuple[int, float]:
    """The per-row work of a snapshot of ``pages`` into an empty state: (rows, CPU s)."""
    state = EventState(EVENT_ID)
    rows = 0
    gc.collect()
    started = time.process_time()
    for body in pages:
        data = export_page.loads_json(body)["data"]
        parsed, errors = [], []
        for raw in data:
            try:
                parsed.append(parser.parse(raw, EVENT_ID, WINDOW))
            except RowError as error:
                errors.append(error)
        rows += len(data)
        batch = Batch.start(DESTINATION, state, serdes, time.time)
        for meeting in assemble(parsed, errors).meetings:
            batch.stage(meeting, WINDOW, kind=ReadKind.SNAPSHOT, snapshot=True)
        state.apply(batch.staging)
    return rows, time.process_time() - started


def _bodies(serdes: Serdes) -> MeetingBodies:
    assert serdes._fast is not None
    return serdes._fast.bodies


class _Forgetful(dict[Any, Any]):
    """A cache that keeps nothing."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _fastavro_records(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    return patch.object(serdes, "_fast", None)


def _fastavro_bodies(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    return patch.object(_bodies(serdes), "_hand", None)


def _careful_rows(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    return patch.object(parser, "parse", parser._parse_careful)


def _no_encoder_caches(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    encoder = MeetingEncoder(string_capacity=0, map_capacity=0)
    return patch.object(_bodies(serdes), "_hand", encoder.encode)


def _no_date_caches(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    stack = ExitStack()
    times = _Forgetful()  # the parser's hot path holds the DateTimes' own dict
    stack.enter_context(patch.object(parser._dates, "times", times))
    stack.enter_context(patch.object(parser, "_times", times))
    stack.enter_context(patch.object(parser._dates, "_days", _Forgetful()))
    return stack


def _stdlib_json(serdes: Serdes, parser: RowParser) -> AbstractContextManager[Any]:
    return patch.object(export_page, "loads_json", json.loads)


Variant = Callable[[Serdes, RowParser], AbstractContextManager[Any]]
VARIANTS: dict[str, Variant] = {
    "fastavro_records": _fastavro_records,
    "fastavro_bodies": _fastavro_bodies,
    "careful_rows": _careful_rows,
    "no_encoder_caches": _no_encoder_caches,
    "no_date_caches": _no_date_caches,
    "stdlib_json": _stdlib_json,
}


def measure(meetings: int = MEETINGS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Per-row CPU of the connector's in-process work, and what each variant adds."""
    pages = asyncio.run(_pages(meetings))
    serdes = Serdes(SingleObjectFraming())
    _snapshot(pages, serdes, RowParser())  # warm code paths once
    base: list[float] = []
    ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rows = 0
    for _ in range(rounds):
        for name, variant in VARIANTS.items():
            rows, cpu = _snapshot(pages, serdes, RowParser())
            parser = RowParser()
            with variant(serdes, parser):
                _, other = _snapshot(pages, serdes, parser)
            base.append(cpu / rows * 1e6)
            ratios[name].append(other / cpu)
    pipeline = statistics.median(base)
    return {
        "rows": rows,
        "pipeline_cpu_us_per_row": pipeline,
        "variants": {
            name: {
                "cost_pct": (statistics.median(r) - 1) * 100,
                "spread_pct": [(min(r) - 1) * 100, (max(r) - 1) * 100],
                "extra_us_per_row": (statistics.median(r) - 1) * pipeline,
            }
            for name, r in ratios.items()
        },
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    """Add the figures to ``results`` and print them."""
    m = measure(meetings=5_000 if quick else MEETINGS, rounds=2 if quick else ROUNDS)
    results["hand_code_pipeline_cpu_us_per_row"] = round(m["pipeline_cpu_us_per_row"], 2)
    print(
        f"hand_code: {m['rows']:,} rows, connector's in-process work "
        f"{m['pipeline_cpu_us_per_row']:.2f} us/row; without each piece:",
        flush=True,
    )
    for name, v in m["variants"].items():
        results[f"hand_code_{name}_cost_pct"] = round(v["cost_pct"], 1)
        low, high = v["spread_pct"]
        print(
            f"  {name:<18} +{v['cost_pct']:5.1f} % ({low:+.1f}..{high:+.1f}), "
            f"+{v['extra_us_per_row']:.2f} us/row",
            flush=True,
        )


def main() -> None:
    """``python -m bench.hand_code``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    m = measure(args.meetings, args.rounds)
    print(json.dumps(m, indent=2))


if __name__ == "__main__":
    main()
