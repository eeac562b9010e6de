"""The benchmark harness itself runs and writes its JSON (never a speed assertion)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import hand_code as bench_hand_code

ROOT = Path(__file__).resolve().parents[2]


def quick_bench(
    only: str, bootstrap: str, tmp_path: Path, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m bench --quick --only ONLY``: the finished process and its JSON results."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "MEETINGS_CDC_BENCH_BOOTSTRAP": bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", only, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done, json.loads(out.read_text())


def test_quick_initial_export_writes_its_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    done, results = quick_bench("initial_export", kafka_bootstrap, tmp_path, timeout=240)
    for key in (
        "initial_export_rows_per_s",
        "cpu_us_per_row",
        "raw_produce_rows_per_s",
        "connector_vs_raw_slowdown",
    ):
        assert results[key] > 0, key
        assert key == "connector_vs_raw_slowdown" or len(results[f"{key}_spread"]) == 2
    # at least one request per full page, and the snapshot near that minimum (issue 15)
    assert 1.0 <= results["snapshot_requests_vs_minimum"] <= 1.05
    assert results["meta"]["quick"] is True
    assert results["meta"]["benchmarks"] == ["initial_export"]
    assert "initial_export_rows_per_s" in done.stdout  # the table


def test_quick_delete_check_bench_writes_its_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    done, results = quick_bench("delete_check", kafka_bootstrap, tmp_path, timeout=300)
    for key in (
        "delete_latency_p99_s",
        "delete_check_requests_per_delete",
        "delete_check_empty_requests",
    ):
        assert results[key] > 0, key
        assert len(results[f"{key}_spread"]) == 2
    assert "delete_latency_p99_s" in done.stdout  # the table


def test_quick_hand_code_bench_writes_its_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    done, results = quick_bench("hand_code", kafka_bootstrap, tmp_path, timeout=300)
    assert results["hand_code_pipeline_cpu_us_per_row"] > 0
    for variant in bench_hand_code.VARIANTS:
        assert isinstance(results[f"hand_code_{variant}_cost_pct"], float), variant
    assert "hand_code_careful_rows_cost_pct" in done.stdout  # the table
