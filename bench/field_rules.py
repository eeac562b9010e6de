"""What the field rules cost: ``cpu_us_per_row`` of a snapshot with three rules against none.

One simulator (``meetings-cdc simulate --meetings N``); real ``meetings-cdc run`` processes
snapshot it on fresh topics, in turns without rules and with
``participant.email=hash,participant.last_name=redact,notes=drop`` (ABAB, so load and clock
speed move both alike). CPU per export row is measured as ``bench/initial_export.py`` does:
from the "starting event" log line to "snapshot complete", read from /proc. Each run is
checked: one SNAPSHOT event per meeting, and with the rules no simulator email in them.

``field_rules_parse_extra_us_per_row`` is the same comparison for the row parser alone, in
this process, over the real page bytes (ABAB too): what masking adds where it happens.

    python -m bench.field_rules [--meetings N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from typing import Any

import aiohttp

from bench.common import delete_topics, fmt, record, summary, unique_name
from bench.connectors import connector_env, read_topic, topics_of
from connector.core.masking import Masker, parse_rules
from connector.source import export_page
from connector.source.rows import RowParser
from meetings_simulator.export import EXPORT_PATH
from tests.connector_process import ConnectorProcess
from tests.simulator_harness import SimulatorProcess

MEETINGS = 30_000
RUNS = 3
EVENT_ID = 1
RULES = "participant.email=hash,participant.last_name=redact,notes=drop"
KEY = "bench-field-hash-key-0123456789abcdef"


async def _snapshot_once(base_url: str, rows: int, meetings: int, rules: bool) -> float:
    """One snapshot by a connector process on fresh topics: its CPU us per export row."""
    name = unique_name("rules" if rules else "norules")
    extra = {"MEETINGS_CDC_FIELD_RULES": RULES, "MEETINGS_CDC_FIELD_HASH_KEY": KEY}
    try:
        env = connector_env(base_url, EVENT_ID, name, **(extra if rules else {}))
        proc = await ConnectorProcess(env).start()
        try:
            start = await proc.mark("starting event", within=120)
            done = await proc.mark("snapshot complete", within=1800)
        finally:
            await proc.stop()
        changes = await asyncio.to_thread(read_topic, f"{name}.changes", meetings)
        if len(changes) != meetings:
            raise RuntimeError(f"{len(changes)} committed change events, expected {meetings}")
        if rules and any(b".example" in (msg.value() or b"") for msg in changes):
            raise RuntimeError("an email in clear with the field rules on")
        return (done.cpu - start.cpu) / rows * 1e6
    finally:
        await asyncio.to_thread(delete_topics, topics_of(name))


async def _pages(base_url: str) -> list[bytes]:
    pages: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        page = 1
        while True:
            params = {"event_id": EVENT_ID, "per_page": 500, "page": page}
            async with session.get(base_url + EXPORT_PATH, params=params) as response:
                response.raise_for_status()
                pages.append(await response.read())
            if page >= json.loads(pages[-1])["last_page"]:
                return pages
            page += 1


def _parse_all(rows: list[list[Any]], parser: RowParser) -> float:
    gc.collect()
    started = time.process_time()
    parse = parser.parse
    for data in rows:
        for raw in data:
            parse(raw, EVENT_ID)  # the simulator's rows are all valid
    return time.process_time() - started


def _parse_cost(pages: list[bytes], rounds: int = 5) -> dict[str, Any]:
    """CPU us per row of parsing without and with the rules, fresh parsers, ABAB."""
    rows = [export_page.loads_json(body)["data"] for body in pages]
    count = sum(len(r) for r in rows)
    masker = Masker(parse_rules(RULES.split(",")), KEY.encode())
    _parse_all(rows, RowParser())
    _parse_all(rows, RowParser(masker=masker))
    plain: list[float] = []
    masked: list[float] = []
    for _ in range(rounds):  # fresh parsers and maskers: no cache carried between rounds
        plain.append(_parse_all(rows, RowParser()) / count * 1e6)
        fresh = Masker(masker.rules, KEY.encode())
        masked.append(_parse_all(rows, RowParser(masker=fresh)) / count * 1e6)
    return {"plain": summary(plain), "masked": summary(masked)}


async def measure(meetings: int = MEETINGS, runs: int = RUNS) -> dict[str, Any]:
    """``runs`` pairs of snapshots (no rules, then three rules), and the parser alone."""
    args = ["--meetings", str(meetings), "--event-id", str(EVENT_ID), "--seed", "1"]
    async with SimulatorProcess(args) as sim:
        rows = int((await sim.export_page(EVENT_ID, per_page=1))["total"])
        none: list[float] = []
        three: list[float] = []
        for i in range(runs):
            none.append(await _snapshot_once(sim.base_url, rows, meetings, rules=False))
            three.append(await _snapshot_once(sim.base_url, rows, meetings, rules=True))
            print(
                f"  field rules pair {i + 1}/{runs}: no rules {none[-1]:.1f}, three rules "
                f"{three[-1]:.1f} CPU us/row",
                flush=True,
            )
        parse = _parse_cost(await _pages(sim.base_url))
    ratios = [b / a for a, b in zip(none, three, strict=True)]
    return {
        "rows": rows,
        "none": summary(none),
        "three": summary(three),
        "ratio": summary(ratios),
        "parse": parse,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    """Add the figures to ``results`` and print them."""
    m = asyncio.run(measure(meetings=5_000 if quick else MEETINGS, runs=2 if quick else RUNS))
    record(results, "field_rules_none_cpu_us_per_row", m["none"]["runs"], digits=1)
    record(results, "field_rules_three_cpu_us_per_row", m["three"]["runs"], digits=1)
    record(results, "field_rules_cpu_ratio", m["ratio"]["runs"], digits=3)
    plain, masked = m["parse"]["plain"]["median"], m["parse"]["masked"]["median"]
    results["field_rules_parse_extra_us_per_row"] = round(masked - plain, 2)
    print(
        f"field rules ({m['rows']:,} rows): no rules {fmt(m['none'], ' CPU us/row', 1)}; "
        f"three rules {fmt(m['three'], ' CPU us/row', 1)}; ratio "
        f"{statistics.median(m['ratio']['runs']):.3f}; the parser alone {plain:.2f} -> "
        f"{masked:.2f} us/row",
        flush=True,
    )


def main() -> None:
    """``python -m bench.field_rules``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=MEETINGS)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.meetings, args.runs)), indent=2))


if __name__ == "__main__":
    main()
