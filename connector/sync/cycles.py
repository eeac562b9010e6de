"""The cycles of one event: what a snapshot, an incremental, a reconcile or a delete-check
cycle does, given the decided kind (``connector.engine`` decides when; this module, what).

Each cycle reads through the shared reader, stages and commits through the event's
``Committer``; none keeps anything between runs but the committed state, so a failed cycle
is simply run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connector.config.settings import Settings
from connector.core.kinds import CycleKind
from connector.core.masking import rules_problem
from connector.core.notifications import NotificationStatus
from connector.core.progress import EventProgress, Phase
from connector.core.signals import SignalKind
from connector.errors import ConfigError
from connector.kafka.signal_channel import SignalChannel
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics
from connector.serde import Serdes
from connector.source.client import ExportClient
from connector.source.creation_stamps import CreationStamps
from connector.source.reader import WindowReader
from connector.source.windows import Followed
from connector.state.store import EventState
from connector.sync.committer import Committer, Turn
from connector.sync.deletes.bisection import judged_span
from connector.sync.deletes.checker import ApiTotals, TotalsNotReported, check_deletes
from connector.sync.incremental import IncrementalCycles, followed_watermarks
from connector.sync.notices import Notices
from connector.sync.reconcile import PassBounds, reconcile
from connector.sync.resnapshot import ResnapshotRun, resnapshot
from connector.sync.snapshot import snapshot

log = logging.getLogger("connector.cycles")

SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What every event's loop shares."""

    settings: Settings
    client: ExportClient
    reader: WindowReader
    serdes: Serdes
    metrics: Metrics
    health: HealthState
    state_partitions: int
    #: partitions of the changes topic (a meeting's partition derives from its key)
    changes_partitions: int
    wall_clock: Callable[[], float] = time.time
    #: Whether the API stamps last-modified at creation: learnt once for all the events.
    creation_stamps: CreationStamps = field(default_factory=CreationStamps)
    #: Whether the API reports row totals (the delete check needs them): learnt once.
    api_totals: ApiTotals = field(default_factory=ApiTotals)
    #: The signals topic, read for one event (``connector.sync.signals``); None: no signals
    #: are read (tests and tools that run an event without Kafka).
    signal_channel: Callable[[int], SignalChannel] | None = None
    #: Whether an event's steps (snapshot, pass, delete check) are notified on the
    #: notifications topic (``connector.sync.notices``); False: tools and tests that run an
    #: event without the operators' topics.
    notify_steps: bool = False


