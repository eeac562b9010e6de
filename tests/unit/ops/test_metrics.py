"""The metric set follows Prometheus conventions and never carries unbounded labels."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector import __version__
from connector.ops.labels import StatusClass
from connector.ops.metrics import Metrics

# Every label any metric may carry: all bounded by configuration or by an enum.
BOUNDED_LABELS = {"event_id", "change_type", "window_kind", "outcome", "status_class", "phase"}
BOUNDED_LABELS |= {"reason"}  # retry reasons: a fixed set chosen by the client
BOUNDED_LABELS |= {"change"}  # rebalance changes: assigned, revoked, lost
BOUNDED_LABELS |= {"request"}  # delete check requests: connector.delete_check.Ask
BOUNDED_LABELS |= {"kind", "status"}  # signals: SignalKind or "signal", NotificationStatus
BOUNDED_LABELS |= {"state"}  # delete check state: labels.DeleteCheckState
FORBIDDEN_LABELS = {"meeting_id", "account_id", "participant_id", "url", "error", "message"}
FOREIGN_PREFIXES = ("process_", "python_")  # the standard collectors, on our registry


def families(metrics: Metrics) -> dict[str, object]:
    return {f.name: f for f in metrics.registry.collect()}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_every_name_has_the_prefix_and_counters_end_in_total(metrics: Metrics) -> None:
    metrics.prime([1], poll_interval_seconds=5, now=0)
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        if family.name.startswith(FOREIGN_PREFIXES):
            continue
        assert family.name.startswith("meetings_cdc_"), family.name
        if family.type == "counter" and family.samples:
            assert any(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_units_are_base_units(metrics: Metrics) -> None:
    for family in metrics.registry.collect():
        for unit in ("_ms", "_milliseconds", "_minutes", "_kb", "_mb", "_kilobytes"):
            assert unit not in family.name, family.name


def test_labels_are_bounded(metrics: Metrics) -> None:
    declared = _declared_labels(metrics)
    assert "events_published" in declared
    for name, labels in declared.items():
        assert not labels & FORBIDDEN_LABELS, name
        assert labels <= BOUNDED_LABELS, name


def _declared_labels(metrics: Metrics) -> dict[str, set[str]]:
    declared: dict[str, set[str]] = {}
    for name, value in vars(metrics).items():
        label_names = getattr(value, "_labelnames", None)
        if label_names is not None:
            declared[name] = set(label_names)
    return declared


def test_info_metric_carries_the_version(metrics: Metrics) -> None:
    assert metrics.registry.get_sample_value("meetings_cdc_build_info", {"version": __version__})


def test_stable_attribute_names() -> None:
    """Other modules call these attributes: renaming one is a breaking change."""
    metrics = Metrics()
    for name in (
        "api_requests",
        "api_request_duration",
        "api_retries",
        "api_rate_limited_seconds",
        "rows_fetched",
        "pages_fetched",
        "bytes_fetched",
        "window_splits",
        "same_second_ties",
        "window_rereads",
        "dead_letters",
        "events_published",
        "reconcile_caught",
        "transactions",
        "producer_fenced",
        "cycles",
        "cycle_duration",
        "last_success",
        "source_lag",
        "end_to_end_latency",
        "tracked_meetings",
        "state_restore_duration",
        "state_restore_records",
        "api_clock_offset",
        "api_clock_uncertainty",
        "state_bytes",
        "poll_interval",
        "watermark",
        "build_info",
        "meetings_withheld",
        "delete_check_state",
    ):
        assert hasattr(metrics, name), name


def test_instances_are_independent_and_never_touch_the_global_registry() -> None:
    before = set(REGISTRY._names_to_collectors)
    first, second = Metrics(), Metrics(CollectorRegistry())
    first.rows_fetched.labels(event_id="1", window_kind="modified").inc(5)
    assert set(REGISTRY._names_to_collectors) == before
    labels = {"event_id": "1", "window_kind": "modified"}
    assert first.registry.get_sample_value("meetings_cdc_rows_fetched_total", labels) == 5
    assert second.registry.get_sample_value("meetings_cdc_rows_fetched_total", labels) is None


# The label values the README's metric table and the dashboards name, spelled out: the
# enums they come from may grow, never lose or rename one of these.
DOCUMENTED = {
    "change_type": {"SNAPSHOT", "CREATED", "RESCHEDULED", "CONFIRMED", "CANCELLED", "DECLINED"}
    | {"PARTICIPANTS_CHANGED", "UPDATED", "DELETED"},
    "window_kind": {"created", "modified"},
    "phase": {"snapshot", "incremental", "reconcile", "delete_check", "resnapshot"},
    "cycle_outcome": {"ok", "error"},
    "status_class": {"2xx", "3xx", "4xx", "429", "5xx", "error"},
    "transaction_outcome": {"committed", "aborted"},
    "reason": {"inconsistent", "malformed_row"},
    "retry_reason": {"timeout", "connection", "truncated", "malformed", "invalid"}
    | {"rate_limited", "server_error"},
}


def values(metrics: Metrics, name: str, label: str, **fixed: str) -> set[str]:
    """The values of ``label`` among the samples of ``name`` matching ``fixed``."""
    return {
        s.labels[label]
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in fixed.items())
    }


def test_prime_creates_every_known_series_at_zero(metrics: Metrics) -> None:
    metrics.prime([7, 8], poll_interval_seconds=2.5, now=1_234.0)
    get = metrics.registry.get_sample_value
    assert get("meetings_cdc_poll_interval_seconds") == 2.5
    for e in ("7", "8"):
        assert get("meetings_cdc_last_successful_cycle_timestamp_seconds", {"event_id": e}) == 1234
        published = values(
            metrics, "meetings_cdc_events_published_total", "change_type", event_id=e
        )
        assert published == DOCUMENTED["change_type"]
        caught = "meetings_cdc_reconcile_caught_changes_total"
        assert values(metrics, caught, "change_type", event_id=e) == published
        for name in ("rows_fetched", "pages_fetched", "window_splits", "window_rereads"):
            kinds = values(metrics, f"meetings_cdc_{name}_total", "window_kind", event_id=e)
            assert kinds == DOCUMENTED["window_kind"], name
        cycles = "meetings_cdc_cycles_total"
        assert values(metrics, cycles, "phase", event_id=e) == DOCUMENTED["phase"]
        assert values(metrics, cycles, "outcome", event_id=e) == DOCUMENTED["cycle_outcome"]
        statuses = values(metrics, "meetings_cdc_api_requests_total", "status_class", event_id=e)
        assert statuses == DOCUMENTED["status_class"]
        retries = values(metrics, "meetings_cdc_api_retries_total", "reason", event_id=e)
        assert retries == DOCUMENTED["retry_reason"]
        withheld = values(metrics, "meetings_cdc_meetings_withheld_total", "reason", event_id=e)
        assert withheld == DOCUMENTED["reason"]
        outcomes = values(metrics, "meetings_cdc_transactions_total", "outcome", event_id=e)
        assert outcomes == DOCUMENTED["transaction_outcome"]
        for name in (
            "events_published",
            "cycles",
            "api_requests",
            "api_retries",
            "meetings_withheld",
            "transactions",
        ):
            family = f"meetings_cdc_{name}_total"
            assert all(
                s.value == 0
                for f in metrics.registry.collect()
                for s in f.samples
                if s.name == family and s.labels.get("event_id") == e
            ), family
        assert get("meetings_cdc_dead_letters_total", {"event_id": e}) == 0
        assert get("meetings_cdc_producer_fenced_total", {"event_id": e}) == 0


def test_prime_is_idempotent_and_keeps_counts(metrics: Metrics) -> None:
    metrics.prime([7], poll_interval_seconds=5, now=1)
    metrics.events_published.labels(event_id="7", change_type="CREATED").inc()
    metrics.prime([7], poll_interval_seconds=5, now=2)
    labels = {"event_id": "7", "change_type": "CREATED"}
    assert metrics.registry.get_sample_value("meetings_cdc_events_published_total", labels) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "error"),
        (200, "2xx"),
        (204, "2xx"),
        (304, "3xx"),
        (400, "4xx"),
        (401, "4xx"),
        (429, "429"),
        (500, "5xx"),
        (503, "5xx"),
        (99, "error"),
        (600, "error"),
    ],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert StatusClass.of(status) == expected


def test_histograms_observe_in_seconds(metrics: Metrics) -> None:
    metrics.end_to_end_latency.labels(event_id="1").observe(2.0)
    metrics.cycle_duration.labels(event_id="1", phase="incremental").observe(0.2)
    metrics.api_request_duration.labels(event_id="1").observe(0.02)
    get = metrics.registry.get_sample_value
    bucket = {"event_id": "1", "le": "3.0"}
    assert get("meetings_cdc_end_to_end_latency_seconds_bucket", bucket) == 1
    assert get("meetings_cdc_end_to_end_latency_seconds_sum", {"event_id": "1"}) == 2.0


def test_readme_metrics_table_lists_every_metric_and_nothing_else() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(meetings_cdc_[a-z0-9_]+)` \|", section, re.MULTILINE))
    exposed = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        if not family.name.startswith("meetings_cdc_"):
            continue
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        exposed.add(family.name + suffix)
    assert documented == exposed, (
        f"missing from README: {sorted(exposed - documented)}; "
        f"not a metric: {sorted(documented - exposed)}"
    )


def test_every_configured_event_has_an_ownership_series_at_zero(metrics: Metrics) -> None:
    metrics.prime_configured([1, 2])
    assert metrics.registry.get_sample_value("meetings_cdc_event_owned", {"event_id": "2"}) == 0
    assert metrics.registry.get_sample_value("meetings_cdc_owned_events") == 0
    for change in ("assigned", "revoked", "lost"):
        sample = metrics.registry.get_sample_value(
            "meetings_cdc_rebalances_total", {"change": change}
        )
        assert sample == 0
