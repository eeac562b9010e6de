"""A re-snapshot (a ``resnapshot`` signal): the event's meetings read again and re-sent.

Accepting the signal (``connector.core.signals``) sets the event's ``Resnapshot`` record in
its progress, in the signal's own transaction, with a STARTED notification. From then on
the owner of the event runs it as background work beside polling, like a reconcile pass
(``RequestLimiter.background_turn``: polls go first): the meetings created up to the
record's ``upper``, read as created windows after its ``through``, and committed in
transactions of about ``TRANSACTION_MEETINGS`` meetings, each moving ``through`` past what
it holds. A restart, or the replica the event moves to, goes on from ``through``: what one
transaction committed is not sent again.

What each meeting read becomes:

- as its state holds it (the common case): ``SNAPSHOT`` with ``source.window_kind``
  ``resnapshot``, the signal id and the state's version (``Batch.re_emit``);
- different from the state (polling missed it): its ordinary change event (a new version);
- committed by polling since the run began, or newer than polling's watermark: the state's
  version is re-sent as it is (polling's event of the newer one follows or came). Not only
  since its part was read: the reader's requests run ahead of the part handed on, so what a
  part holds may have been served before a commit of polling that came before the part;
- a tracked meeting of a creation second read but absent from it: ``DELETED``, under the
  reconcile pass's delete policy (``connector.sync.deletes.policy``).

The last transaction clears the record and carries the COMPLETED notification with the
counts, so the signal completes exactly once; every ``NOTIFY_EVERY`` transactions one carries
an IN_PROGRESS notification. A ``cancel-resnapshot`` clears the record between two
transactions: the next one finds it gone (``Superseded``) and publishes nothing. A pause
stops it at its next part; it goes on from ``through`` once resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from connector.core.changes import ReadKind
from connector.core.kinds import WindowKind
from connector.core.model import Meeting
from connector.core.notifications import NotificationStatus
from connector.core.progress import EventProgress, Resnapshot
from connector.serde import Serdes
from connector.source.leaf_parts import WindowPart
from connector.source.reader import WindowReader
from connector.source.windows import Window
from connector.sync.batch import Batch
from connector.sync.committer import Committer, Turn
from connector.sync.deletes.policy import deletions
from connector.sync.notices import NoteRecord

log = logging.getLogger("connector.sync.resnapshot")

#: Meetings read before a transaction is committed (each is one change event).
TRANSACTION_MEETINGS = 1_000
#: An IN_PROGRESS notification rides on every this many transactions.
NOTIFY_EVERY = 10
#: Meetings judged between two yields to the event loop.
YIELD_EVERY = 50


class Superseded(Exception):
    """The re-snapshot was cancelled (or replaced) while a part of it was read."""


@dataclass(frozen=True, slots=True)
class ResnapshotRun:
    """What one run of a re-snapshot works with."""

    event_id: int
    reader: WindowReader
    committer: Committer
    serdes: Serdes
    turn: Turn
    stop: asyncio.Event
    #: True while the event is paused (by a signal): the run stops at its next part
    paused: Callable[[], bool]
    #: returns once no poll cycle of the process runs
    background_turn: Callable[[], Awaitable[None]]
    #: epoch ms through which polling covers modified versions now
    coverage: Callable[[], int]
    #: the detection time of a delete (epoch ms)
    detected_ms: Callable[[], int]
    #: the record of a notification about the running signal
    note: NoteRecord


@dataclass(slots=True)
class _Pending:
    parts: list[WindowPart] = field(default_factory=list)
    meetings: int = 0


async def resnapshot(run: ResnapshotRun) -> Resnapshot | None:
    """Go on with the event's re-snapshot from its committed ``through``; the record as it
    completed, or None when the run stopped first (paused, cancelled, stopping)."""
    state = run.committer.state
    progress = state.progress
    running = None if progress is None else progress.resnapshot
    if running is None:
        return None
    signal_id = running.signal_id
    await _row_index(run)
    windows, not_found = _windows(running, run)
    pending = _Pending()
    sent = 0  # transactions of this run

    async def flush(chunk: _Pending, touched: set[int], through: int, *, last: bool) -> None:
        nonlocal sent
        await run.background_turn()  # a poll's transaction goes first
        counts: dict[str, int] = {"transactions": 1}
        if running.through < 0 and sent == 0 and not_found:
            counts["not_found"] = not_found

        def stage(batch: Batch) -> None:
            committed = state.progress
            current = None if committed is None else committed.resnapshot
            if current is None or current.signal_id != signal_id:
                raise Superseded(signal_id)
            _stage(batch, chunk, run, touched, counts, signal_id)
            total = current.counted(counts)
            if last:
                batch.records.append(
                    run.note(NotificationStatus.COMPLETED, None, dict(total.counts))
                )
            elif (sent + 1) % NOTIFY_EVERY == 0:
                batch.records.append(
                    run.note(NotificationStatus.IN_PROGRESS, None, dict(total.counts))
                )

        def moved(committed: EventProgress | None) -> EventProgress:
            current = None if committed is None else committed.resnapshot
            assert committed is not None  # noqa: S101 - stage() found the record
            assert current is not None  # noqa: S101 - under the same lock
            done = replace(current.counted(counts), through=through)
            return replace(committed, resnapshot=None if last else done)

        await run.committer.commit(run.turn, stage, moved)
        sent += 1

    try:
        with run.committer.watch() as touched:
            for window in windows:
                async for part in run.reader.read(run.event_id, window):
                    if run.stop.is_set() or run.paused():
                        return None  # what was read and not committed is read again
                    pending.parts.append(part)
                    pending.meetings += len(part.meetings)
                    if pending.meetings >= TRANSACTION_MEETINGS:
                        await flush(pending, touched, part.window.end, last=False)
                        pending = _Pending()
                    await run.background_turn()
            if run.stop.is_set():
                return None
            await flush(pending, touched, running.upper, last=True)
    except Superseded:
        log.info(
            "re-snapshot cancelled; it stops here",
            extra={"event_id": run.event_id, "signal_id": signal_id},
        )
        return None
    finished = replace(running, through=running.upper)
    log.info(
        "re-snapshot complete",
        extra={
            "event_id": run.event_id,
            "signal_id": signal_id,
            "seconds": round(time.monotonic() - run.turn.started, 3),
        },
    )
    return finished


def _stage(
    batch: Batch,
    chunk: _Pending,
    run: ResnapshotRun,
    touched: set[int],
    counts: dict[str, int],
    signal_id: str,
) -> None:
    """The records of the parts read: each meeting re-sent, changed or deleted.
    ``touched``: the ids polling committed since the run began (whatever a part read of
    them may be older: its requests may have been answered before that commit)."""
    covered_ms = run.coverage()
    snapshot = changed = deleted = 0
    for part in chunk.parts:
        seen: set[int] = set(part.inconsistent)
        for meeting in part.meetings:
            seen.add(meeting.meeting_id)
            tracked = batch.staging.get(meeting.meeting_id)
            if meeting.meeting_id in touched or meeting.modified_at > covered_ms:
                # polling committed a newer version, or reads it next: the state's is sent
                if tracked is not None:
                    batch.re_emit(tracked, part.window, signal_id)
                    snapshot += 1
                continue
            if _changed(batch, meeting, part.window, signal_id):
                changed += 1
            else:
                assert tracked is not None  # noqa: S101 - an untracked meeting is a change
                batch.re_emit(tracked, part.window, signal_id)
                snapshot += 1
        deleted += _deletes(batch, part, seen, touched, run, signal_id)
    for name, n in (("snapshot", snapshot), ("changed", changed), ("deleted", deleted)):
        if n:
            counts[name] = n


def _changed(batch: Batch, meeting: Meeting, window: Window, signal_id: str) -> bool:
    change = batch.stage(meeting, window, kind=ReadKind.RESNAPSHOT, signal_id=signal_id)
    return change is not None


def _deletes(
    batch: Batch,
    part: WindowPart,
    seen: set[int],
    touched: set[int],
    run: ResnapshotRun,
    signal_id: str,
) -> int:
    """Stage a DELETED for each tracked meeting of ``part``'s creation seconds it lacks."""
    window = part.window
    state = run.committer.state
    candidates = state.rows.meetings(window.start, window.end)
    running = state.progress.resnapshot if state.progress is not None else None
    if running is not None and running.meeting_ids:
        wanted = set(running.meeting_ids)
        candidates = [m for m in candidates if m in wanted]
    unattributed = sum(1 for d in part.dead_letters if d.meeting_id is None)

    def created_at(meeting_id: int) -> int | None:
        tracked = batch.staging.get(meeting_id)
        return None if tracked is None else tracked.meeting.created_at

    gone = deletions(
        candidates,
        seen,
        unattributed=unattributed,
        bound_ms=window.end * 1000 + 999,
        created_at=created_at,
        touched=touched,
    )
    if gone.held_back:
        log.warning(
            "re-snapshot skips deletes: malformed rows without a meeting id",
            extra={"event_id": run.event_id, "rows": unattributed, "candidates": gone.held_back},
        )
    for meeting_id in gone.meeting_ids:
        tracked = batch.staging.get(meeting_id)
        assert tracked is not None  # noqa: S101 - deletions() keeps tracked ids only
        batch.stage_delete(
            tracked, window, run.detected_ms(), kind=ReadKind.RESNAPSHOT, signal_id=signal_id
        )
    return len(gone.meeting_ids)


