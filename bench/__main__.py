"""``make bench``: every benchmark against the real local broker; a table and a JSON file.

    python -m bench [--quick] [--only NAME ...] [--out FILE]

Each benchmark is a module of this package with ``run(results, quick)``: it measures
(medians of several runs, with min-max spread), prints its own lines, and adds its figures
to ``results``. ``--quick`` runs small versions (minutes, not figures to quote);
``--only`` picks benchmarks by name. The broker is ``$MEETINGS_CDC_BENCH_BOOTSTRAP``
(default 127.0.0.1:19092).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    api_budget,
    delete_check,
    failover,
    field_rules,
    hand_code,
    initial_export,
    latency,
    latency_during_reconcile,
    latency_during_resnapshot,
    state_scale,
)
from bench.common import bootstrap

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _simulator(results: dict[str, Any], quick: bool) -> None:
    from bench import simulator

    if not quick:
        simulator.run(results)
        return
    m = asyncio.run(simulator.measure(meetings=10_000, runs=2))
    results["simulator_export_rows_per_s"] = round(m["median"])
    results["simulator_export_rows_per_s_spread"] = [round(m["min"]), round(m["max"])]


def _export(results: dict[str, Any], quick: bool) -> None:
    try:
        from bench import export
    except ImportError:  # the source side's benchmark is not there (yet)
        print("export: bench/export.py not present, skipped", flush=True)
        return
    if not quick:
        export.run(results)
        return
    m = asyncio.run(export.measure(meetings=10_000, runs=2))
    results["export_rows_per_s"] = round(m["rows_per_s"]["median"])
    results["export_rows_per_s_spread"] = [
        round(m["rows_per_s"]["min"]),
        round(m["rows_per_s"]["max"]),
    ]
    results["export_cpu_us_per_row"] = round(m["cpu_us_per_row"]["median"], 2)


BENCHMARKS: dict[str, Callable[[dict[str, Any], bool], None]] = {
    "simulator": _simulator,
    "export": _export,
    "initial_export": lambda r, q: initial_export.run(r, quick=q),
    "latency": lambda r, q: latency.run(r, quick=q),
    "latency_during_reconcile": lambda r, q: latency_during_reconcile.run(r, quick=q),
    "latency_during_resnapshot": lambda r, q: latency_during_resnapshot.run(r, quick=q),
    "state": lambda r, q: state_scale.run(r, quick=q),
    "failover": lambda r, q: failover.run(r, quick=q),
    "api_budget": lambda r, q: api_budget.run(r, quick=q),
    "delete_check": lambda r, q: delete_check.run(r, quick=q),
    "hand_code": lambda r, q: hand_code.run(r, quick=q),
    "field_rules": lambda r, q: field_rules.run(r, quick=q),
}

# figure: (unit, target, True when higher is better). Targets of issue 8 (and 3 for the
# simulator); ``connector_vs_raw_slowdown`` is raw_produce / initial_export.
TARGETS: dict[str, tuple[str, float | None, bool]] = {
    "simulator_export_rows_per_s": ("rows/s", 50_000, True),
    "export_rows_per_s": ("rows/s", None, True),
    "export_cpu_us_per_row": ("us", None, False),
    "initial_export_rows_per_s": ("rows/s", 30_000, True),
    "cpu_us_per_row": ("us", None, False),
    "raw_produce_rows_per_s": ("rows/s", None, True),
    "connector_vs_raw_slowdown": ("x", None, False),  # a diagnostic since issue 17
    "bare_copy_rows_per_s": ("rows/s", None, True),
    "bare_copy_cpu_us_per_row": ("us", None, False),
    # issue 15: snapshot requests against ceil(rows / per_page)
    "snapshot_requests_vs_minimum": ("x", 1.05, False),
    "connector_vs_bare_cpu": ("x", 1.2, False),
    "connector_vs_bare_wall": ("x", 1.0, False),
    "incremental_latency_p50_ms": ("ms", None, False),
    "incremental_latency_p99_ms": ("ms", 2_000, False),  # poll interval 1 s + 1 s
    "incremental_latency_quiet_p99_ms": ("ms", None, False),
    # issue 14: within 250 ms of the quiet p99 measured in the same run
    "incremental_latency_during_reconcile_p99_ms": ("ms", None, False),
    "incremental_latency_during_reconcile_minus_quiet_ms": ("ms", 250, False),
    # issue 32: the same during a re-snapshot of the whole event
    "incremental_latency_during_resnapshot_p99_ms": ("ms", None, False),
    "incremental_latency_during_resnapshot_minus_quiet_ms": ("ms", 250, False),
    "resnapshot_meetings_per_s": ("meetings/s", None, True),
    "incremental_cycle_ms_1k": ("ms", None, False),
    "incremental_cycle_ms_1m": ("ms", None, False),
    "state_restore_meetings_per_s": ("meetings/s", 100_000, True),
    # issue 16: session timeout (10 s) + restore + 2 s
    "failover_seconds": ("s", 12 + 1, False),
    "scale_up_pause_seconds": ("s", None, False),
    "scale_up_quiet_gap_seconds": ("s", None, False),
    # a rollout step must not wait for the session timeout (10 s) of a member that left
    "rolling_update_gap_seconds": ("s", 10, False),
    "rolling_update_gap_static_seconds": ("s", None, False),
    # issue 30 item 3: SIGKILL and an immediate restart with the same instance id, 20,000
    # meetings restored; without an instance id the dead member's session timeout comes first
    "crash_restart_gap_seconds": ("s", 3, False),
    "crash_restart_gap_dynamic_seconds": ("s", None, False),
    "rss_bytes_per_meeting": ("bytes", 500, False),
    # issue 15: per event, averaged over a minute, clock probes included (default settings)
    "requests_per_quiet_poll": ("requests", 1.2, False),
    "requests_per_poll_with_created": ("requests", None, False),
    # one process, 50 events, default poll interval and rate limit (20/s)
    "budget_50_events_429s": ("429s", 0, False),
    "budget_50_events_skipped_polls": ("polls", 0, False),
    "budget_50_events_requests_per_s": ("requests/s", None, False),
    "budget_50_events_requests_per_poll": ("requests", None, False),
    # issue 15: check interval (15 s) + one poll (1 s); an empty check <= 2 requests
    "delete_latency_p99_s": ("s", delete_check.INTERVAL_S + delete_check.POLL_S, False),
    "delete_check_requests_per_delete": ("requests", None, False),
    "delete_check_empty_requests": ("requests", 2, False),
    # issue 14: what removing each hand-written piece costs (a piece stays above 10 %)
    "hand_code_pipeline_cpu_us_per_row": ("us", None, False),
    # issue 33: a snapshot's CPU per row with three field rules against none (ABAB)
    "field_rules_none_cpu_us_per_row": ("us", None, False),
    "field_rules_three_cpu_us_per_row": ("us", None, False),
    "field_rules_cpu_ratio": ("x", None, False),
    "field_rules_parse_extra_us_per_row": ("us", None, False),
    "hand_code_fastavro_records_cost_pct": ("%", 10, True),
    "hand_code_fastavro_bodies_cost_pct": ("%", 10, True),
    "hand_code_careful_rows_cost_pct": ("%", 10, True),
    "hand_code_no_encoder_caches_cost_pct": ("%", 10, True),
    "hand_code_no_date_caches_cost_pct": ("%", 10, True),
    "hand_code_stdlib_json_cost_pct": ("%", None, True),
}


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
            model = next(names, "")
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }


def _table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':<32} {'median':>14} {'spread (min-max)':>24} {'target':>12}  ok"]
    for key, (unit, target, higher) in TARGETS.items():
        if key not in results:
            continue
        value = results[key]
        spread = results.get(f"{key}_spread")
        spread_text = f"{spread[0]:,}-{spread[1]:,}" if spread else ""
        if target is None:
            target_text, ok = "", ""
        else:
            target_text = f"{'>=' if higher else '<='} {target:,g}"
            ok = "yes" if (value >= target if higher else value <= target) else "NO"
        lines.append(f"{key:<32} {value:>14,} {spread_text:>24} {target_text:>12}  {ok}  {unit}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast versions")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file (default %(default)s)")
    args = parser.parse_args(argv)
    chosen = args.only or list(BENCHMARKS)
    results: dict[str, Any] = {}
    meta: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "benchmarks": chosen,
        "bootstrap": bootstrap(),
        "machine": _machine(),
        "seconds": {},
    }
    print(
        f"bench against {bootstrap()}: {', '.join(chosen)}{' (quick)' if args.quick else ''}",
        flush=True,
    )
    for name in chosen:
        started = time.monotonic()
        BENCHMARKS[name](results, args.quick)
        meta["seconds"][name] = round(time.monotonic() - started, 1)
    runs = results.pop("_runs", {})
    out = {**results, "runs": runs, "meta": meta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print("\n" + _table(results) + f"\n\nwritten to {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
