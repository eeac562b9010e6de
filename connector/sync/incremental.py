"""The incremental cycle: the windows after the watermarks, read and committed.

A MODIFIED window (and a CREATED one, unless new meetings are known to show in
last-modified windows: ``MEETINGS_CDC_CREATED_WINDOWS``) from the overlap before the
watermarks up to the API's now minus the settle delay, committed at once. When the overlap
held more than half a page, the next cycle reads the fresh seconds and commits them before
it re-reads the overlap, so a new change is published without waiting for those pages.
Re-reading what was published finds equal content and stages nothing, while a row that
landed late in a second already read is caught there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from connector.config.settings import Settings
from connector.core.changes import ReadKind
from connector.core.kinds import WindowKind
from connector.core.model import Meeting
from connector.core.progress import EventProgress
from connector.source.client import ExportClient
from connector.source.creation_stamps import CreationStamps, CycleReads
from connector.source.leaf_parts import WindowPart
from connector.source.reader import WindowReader
from connector.source.windows import (
    Followed,
    Watermarks,
    Window,
    advance,
    follow_api_clock,
    plan_incremental,
)
from connector.sync.batch import Batch
from connector.sync.committer import MAX_RECORDS_PER_TRANSACTION, Committer, Turn

log = logging.getLogger("connector.sync.engine")

#: The next poll reads the overlap and the fresh seconds as one window (one request) when
#: this cycle read at most this share of a page per kind; more, and the fresh seconds are
#: read and committed first (latency: a busy overlap costs pages a new change would wait for).
FUSE_BELOW = 0.5


def followed_watermarks(
    progress: EventProgress, client: ExportClient, settings: Settings
) -> Followed:
    """``progress``'s watermarks, rewound if the API's clock went back below them (to the
    step this process saw, or else to before the commit that wrote them)."""
    committed_at = (
        client.api_second_at(progress.updated_at / 1000) if progress.updated_at > 0 else None
    )
    return follow_api_clock(
        Watermarks(progress.created_through, progress.modified_through),
        client.api_now(),
        settings.settle_seconds,
        settings.overlap_seconds,
        client.api_step(),
        committed_at,
    )


class IncrementalCycles:
    """The incremental cycles of one event (what the previous cycle read shapes the next)."""

    def __init__(
        self,
        event_id: int,
        reader: WindowReader,
        committer: Committer,
        client: ExportClient,
        settings: Settings,
        stamps: CreationStamps,
    ) -> None:
        self.event_id = event_id
        self.reader = reader
        self.committer = committer
        self.client = client
        self.settings = settings
        #: Whether the API stamps last-modified at creation: shared by the process's events.
        self.stamps = stamps
        self._fused = True  # the next cycle reads overlap and fresh seconds as one window

    async def run(self, progress: EventProgress, turn: Turn) -> None:
        """One cycle from ``progress``: read, commit, learn."""
        followed = followed_watermarks(progress, self.client, self.settings)
        marks = followed.watermarks
        mode = self.settings.created_windows
        plan = plan_incremental(
            marks,
            self.client.api_now(),
            self.settings.settle_seconds,
            self.settings.overlap_seconds,
            followed.ahead,
            created_windows=mode == "always" or (mode == "auto" and not self.stamps.proven),
            fused=self._fused,
        )
        log.debug(
            "incremental plan",
            extra={
                "event_id": self.event_id,
                "created_through": progress.created_through,
                "modified_through": progress.modified_through,
                "followed": [marks.created_through, marks.modified_through],
                "ahead": followed.ahead,
                "step": self.client.api_step(),
                "fresh": [str(w) for w in plan.fresh],
                "lookback": [str(w) for w in plan.lookback],
            },
        )
        reads = _Reads(collect=mode == "auto")
        parts, marks = await self._read(
            plan.fresh, progress, marks, turn, plan.creations_in_modified, reads
        )
        await self._commit(turn, parts, progress, marks)
        parts, _ = await self._read(
            plan.lookback, progress, marks, turn, plan.creations_in_modified, reads
        )
        await self._commit(turn, parts, progress, marks, skip_empty=True)
        self._fused = max(reads.rows.values(), default=0) <= self.settings.api_per_page * FUSE_BELOW
        if reads.collect:
            self._weigh_creation_stamps(plan.windows, reads.meetings)

    def _weigh_creation_stamps(
        self, windows: list[Window], seen: dict[WindowKind, list[Meeting]]
    ) -> None:
        """Learn from this cycle whether last-modified windows show new meetings
        (``connector.source.creation_stamps``); say so when the verdict changes."""
        stamps = self.stamps
        before = stamps.proven
        stamps.observe(
            CycleReads(
                created=seen[WindowKind.CREATED],
                modified_windows=[w for w in windows if w.kind is WindowKind.MODIFIED],
                modified=seen[WindowKind.MODIFIED],
            )
        )
        if stamps.proven and not before:
            log.info(
                "new meetings show in last-modified windows: incremental cycles no longer "
                "read created windows",
                extra={"event_id": self.event_id, "confirmations": stamps.confirmations},
            )
        elif before and not stamps.proven:
            log.warning(
                "a meeting's last-modified time does not show its creation: incremental "
                "cycles read created windows again (MEETINGS_CDC_CREATED_WINDOWS=always "
                "keeps them)",
                extra={"event_id": self.event_id},
            )

    async def _read(
        self,
        windows: list[Window],
        progress: EventProgress,
        marks: Watermarks,
        turn: Turn,
        creations_in_modified: bool,
        reads: _Reads,
    ) -> tuple[list[WindowPart], Watermarks]:
        """Read ``windows``, moving ``marks`` over every part read; parts that fill a
        transaction are committed on the way, with the marks so far. ``reads`` notes what
        was read."""
        parts: list[WindowPart] = []
        size = 0
        for window in windows:
            async for part in self.reader.read(self.event_id, window):
                parts.append(part)
                reads.add(part)
                size += 2 * len(part.meetings) + len(part.dead_letters)
                marks = advance(marks, part.window, creations_in_modified=creations_in_modified)
                if size >= MAX_RECORDS_PER_TRANSACTION:
                    await self._commit(turn, parts, progress, marks)
                    parts, size = [], 0
            marks = advance(marks, window, creations_in_modified=creations_in_modified)
        return parts, marks

    async def _commit(
        self,
        turn: Turn,
        parts: list[WindowPart],
        begun: EventProgress,
        marks: Watermarks,
        *,
        skip_empty: bool = False,
    ) -> None:
        def stage(batch: Batch) -> None:
            for part in parts:
                kind = ReadKind(part.window.kind)
                for meeting in part.meetings:
                    batch.stage(meeting, part.window, kind=kind)
                batch.add_dead_letters(part)

        def moved(committed: EventProgress | None) -> EventProgress:
            # the poller alone moves the watermarks; last_reconcile_at is the reconciler's
            return replace(
                committed or begun,
                created_through=marks.created_through,
                modified_through=marks.modified_through,
            )

        await self.committer.commit(turn, stage, moved, skip_empty=skip_empty)


@dataclass(slots=True)
class _Reads:
    """What an incremental cycle read, per window kind: rows (whether the next cycle may
    read the overlap and the fresh seconds as one window) and, when ``collect``, the
    meetings (evidence for ``CreationStamps``)."""

    collect: bool
    rows: dict[WindowKind, int] = field(default_factory=dict)
    meetings: dict[WindowKind, list[Meeting]] = field(
        default_factory=lambda: {kind: [] for kind in WindowKind}
    )

    def add(self, part: WindowPart) -> None:
        kind = part.window.kind
        self.rows[kind] = self.rows.get(kind, 0) + part.rows
        if self.collect:
            self.meetings[kind].extend(part.meetings)