class EventCycles:
    """Runs the cycles of one event, one call at a time per kind."""

    def __init__(
        self, event_id: int, state: EventState, committer: Committer, deps: Collaborators
    ) -> None:
        self.event_id = event_id
        self.state = state
        self.committer = committer
        self.deps = deps
        self.settings = deps.settings
        self._label = str(event_id)
        self._masker = deps.settings.masker()  # the rules the reader parses rows with
        # A pass longer than the reconcile interval leaves the next one due at once; after
        # each pass one incremental cycle runs first (connector.schedule).
        self.reconciled_last = False
        self._begun: EventProgress | None = None  # before the first commit: how it begins
        self._cycle_number = 0  # of this process: a cycle may commit more than once
        self._incremental = IncrementalCycles(
            event_id, deps.reader, committer, deps.client, deps.settings, deps.creation_stamps
        )
        #: notifications of the steps: snapshot, pass, delete check (connector.sync.notices)
        self.notices = Notices(
            event_id, committer, deps.settings, deps.wall_clock, enabled=deps.notify_steps
        )
        #: whether a snapshot should stop at its next part (a signal waits for the turn)
        self.halt_snapshot: Callable[[], bool] = lambda: False
        #: set when the event stops: a long pass ends at its next part
        self.stop = asyncio.Event()

    def progress_now(self) -> EventProgress:
        """The committed progress, or how the event begins (decided once, then kept)."""
        if self.state.progress is not None:
            self._begun = None
            return self.state.progress
        if self._begun is None:
            self._begun = self._begin()
        return self._begun

    async def run(self, kind: CycleKind, started: float) -> bool:
        """Run the decided cycle; return True when more work is waiting (no need to sleep)."""
        self._cycle_number += 1
        turn = Turn(kind, self._cycle_number, started)
        progress = self.progress_now()
        if kind is CycleKind.SNAPSHOT:
            return await self._snapshot(progress, turn)
        if kind is CycleKind.DELETE_CHECK:
            await self._check_deletes(progress, turn)
            return False
        if kind is CycleKind.RECONCILE:
            await self._reconcile(progress, turn)
            self.reconciled_last = True
            return False
        if kind is CycleKind.RESNAPSHOT:
            await self._resnapshot(progress, turn)
            return False
        await self._incremental.run(progress, turn)
        self.reconciled_last = False
        return False

    async def sync_clock(self) -> None:
        """Learn the API's clock (one one-row request) if no response told it yet."""
        if not self.deps.client.api_clock_known:
            await self.deps.client.fetch_page(self.event_id, None, page=1, per_page=1)

    def _begin(self) -> EventProgress:
        upper = self._upper_bound()
        mode = self.settings.snapshot_mode
        log.info(
            "starting event",
            extra={"event_id": self.event_id, "snapshot_mode": mode, "snapshot_upper": upper},
        )
        if mode == "never":
            return self._progress(STREAMING, upper, upper, upper, last_reconcile_at=upper)
        return self._progress(SNAPSHOT, upper, -1, upper, last_reconcile_at=None)

    async def _snapshot(self, progress: EventProgress, turn: Turn) -> bool:
        if progress.created_through < 0:  # nothing read yet (again, after an early crash)
            await self.notices.send("snapshot", {}, status=NotificationStatus.STARTED)
        read = await snapshot(
            self.event_id,
            self.deps.reader,
            self.committer,
            progress,
            turn,
            emit=self.settings.snapshot_mode == "initial",
            api_now=self.deps.client.api_now,
            halt=self.halt_snapshot,
            note=self.notices.record_of("snapshot") if self.notices.enabled else None,
        )
        if not read.complete:
            log.info(
                "snapshot stopped for a signal; it goes on from its progress",
                extra={"event_id": self.event_id, "rows": read.rows},
            )
            return True
        log.info(
            "snapshot complete",
            extra={
                "event_id": self.event_id,
                "meetings": len(self.state.meetings),
                # of this process's read (a resumed snapshot read only the rest)
                "rows": read.rows,
                "requests": read.requests,
            },
        )
        await self.notices.send(
            "snapshot",
            {"meetings": len(self.state.meetings), "rows": read.rows, "requests": read.requests},
        )
        return True

    async def _reconcile(self, progress: EventProgress, turn: Turn) -> None:
        snapshot_upper = progress.snapshot_upper
        never = self.settings.snapshot_mode == "never" and snapshot_upper is not None
        bounds = PassBounds(
            upper=self._upper_bound(),
            covered_ms=self._follow_api_clock(progress).watermarks.modified_through * 1000,
            never_upper_ms=snapshot_upper * 1000 if never and snapshot_upper else None,
            deletes_checked=bool(self.deps.api_totals.reported)
            and self.settings.delete_check_interval_seconds > 0,
        )
        await self.notices.send("reconcile", {}, status=NotificationStatus.STARTED)
        result = await reconcile(
            self.event_id,
            self.deps.reader,
            self.committer,
            self.deps.serdes,
            bounds,
            turn,
            self.stop,
            detected_ms=lambda: self.deps.client.api_now() * 1000,
            background_turn=self.deps.client.limiter.background_turn,
            coverage=lambda: self._coverage_ms(progress),
            paused=self._paused,
        )
        if result is None and self._paused():
            log.info(
                "reconciliation stopped by a pause: the next pass starts after the resume",
                extra={"event_id": self.event_id},
            )
        if result is not None:
            caught = {f"caught_{kind}": n for kind, n in result.caught.items()}
            await self.notices.send(
                "reconcile", {"seen": result.seen, "deleted": result.deleted, **caught}
            )

    async def _resnapshot(self, progress: EventProgress, turn: Turn) -> None:
        running = progress.resnapshot
        if running is None:
            return
        client = self.deps.client
        log.info(
            "re-snapshot running",
            extra={
                "event_id": self.event_id,
                "signal_id": running.signal_id,
                "upper": running.upper,
                "through": running.through,
                "meeting_ids": len(running.meeting_ids),
            },
        )
        await resnapshot(
            ResnapshotRun(
                event_id=self.event_id,
                reader=self.deps.reader,
                committer=self.committer,
                serdes=self.deps.serdes,
                turn=turn,
                stop=self.stop,
                paused=self._paused,
                background_turn=client.limiter.background_turn,
                coverage=lambda: self._coverage_ms(progress),
                detected_ms=lambda: client.api_now() * 1000,
                note=self.notices.record_of(SignalKind.RESNAPSHOT, running.signal_id),
            )
        )

    def _paused(self) -> bool:
        progress = self.state.progress
        return progress is not None and progress.paused

    def _coverage_ms(self, begun: EventProgress) -> int:
        """Through when polling covers modified versions now (epoch ms): the committed
        modified watermark, rewound if the API's clock went back (``follow_api_clock``)."""
        progress = self.state.progress or begun
        return self._follow_api_clock(progress).watermarks.modified_through * 1000

    async def _check_deletes(self, progress: EventProgress, turn: Turn) -> None:
        never = self.settings.snapshot_mode == "never"
        span = judged_span(
            self._follow_api_clock(progress).watermarks.created_through,
            untracked_through=progress.snapshot_upper if never else None,
        )
        if span is None:
            return
        try:
            result = await check_deletes(
                self.event_id,
                self.deps.client,
                self.deps.reader,
                self.committer,
                span,
                turn,
                self.stop,
                detected_ms=lambda: self.deps.client.api_now() * 1000,
                codec=self.deps.serdes,
                paused=self._paused,
            )
        except TotalsNotReported:
            self.deps.api_totals.reported = False
            return
        if result is not None:
            result.count(self.deps.metrics, self._label)
            if result.deleted:
                requests = sum(result.requests.values())
                await self.notices.send(
                    "delete_check", {"deleted": result.deleted, "requests": requests}
                )

    def _upper_bound(self) -> int:
        return self.deps.client.api_now() - self.settings.settle_seconds

    def _progress(
        self,
        phase: Phase,
        snapshot_upper: int,
        created_through: int,
        modified_through: int,
        *,
        last_reconcile_at: int | None,
    ) -> EventProgress:
        return EventProgress(
            event_id=self.event_id,
            phase=phase,
            snapshot_upper=snapshot_upper,
            created_through=created_through,
            modified_through=modified_through,
            last_reconcile_at=last_reconcile_at,
            updated_at=int(self.deps.wall_clock() * 1000),
            field_rules=self._masker.rules.text or None,
            field_hash_key_check=self._masker.key_check,
        )

    def check_field_rules(self) -> None:
        """Refuse (``ConfigError``, exit 2) state written under other field rules or another
        hash key: every meeting would otherwise change by its masking alone."""
        progress = self.state.progress
        if progress is None:
            return
        problem = rules_problem(
            self.event_id, progress.field_rules, progress.field_hash_key_check, self._masker
        )
        if problem is not None:
            raise ConfigError(problem)

    def _follow_api_clock(self, progress: EventProgress) -> Followed:
        return followed_watermarks(progress, self.deps.client, self.settings)


__all__ = ["Collaborators", "EventCycles"]
