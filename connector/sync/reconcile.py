"""A reconcile pass: a full read of an event that catches what polling cannot see.

Hard deletes (DELETED + state tombstone) and anything incremental missed. It runs in its
own task beside the poller, so it judges a moving state: a meeting polling committed after
the pass began (``Committer.watch``) is left alone, whatever the pass read of it: polling's
version is at least as new, and a meeting absent from the pass may only have been created
after the pass read past it. What the pass stages is re-judged at commit time, under the
committer's lock, against the latest committed state; the delete policy is
``connector.deletes``.

The pass judges only what polling claims to cover: versions modified up to the incremental
watermark. That bound is taken again for every part and at every commit (``coverage``),
because the API's clock can go back while a pass runs: a version written after the step
carries a second below the watermark the pass began with, and polling reads it only in its
next cycle (it rewinds to the step's floor); judged against the old bound, the pass would
publish it first and count a change polling never missed (issue 30).

A pass is background work (``RequestLimiter.background_turn``): it judges in slices, and
before each slice, each page and each transaction it waits while a poll cycle of the
process runs, so a poll's pages and its commit do not queue behind the pass's CPU work or
its transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from connector.core.changes import ChangeType, ReadKind, classify
from connector.core.kinds import WindowKind
from connector.core.model import Meeting
from connector.core.progress import EventProgress
from connector.serde import Serdes
from connector.source.leaf_parts import WindowPart
from connector.source.reader import WindowReader
from connector.source.windows import Window
from connector.sync.batch import Batch
from connector.sync.committer import Committer, Turn
from connector.sync.deletes.policy import deletions

log = logging.getLogger("connector.sync.engine")

#: Staged candidates per intermediate transaction (each is two records).
MAX_CANDIDATES = 5_000
#: Meetings judged between two yields to the event loop (a page is up to 500).
YIELD_EVERY = 50
#: Tracked ids looked up in what the pass saw between two yields (a state is ~100k+).
SCAN_EVERY = 5_000


@dataclass(frozen=True, slots=True)
class PassBounds:
    """What a pass reads and judges."""

    upper: int  # every row created up to this second (unix s)
    covered_ms: int  # rows modified after the incremental watermark are left to polling
    never_upper_ms: int | None  # snapshot_mode=never: meetings from before it are not tracked
    # the delete check runs: a delete found here is one it missed, counted as "caught"
    deletes_checked: bool = False


@dataclass(slots=True)
class _Pending:
    candidates: list[tuple[Meeting, Window]] = field(default_factory=list)
    parts_with_letters: list[WindowPart] = field(default_factory=list)


@dataclass(slots=True)
class PassResult:
    """What a finished pass found."""

    seen: int = 0
    deleted: int = 0
    caught: Counter[str] = field(default_factory=Counter)


async def reconcile(
    event_id: int,
    reader: WindowReader,
    committer: Committer,
    serdes: Serdes,
    bounds: PassBounds,
    turn: Turn,
    stop: asyncio.Event,
    detected_ms: Callable[[], int],
    background_turn: Callable[[], Awaitable[None]],
    coverage: Callable[[], int] | None = None,
    paused: Callable[[], bool] = lambda: False,
) -> PassResult | None:
    """Run one pass; None when ``stop`` or a pause (``paused``, asked between pages) cut it
    short (its last transaction not written: the next pass, after a resume, starts over).

    ``background_turn`` (``RequestLimiter.background_turn``) is awaited between slices of
    work: it returns once no poll cycle of the process runs. ``coverage``: the epoch ms
    through which polling covers modified versions *now* (the committed modified watermark
    as the API's clock is followed: rewound after a step back); the pass judges nothing
    newer than it or than ``bounds.covered_ms``.
    """

    def covered() -> int:
        return bounds.covered_ms if coverage is None else min(bounds.covered_ms, coverage())

    state = committer.state
    window = Window(WindowKind.CREATED, 0, bounds.upper)
    seen: set[int] = set()
    unattributed = 0
    result = PassResult()
    pending = _Pending()
    with committer.watch() as touched:

        def stage(batch: Batch, chunk: _Pending) -> None:
            covered_ms = covered()  # the clock may have gone back since the part was read
            for meeting, part_window in chunk.candidates:
                if meeting.meeting_id in touched:
                    continue  # polling committed it after the pass began: its view is newer
                if meeting.modified_at > covered_ms:
                    continue  # polling's next cycle reads it
                change = batch.stage(meeting, part_window, kind=ReadKind.RECONCILE)
                if change is not None:
                    batch.caught[change.change_type.value] += 1
            for part in chunk.parts_with_letters:
                batch.add_dead_letters(part)

        async def flush(chunk: _Pending) -> None:
            await background_turn()  # a poll's transaction goes first
            batch = await committer.commit(
                turn, lambda b: stage(b, chunk), _unchanged, skip_empty=True
            )
            if batch is not None:
                result.caught.update(batch.caught)

        async for part in reader.read(event_id, window):
            if stop.is_set() or paused():
                return None
            seen.update(m.meeting_id for m in part.meetings)
            seen.update(part.inconsistent)  # changed while read, or withheld for a bad row
            unattributed += sum(1 for d in part.dead_letters if d.meeting_id is None)
            # After this part's responses: a step back they revealed already lowers it.
            covered_ms = covered()
            for n, meeting in enumerate(part.meetings, 1):
                if n % YIELD_EVERY == 0:
                    await background_turn()  # CPU work in slices: polls go first
                if meeting.modified_at > covered_ms or meeting.meeting_id in touched:
                    # Newer than the incremental watermark: the next incremental window
                    # reads it. Reconciliation only judges what incremental claims to cover.
                    continue
                raw = state.meetings.get(meeting.meeting_id)
                if raw is None:
                    if _untracked_by_design(meeting, bounds):
                        continue
                elif serdes.state_holds(raw, meeting):
                    continue  # as committed, byte for byte: most of a pass, not decoded
                elif classify(serdes.decode_meeting_state(raw)[0], meeting) is None:
                    continue
                pending.candidates.append((meeting, part.window))
            if part.dead_letters:
                pending.parts_with_letters.append(part)
            if len(pending.candidates) >= MAX_CANDIDATES:
                await flush(pending)
                pending = _Pending()
            await background_turn()  # before the next page is parsed

        # The tracked meetings the pass did not see, found before the last transaction
        # and in slices: under the committer's lock (a poll's commit may wait for it) only
        # these are judged. A meeting tracked since was committed by polling (``touched``)
        # or read by the pass (``seen``): never a candidate.
        unseen: list[int] = []
        tracked_ids = list(state.meetings)
        for start in range(0, len(tracked_ids), SCAN_EVERY):
            await background_turn()
            unseen.extend(m for m in tracked_ids[start : start + SCAN_EVERY] if m not in seen)
        del tracked_ids

        def stage_last(batch: Batch) -> None:
            stage(batch, pending)

            def created_at(meeting_id: int) -> int | None:
                tracked = batch.staging.get(meeting_id)
                return None if tracked is None else tracked.meeting.created_at

            gone = deletions(
                unseen,  # created_at() is None for any of them no longer tracked
                seen,
                unattributed=unattributed,
                bound_ms=bounds.upper * 1000,
                created_at=created_at,
                touched=touched,
            )
            if gone.held_back:
                # A malformed row that names no readable meeting may belong to any of them:
                # deleting now could delete a meeting that still exists. Wait for a clean pass.
                log.warning(
                    "reconciliation skips deletes: malformed rows without a meeting id",
                    extra={
                        "event_id": event_id,
                        "rows": unattributed,
                        "candidates": gone.held_back,
                    },
                )
            for meeting_id in gone.meeting_ids:
                tracked = batch.staging.get(meeting_id)
                assert tracked is not None  # noqa: S101 - deletions() keeps tracked ids only
                batch.stage_delete(tracked, window, detected_ms())
                if bounds.deletes_checked:
                    # Polling never sees a hard delete, but the delete check should have.
                    batch.caught[ChangeType.DELETED.value] += 1
            result.deleted = len(gone.meeting_ids)

        await background_turn()
        if stop.is_set() or paused():
            return None
        batch = await committer.commit(
            turn, stage_last, lambda p: replace(_unchanged(p), last_reconcile_at=bounds.upper)
        )
    assert batch is not None  # noqa: S101 - not skipped when empty
    result.caught.update(batch.caught)
    result.seen = len(seen)
    log.info(
        "reconciliation complete",
        extra={
            "event_id": event_id,
            "seen": result.seen,
            "deleted": result.deleted,
            "caught": dict(result.caught),
            "seconds": round(time.monotonic() - turn.started, 3),
        },
    )
    return result


def _untracked_by_design(meeting: Meeting, bounds: PassBounds) -> bool:
    # snapshot_mode=never: meetings that existed before the connector started are not
    # captured until they change; reconciliation must not "discover" them either.
    return bounds.never_upper_ms is not None and meeting.created_at <= bounds.never_upper_ms


def _unchanged(progress: EventProgress | None) -> EventProgress:
    assert progress is not None  # noqa: S101 - a pass runs only once the event streams
    return progress


__all__ = ["PassBounds", "PassResult", "reconcile"]
