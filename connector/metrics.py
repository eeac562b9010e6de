"""Every Prometheus metric of the connector, defined once on an injected registry.

Labels are bounded: event_id (configured events only), change_type, window kind, outcome,
status class. Never meeting or account ids. Units are base units (seconds, bytes).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from connector import __version__

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 900)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_CYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The connector's metrics, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = "meetings_cdc"

        self.build_info = Info(f"{p}_build", "Version of the running connector.", registry=r)
        self.build_info.info({"version": __version__})

        # --- source side -----------------------------------------------------------------
        self.api_requests = Counter(
            f"{p}_api_requests_total",
            "Export API responses by HTTP status class (2xx, 4xx, 5xx) or 'error' (no response).",
            ["event_id", "status_class"],
            registry=r,
        )
        self.api_request_duration = Histogram(
            f"{p}_api_request_duration_seconds",
            "Duration of export API requests, including reading the body.",
            ["event_id"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.api_retries = Counter(
            f"{p}_api_retries_total",
            "Export API requests retried after a transient failure, by reason.",
            ["event_id", "reason"],
            registry=r,
        )
        self.api_rate_limited_seconds = Counter(
            f"{p}_api_rate_limited_seconds_total",
            "Seconds spent waiting on 429 Retry-After answers.",
            ["event_id"],
            registry=r,
        )
        self.rows_fetched = Counter(
            f"{p}_rows_fetched_total",
            "Export rows (participants) received.",
            ["event_id", "window_kind"],
            registry=r,
        )
        self.pages_fetched = Counter(
            f"{p}_pages_fetched_total",
            "Export pages received.",
            ["event_id", "window_kind"],
            registry=r,
        )
        self.bytes_fetched = Counter(
            f"{p}_bytes_fetched_total",
            "Bytes of export response bodies received.",
            ["event_id"],
            registry=r,
        )
        self.window_splits = Counter(
            f"{p}_window_splits_total",
            "Windows split because they held more rows than one page.",
            ["event_id", "window_kind"],
            registry=r,
        )
        self.same_second_ties = Counter(
            f"{p}_same_second_windows_total",
            "One-second windows holding more than a page, paged with total verification.",
            ["event_id", "window_kind"],
            registry=r,
        )
        self.window_rereads = Counter(
            f"{p}_window_rereads_total",
            "Windows read again because the result moved while paging (drift detected).",
            ["event_id", "window_kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters_total",
            "Malformed upstream rows sent to the dead-letter topic.",
            ["event_id"],
            registry=r,
        )

        # --- change capture --------------------------------------------------------------
        self.events_published = Counter(
            f"{p}_events_published_total",
            "Change events committed to the changes topic.",
            ["event_id", "change_type"],
            registry=r,
        )
        self.reconcile_caught = Counter(
            f"{p}_reconcile_caught_changes_total",
            "Changes found only by full reconciliation (incremental polling missed them).",
            ["event_id", "change_type"],
            registry=r,
        )
        self.transactions = Counter(
            f"{p}_transactions_total",
            "Kafka transactions by outcome (committed, aborted).",
            ["event_id", "outcome"],
            registry=r,
        )
        self.producer_fenced = Counter(
            f"{p}_producer_fenced_total",
            "Times the transactional producer was fenced by another instance.",
            ["event_id"],
            registry=r,
        )
        self.cycles = Counter(
            f"{p}_cycles_total",
            "Poll cycles by phase (snapshot, incremental, reconcile) and outcome (ok, error).",
            ["event_id", "phase", "outcome"],
            registry=r,
        )
        self.cycle_duration = Histogram(
            f"{p}_cycle_duration_seconds",
            "Duration of a poll cycle from planning to commit.",
            ["event_id", "phase"],
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            f"{p}_last_successful_cycle_timestamp_seconds",
            "Unix time of the last committed cycle.",
            ["event_id"],
            registry=r,
        )
        self.source_lag = Gauge(
            f"{p}_source_lag_seconds",
            "The API's now minus the committed last-modified watermark.",
            ["event_id"],
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            f"{p}_end_to_end_latency_seconds",
            "Commit time minus the upstream last-modified time of each published change.",
            ["event_id"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tracked_meetings = Gauge(
            f"{p}_tracked_meetings",
            "Meetings held in state.",
            ["event_id"],
            registry=r,
        )
        self.state_restore_duration = Gauge(
            f"{p}_state_restore_duration_seconds",
            "Duration of the last state restore from the state topic.",
            registry=r,
        )
        self.state_restore_records = Gauge(
            f"{p}_state_restore_records",
            "State records read during the last restore.",
            registry=r,
        )
        self.api_clock_offset = Gauge(
            f"{p}_api_clock_offset_seconds",
            "The API's clock (HTTP Date) minus the local clock.",
            registry=r,
        )
