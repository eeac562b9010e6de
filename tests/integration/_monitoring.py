"""What the monitoring tests share: the artefacts of deploy/monitoring and their queries."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
ALERTS_TEST = MONITORING / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "meetings-cdc.json"
RUNBOOK = MONITORING / "RUNBOOK.md"

INSTALL_HINT = "run .ci/install-system-packages (Debian's prometheus package)"


def need_binary(name: str) -> str:
    """Path of ``name``; FAILS the test (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, raw expr) of every target of every panel of the dashboard."""
    queries: list[tuple[str, str]] = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def substitute(expr: str, *, job: str = ".*meetings-cdc.*", rate_interval: str = "1m") -> str:
    """A dashboard expression with Grafana's variables replaced as Grafana would."""
    replacements = {
        "$__rate_interval": rate_interval,
        "$__interval": rate_interval,
        "$job": job,
        "$instance": ".*",
        "$event_id": ".*",
    }
    for variable, value in replacements.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


_METRIC = re.compile(r"\b((?:meetings_cdc|process|python)_[a-z0-9_]+)\b")


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads (ours, process_* and python_*)."""
    return set(_METRIC.findall(expr))
