"""Alert rules and dashboard: promtool checks and unit tests, and only metrics that exist.

promtool comes from Debian's ``prometheus`` package (``.ci/install-system-packages``); these
tests FAIL without it rather than skip, so CI can never pass them silently.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from connector.ops.metrics import Metrics

from ._monitoring import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    RUNBOOK,
    alert_rules,
    dashboard,
    metric_names,
    need_binary,
    panel_queries,
    substitute,
)

# The alerts issues 6 and 35 ask for, by what they watch.
REQUIRED_ALERTS = {
    "MeetingsCdcEventUnowned",
    "MeetingsCdcDown",
    "MeetingsCdcAbsent",
    "MeetingsCdcStalled",
    "MeetingsCdcSourceLagHigh",
    "MeetingsCdcApiErrorRatioHigh",
    "MeetingsCdcApiRateLimited",
    "MeetingsCdcDeadLetters",
    "MeetingsCdcTransactionsAborted",
    "MeetingsCdcProducerFenced",
    # issue 35: the correctness signal, the delete check, end-to-end latency
    "MeetingsCdcReconcileCaughtChanges",
    "MeetingsCdcHeartbeatMissing",  # issue 32: heartbeats
    "MeetingsCdcDeleteCheckFailing",
    "MeetingsCdcDeleteCheckUnavailable",
    "MeetingsCdcChangeLatencyHigh",
}
# Series that are not ours but may be queried: Prometheus' own, and the standard collectors
# Metrics registers.
FOREIGN = {"up"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def exposed_series() -> set[str]:
    """Every series name a Metrics instance can expose (with histogram/counter suffixes)."""
    metrics = Metrics(CollectorRegistry())
    names: set[str] = set()
    for family in metrics.registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


def series_read(expr: str) -> set[str]:
    """Our metrics an expression reads, and Prometheus' ``up``."""
    return metric_names(expr) | ({"up"} if re.search(r"\bup\{", expr) else set())


# --- promtool ----------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS_CONFIG.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query, as a recording rule (no server needed)."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(panel_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --- the alerts --------------------------------------------------------------------------


def test_the_required_alerts_exist() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_is_documented(rule: dict[str, object]) -> None:
    labels = rule["labels"]
    annotations = rule["annotations"]
    assert isinstance(labels, dict)
    assert isinstance(annotations, dict)
    assert labels["severity"] in {"critical", "warning"}
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    page, _, anchor = str(annotations["runbook_url"]).partition("#")
    assert page.endswith("/deploy/monitoring/RUNBOOK.md"), annotations["runbook_url"]
    assert anchor == str(rule["alert"]).lower()
    headings = {
        h.strip().lower() for h in re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    assert anchor in headings, f"RUNBOOK.md has no section for {rule['alert']}"


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    assert fired == REQUIRED_ALERTS, f"never shown firing: {REQUIRED_ALERTS - fired}"
    assert silent == REQUIRED_ALERTS, f"never shown silent: {REQUIRED_ALERTS - silent}"


def test_alerts_use_only_metrics_that_exist() -> None:
    exposed = exposed_series()
    for rule in alert_rules():
        used = series_read(str(rule["expr"]))
        assert used, f"{rule['alert']} reads no metric"
        assert used <= exposed | FOREIGN, f"{rule['alert']}: unknown {used - exposed}"


def test_stalled_alert_is_a_multiple_of_the_poll_interval() -> None:
    [stalled] = [r for r in alert_rules() if r["alert"] == "MeetingsCdcStalled"]
    expr = str(stalled["expr"])
    assert "time() - meetings_cdc_last_successful_cycle_timestamp_seconds" in expr
    assert "meetings_cdc_poll_interval_seconds" in expr


# --- the dashboard -----------------------------------------------------------------------


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "meetings-cdc"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "job", "instance", "event_id"}
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_rows_cover_every_topic() -> None:
    rows = {p["title"] for p in dashboard()["panels"] if p["type"] == "row"}
    assert rows == {
        "Overview",
        "Throughput",
        "Lag and latency",
        "API health",
        "Kafka transactions",
        "State and restore",
        "Dead letters, reconciliation and windows",
        "Replicas and ownership",
        "Delete checks",
        "Signals and heartbeats",
    }


def test_dashboard_uses_only_metrics_that_exist_and_shows_every_metric() -> None:
    exposed = exposed_series()
    used: set[str] = set()
    for title, expr in panel_queries():
        names = series_read(expr)
        assert names, f"panel {title!r} reads no metric"
        unknown = names - exposed - FOREIGN
        assert not unknown, f"panel {title!r}: unknown {unknown}"
        used |= names
    for variable in dashboard()["templating"]["list"]:
        used |= metric_names(str(variable.get("definition", "")))
    ours = {n for n in exposed if n.startswith("meetings_cdc_") and not n.endswith("_created")}
    # A histogram is shown through its buckets; its _sum and _count need no panel.
    ours = {n for n in ours if not n.endswith(("_sum", "_count"))}
    assert not ours - used, f"metrics without a panel: {sorted(ours - used)}"
