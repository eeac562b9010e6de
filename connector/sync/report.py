"""``CycleReport``: the facts of one committed transaction, assembled once.

The metrics, ``/status`` (``HealthState.cycle_finished``) and the "cycle committed" log line
are all fed from the same value, so they cannot disagree on what ran or what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.core.kinds import CycleKind, WindowKind
from connector.core.progress import EventProgress, Phase
from connector.ops.labels import TransactionOutcome
from connector.ops.metrics import Metrics


@dataclass(frozen=True, slots=True)
class CycleReport:
    """One committed transaction of one event's cycle."""

    event_id: int
    cycle: CycleKind
    cycle_number: int
    progress: EventProgress
    published: Mapping[str, int]
    caught: Mapping[str, int]
    dead_letters: int
    records: int
    modified_at: tuple[int, ...]  # epoch ms of every non-snapshot change published
    tracked_meetings: int
    state_bytes: int
    api_now: float  # the API's clock at the commit (unix seconds)
    wall_now: float  # this process's clock at the commit
    seconds: float  # since the cycle began

    @property
    def phase(self) -> Phase:
        """What the event is in after this commit."""
        return Phase(self.progress.phase)

    @property
    def lag_seconds(self) -> float:
        """How far the modified watermark trails the API's clock."""
        return max(0, self.api_now - self.progress.modified_through)

    @property
    def carried_something(self) -> bool:
        """Whether the transaction published events or dead letters."""
        return bool(self.published) or self.dead_letters > 0

    def status_detail(self) -> dict[str, Any]:
        """What ``/status`` shows of the event's last cycle."""
        p = self.progress
        return {
            "phase": str(p.phase),
            "created_through": p.created_through,
            "modified_through": p.modified_through,
            "last_reconcile_at": p.last_reconcile_at,
            "lag_seconds": self.lag_seconds,
            "published": dict(self.published),
            "dead_letters": self.dead_letters,
            "tracked_meetings": self.tracked_meetings,
        }

    def log_extra(self) -> dict[str, Any]:
        """The fields of the "cycle committed" log line."""
        p = self.progress
        return {
            "event_id": self.event_id,
            "phase": str(p.phase),  # snapshot | streaming (what the event is in)
            "cycle": str(self.cycle),  # snapshot | incremental | reconcile | ... (CycleKind)
            "cycle_number": self.cycle_number,
            "published": dict(self.published),
            "dead_letters": self.dead_letters,
            "records": self.records,
            "created_through": p.created_through,
            "modified_through": p.modified_through,
            "lag_seconds": self.lag_seconds,
            "seconds": round(self.seconds, 3),
        }

    @property
    def log_level(self) -> int:
        """One INFO line per transaction that carried something; quiet ones at DEBUG."""
        return logging.INFO if self.carried_something else logging.DEBUG

    def observe(self, m: Metrics) -> None:
        """Count this commit in the metrics."""
        label = str(self.event_id)
        m.transactions.labels(label, TransactionOutcome.COMMITTED).inc()
        for change_type, count in self.published.items():
            m.events_published.labels(label, change_type).inc(count)
        for change_type, count in self.caught.items():
            m.reconcile_caught.labels(label, change_type).inc(count)
        if self.dead_letters:
            m.dead_letters.labels(label).inc(self.dead_letters)
        for modified_at in self.modified_at:
            m.end_to_end_latency.labels(label).observe(max(0.0, self.api_now - modified_at / 1000))
        m.last_success.labels(label).set(self.wall_now)
        m.tracked_meetings.labels(label).set(self.tracked_meetings)
        m.state_bytes.labels(label).set(self.state_bytes)
        p = self.progress
        m.watermark.labels(label, WindowKind.CREATED).set(max(0, p.created_through))
        m.watermark.labels(label, WindowKind.MODIFIED).set(max(0, p.modified_through))
        if p.phase == Phase.STREAMING:
            m.source_lag.labels(label).set(self.lag_seconds)


__all__ = ["CycleReport"]
