"""Every Prometheus metric of the connector, defined once on an injected registry.

Labels are bounded: event_id (configured events only), change_type, window kind, outcome,
status class. Never meeting or account ids. Units are base units (seconds, bytes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from connector import __version__
from connector.core.changes import ChangeType
from connector.core.kinds import CycleKind, WindowKind
from connector.core.notifications import SIGNAL, NotificationStatus
from connector.core.signals import SignalKind
from connector.ops.labels import (
    Ask,
    CheckOutcome,
    CycleOutcome,
    DeleteCheckState,
    MembershipChange,
    RetryReason,
    StatusClass,
    TransactionOutcome,
    WithheldReason,
)

#: Label values known in advance, every member of an enum, pre-created at zero by
#: :meth:`Metrics.prime` so that ``rate()`` and ``increase()`` see the first increment and
#: dashboards show 0, not "No data".
REBALANCE_CHANGES = tuple(
    change for change in MembershipChange if change is not MembershipChange.CLOSED
)

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
            "Export API responses by status class (labels.StatusClass: 2xx, 3xx, 4xx, 429, 5xx) "
            "or 'error' (no response: timeout, connection failure).",
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
        self.meetings_withheld = Counter(
            f"{p}_meetings_withheld_total",
            "Meetings read but not handed on, by reason: 'inconsistent' (rows disagreed: it "
            "changed while being read) or 'malformed_row' (one of its rows was dead-lettered).",
            ["event_id", "reason"],
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
            "Unix time of the last committed cycle (the start-up time until the first one).",
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
        self.state_bytes = Gauge(
            f"{p}_state_bytes",
            "Bytes of state values held in memory for an event (compressed).",
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
        self.api_clock_uncertainty = Gauge(
            f"{p}_api_clock_uncertainty_seconds",
            "How far behind the API's clock its estimate may be (delays every window).",
            registry=r,
        )
        self.poll_interval = Gauge(
            f"{p}_poll_interval_seconds",
            "Configured seconds between incremental polls (alert thresholds are multiples).",
            registry=r,
        )
        self.watermark = Gauge(
            f"{p}_watermark_timestamp_seconds",
            "Committed watermark: every row created/modified at or before it is published.",
            ["event_id", "window_kind"],
            registry=r,
        )

        # --- delete check (row counts by creation time; connector.delete_check) -----------
        self.delete_checks = Counter(
            f"{p}_delete_checks_total",
            "Delete checks by outcome: 'clean' (every count matched the state), 'differed' "
            "(a range was read), 'error' (a request or the commit failed).",
            ["event_id", "outcome"],
            registry=r,
        )
        self.delete_check_requests = Counter(
            f"{p}_delete_check_requests_total",
            "Export requests of delete checks: 'count' (per_page=1, for the total of a range), "
            "'read' (every row of a range that differed; a read may take more pages) or "
            "'confirm' (a missing meeting's first participant's rows, before it is deleted).",
            ["event_id", "request"],
            registry=r,
        )
        self.delete_check_deletions = Counter(
            f"{p}_delete_check_deletions_total",
            "Hard-deleted meetings found by delete checks (each published as DELETED).",
            ["event_id"],
            registry=r,
        )
        self.delete_check_state = Gauge(
            f"{p}_delete_check_state",
            "1 for the event's delete check state, 0 for the others: 'scheduled' (a check "
            "every interval), 'off' (interval 0, on purpose), 'unavailable' (the API reports "
            "no row totals); all 0 until the state is known. Owned events only.",
            ["event_id", "state"],
            registry=r,
        )

        # --- signals, notifications, heartbeats (connector.sync.signals, .heartbeats) ----
        self.signals = Counter(
            f"{p}_signals_total",
            "Signals answered, by the event that answered, kind and final status "
            "(COMPLETED, REJECTED).",
            ["event_id", "kind", "status"],
            registry=r,
        )
        self.event_paused = Gauge(
            f"{p}_event_paused",
            "1 while the event is paused by a signal (no API request; not stalled).",
            ["event_id"],
            registry=r,
        )
        self.heartbeat_last = Gauge(
            f"{p}_heartbeat_last_timestamp_seconds",
            "When this replica last committed a heartbeat record of the event (unix time).",
            ["event_id"],
            registry=r,
        )

        # --- replicas (the group assigns state partitions, and so events) ----------------
        self.owned_events = Gauge(
            f"{p}_owned_events",
            "Events this replica runs (their state partitions are assigned to it).",
            registry=r,
        )
        self.event_owned = Gauge(
            f"{p}_event_owned",
            "1 while this replica runs the event, else 0 (every configured event has a "
            "series; sum by event_id over replicas is 1 when all is well).",
            ["event_id"],
            registry=r,
        )
        self.rebalances = Counter(
            f"{p}_rebalances_total",
            "Changes of this replica's state partitions by kind (assigned, revoked, lost).",
            ["change"],
            registry=r,
        )
        self.last_assignment_duration = Gauge(
            f"{p}_last_assignment_duration_seconds",
            "Duration of the last assignment: producers fenced, state restored, loops started.",
            registry=r,
        )

        # Memory, CPU and open files of this process (process_*) and the Python version
        # (python_info), on the same injected registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def prime_configured(self, event_ids: Iterable[int]) -> None:
        """Create the ownership series of every configured event (at 0: not owned yet)."""
        self.owned_events.set(0)
        for change in REBALANCE_CHANGES:
            self.rebalances.labels(change=change)
        for event_id in event_ids:
            self.event_owned.labels(event_id=str(event_id)).set(0)

    def prime(self, event_ids: Iterable[int], *, poll_interval_seconds: float, now: float) -> None:
        """Create every known series of ``event_ids`` at zero; call once at start-up.

        ``last_successful_cycle_timestamp_seconds`` starts at ``now`` (the start-up time), so
        the stalled alert also fires for a connector that never completes a cycle.
        """
        self.poll_interval.set(poll_interval_seconds)
        for event_id in event_ids:
            e = str(event_id)
            for status in StatusClass:
                self.api_requests.labels(event_id=e, status_class=status)
            for retry in RetryReason:
                self.api_retries.labels(event_id=e, reason=retry)
            self.api_rate_limited_seconds.labels(event_id=e)
            self.bytes_fetched.labels(event_id=e)
            self.dead_letters.labels(event_id=e)
            self.producer_fenced.labels(event_id=e)
            for reason in WithheldReason:
                self.meetings_withheld.labels(event_id=e, reason=reason)
            for kind in WindowKind:
                self.rows_fetched.labels(event_id=e, window_kind=kind)
                self.pages_fetched.labels(event_id=e, window_kind=kind)
                self.window_splits.labels(event_id=e, window_kind=kind)
                self.same_second_ties.labels(event_id=e, window_kind=kind)
                self.window_rereads.labels(event_id=e, window_kind=kind)
            for change_type in ChangeType:
                self.events_published.labels(event_id=e, change_type=change_type)
                self.reconcile_caught.labels(event_id=e, change_type=change_type)
            for outcome in TransactionOutcome:
                self.transactions.labels(event_id=e, outcome=outcome)
            for check_outcome in CheckOutcome:
                self.delete_checks.labels(event_id=e, outcome=check_outcome)
            for request in Ask:
                self.delete_check_requests.labels(event_id=e, request=request)
            self.delete_check_deletions.labels(event_id=e)
            for check_state in DeleteCheckState:
                self.delete_check_state.labels(event_id=e, state=check_state)
            for phase in CycleKind:
                for cycle_outcome in CycleOutcome:
                    self.cycles.labels(event_id=e, phase=phase, outcome=cycle_outcome)
            self.last_success.labels(event_id=e).set(now)
            self.event_paused.labels(event_id=e).set(0)
            for signal_kind in (*SignalKind, SIGNAL):
                for final in (NotificationStatus.COMPLETED, NotificationStatus.REJECTED):
                    self.signals.labels(event_id=e, kind=signal_kind, status=final)

    def set_delete_check_state(self, event_id: int, state: DeleteCheckState) -> None:
        """Set ``state`` to 1 and the event's other delete check states to 0 (every state
        keeps a series, so ``== 1`` finds the current one and no series is left over)."""
        e = str(event_id)
        for each in DeleteCheckState:
            self.delete_check_state.labels(event_id=e, state=each).set(int(each is state))

    def forget_delete_check_state(self, event_id: int) -> None:
        """Remove the event's delete check state series (it is released: its new owner
        reports them)."""
        for each in DeleteCheckState:
            with contextlib.suppress(KeyError):
                self.delete_check_state.remove(str(event_id), each)
