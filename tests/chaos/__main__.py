"""``python -m tests.chaos [--profile long|short] [--only NAME ...]``: run chaos scenarios
against a real broker, print a summary table, exit 1 on any violation.

The broker is ``MEETINGS_CDC_TEST_BOOTSTRAP`` (``make chaos`` starts one on 19092 when none
runs); the broker-restart scenario uses its own broker on ``MEETINGS_CDC_CHAOS_KAFKA_PORT``
(default 29192). The registry scenarios use ``MEETINGS_CDC_TEST_REGISTRY_URL`` when set, else
start an Apicurio Registry on ``MEETINGS_CDC_CHAOS_REGISTRY_PORT`` (default 28181) through
``deploy/local/registry.sh`` and stop it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from tests.chaos.runner import Result, run_scenario
from tests.chaos.scenarios import PROFILES
from tests.registry_process import LocalRegistry

COLUMNS = (
    ("scenario", 22),
    ("kills", 5),
    ("exits", 5),
    ("outages", 7),
    ("published", 9),
    ("must-see", 8),
    ("lost", 4),
    ("dup", 3),
    ("miscls", 6),
    ("phantom", 7),
    ("reconciled", 10),
    ("back-to-back", 12),
    ("dlq/bad rows", 12),
    ("faults injected", 40),
    ("seconds", 7),
    ("result", 6),
)


def row(result: Result) -> list[str]:
    """One table row."""
    v = result.verdict
    injected = ", ".join(f"{k}={n}" for k, n in sorted(result.injected.items()) if n) or "-"
    return [
        result.scenario,
        str(result.kills),
        str(len(result.exits)),
        str(result.outages),
        str(v.published),
        str(v.must_observe),
        str(len(v.lost)),
        str(len(v.duplicated)),
        str(len(v.misclassified)),
        str(len(v.phantom)),
        str(result.reconciled),
        str(result.back_to_back),
        f"{result.dead_letters}/{result.bad_rows}",
        injected,
        f"{result.seconds:.0f}",
        "ok" if result.ok else "FAIL",
    ]


def table(results: list[Result]) -> str:
    """The summary table, markdown-compatible."""
    widths = [max(w, *(len(row(r)[i]) for r in results)) for i, (_, w) in enumerate(COLUMNS)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line([name for name, _ in COLUMNS]), rule, *(line(row(r)) for r in results)])


def main() -> int:
    """Run the chosen scenarios one after the other; print the table."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    args = parser.parse_args()
    scenarios = [s for s in PROFILES[args.profile] if args.only is None or s.name in args.only]
    if not scenarios:
        parser.error(f"no scenario named {args.only} in profile {args.profile}")
    bootstrap = os.environ.get("MEETINGS_CDC_TEST_BOOTSTRAP", "127.0.0.1:19092")
    started = time.monotonic()
    results: list[Result] = []

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    registry_url = os.environ.get("MEETINGS_CDC_TEST_REGISTRY_URL")
    own_registry: LocalRegistry | None = None
    if registry_url is None and any(s.registry for s in scenarios):
        port = int(os.environ.get("MEETINGS_CDC_CHAOS_REGISTRY_PORT", "28181"))
        own_registry = LocalRegistry(port, management_port=port + 1)
        own_registry.up()
        registry_url = own_registry.url
    try:
        for scenario in scenarios:
            say(f"{scenario.name}: start")
            run = run_scenario(scenario, bootstrap, registry_url=registry_url, say=say)
            result = asyncio.run(run)
            results.append(result)
            say(result.report())
    finally:
        if own_registry is not None:
            own_registry.down()
    print(table(results))
    kills = sum(r.kills for r in results)
    failed = [r.scenario for r in results if not r.ok]
    print(
        f"\n{len(results)} scenarios, {kills} kills, "
        f"{sum(r.verdict.published for r in results)} events published, "
        f"{time.monotonic() - started:.0f} s: "
        + (f"FAILED: {', '.join(failed)}" if failed else "no violation")
    )
    for result in results:
        if not result.ok:
            print("\n" + result.report())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