async def _row_index(run: ResnapshotRun) -> None:
    """Wait for the event's row index (which tracked meetings each creation second holds),
    built between polls after a restore."""
    state = run.committer.state
    for _ in state.index_steps(run.serdes):
        await asyncio.sleep(0)
    while not state.rows_ready and not run.stop.is_set():  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.1)  # another concern is building it


def _windows(running: Resnapshot, run: ResnapshotRun) -> tuple[list[Window], int]:
    """The created windows still to read, and how many requested meetings are not tracked.

    Every meeting: one window after ``through``. Listed meetings: the one-second windows of
    their creation seconds after ``through`` (an id not tracked cannot be placed)."""
    start = running.through + 1
    if not running.meeting_ids:
        if start > running.upper:
            return [], 0
        return [Window(WindowKind.CREATED, start, running.upper)], 0
    state = run.committer.state
    seconds: set[int] = set()
    not_found = 0
    for meeting_id in running.meeting_ids:
        tracked = state.get(meeting_id, run.serdes)
        if tracked is None:
            not_found += 1
            continue
        second = tracked.meeting.created_at // 1000
        if start <= second <= running.upper:
            seconds.add(second)
    return [Window(WindowKind.CREATED, s, s) for s in sorted(seconds)], not_found


__all__ = ["NOTIFY_EVERY", "TRANSACTION_MEETINGS", "ResnapshotRun", "Superseded", "resnapshot"]
