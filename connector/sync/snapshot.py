"""The snapshot cycle: the full export as CREATED windows up to a fixed upper bound.

Committed part by part and resumable after a crash: each transaction carries progress
saying how far the read got (``created_through``), so a restarted snapshot reads only the
rest. The last transaction moves the event to streaming. A full transaction commits in
the background while the next one is read (transactions stay one at a time and in order:
the committer stages the next one only after the previous one committed); a failed commit
fails the cycle, which is redone from whatever was committed.

The last transaction also holds the meetings created *ahead* of the API's clock (up to
``AHEAD_SECONDS`` past it): they exist only after the API's clock stepped back, stamped by
the old clock, and a snapshot that began after the step would otherwise leave them to no
window until the new clock reached their times (issue 30; watermarks stay at the bound).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from connector.core.changes import ReadKind
from connector.core.kinds import WindowKind
from connector.core.notifications import NotificationStatus
from connector.core.progress import EventProgress, Phase
from connector.source.leaf_parts import WindowPart
from connector.source.reader import WindowReader
from connector.source.windows import Window
from connector.sync.batch import Batch
from connector.sync.committer import MAX_RECORDS_PER_TRANSACTION, Committer, Turn
from connector.sync.notices import NoteRecord

#: An IN_PROGRESS notification rides on every this many transactions of a snapshot (each
#: holds up to ``MAX_RECORDS_PER_TRANSACTION`` records: about 10,000 meetings for two).
NOTIFY_EVERY = 2

#: How far ahead of the API's clock the last transaction reads creations: a step back of
#: the API's clock (an NTP correction, a failover) is seconds to minutes.
AHEAD_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class SnapshotRead:
    """What this process's read of the snapshot took (a resumed one reads only the rest)."""

    rows: int
    requests: int
    #: False when it stopped early for a signal (``halt``): the rest is read next time
    complete: bool = True


async def snapshot(
    event_id: int,
    reader: WindowReader,
    committer: Committer,
    progress: EventProgress,
    turn: Turn,
    *,
    emit: bool,
    api_now: Callable[[], int] | None = None,
    halt: Callable[[], bool] = lambda: False,
    note: NoteRecord | None = None,
) -> SnapshotRead:
    """Read and commit the rest of the snapshot ``progress`` describes; SNAPSHOT events
    are published only if ``emit`` (``MEETINGS_CDC_SNAPSHOT_MODE=initial``). ``api_now``:
    the API's clock, past which the last transaction reads creations stamped ahead of it.
    ``halt``: asked after each part; True commits what was read and stops there (a signal
    waits for the poller's turn: a pause must not wait for the whole snapshot).
    ``note``: the record of a notification of the snapshot; every ``NOTIFY_EVERY``
    transactions, one carries an IN_PROGRESS with the counts of this process's read."""
    upper = progress.snapshot_upper
    assert upper is not None  # noqa: S101 - set when the snapshot phase begins
    window = Window(WindowKind.CREATED, progress.created_through + 1, upper)

    def stage(
        parts: list[WindowPart], counts: dict[str, int] | None = None
    ) -> Callable[[Batch], None]:
        def into(batch: Batch) -> None:
            for part in parts:
                for meeting in part.meetings:
                    batch.stage(
                        meeting, part.window, kind=ReadKind.SNAPSHOT, snapshot=True, emit=emit
                    )
                batch.add_dead_letters(part)
            if counts is not None and note is not None:
                batch.records.append(note(NotificationStatus.IN_PROGRESS, None, counts))

        return into

    committing: asyncio.Task[Batch | None] | None = None
    parts: list[WindowPart] = []
    size = rows = requests = transactions = 0
    halted = False
    try:
        async for part in reader.read(event_id, window):
            parts.append(part)
            size += 2 * len(part.meetings) + len(part.dead_letters)
            rows += part.rows
            requests += part.requests
            progress = replace(progress, created_through=part.window.end)
            if size >= MAX_RECORDS_PER_TRANSACTION:
                if committing is not None:
                    await committing
                transactions += 1
                counts = (
                    {"rows": rows, "requests": requests, "transactions": transactions}
                    if transactions % NOTIFY_EVERY == 0
                    else None
                )
                committing = asyncio.create_task(
                    committer.commit(turn, stage(parts, counts), _fixed(progress))
                )
                parts, size = [], 0
            if halt():
                halted = True
                break
        if committing is not None:
            await committing
        if api_now is not None and not halted:
            now = max(upper, api_now())
            ahead = Window(WindowKind.CREATED, now + 1, now + AHEAD_SECONDS)
            async for part in reader.read(event_id, ahead):
                parts.append(part)
                rows += part.rows
                requests += part.requests
    finally:
        if committing is not None and not committing.done():
            # The cycle failed while a commit was in flight: let it end (its outcome no
            # longer matters: the cycle is redone from whatever was committed).
            with contextlib.suppress(Exception):
                await asyncio.shield(committing)
        elif committing is not None and not committing.cancelled():
            committing.exception()  # retrieved here if the loop failed before awaiting it
    if halted:
        if parts:
            await committer.commit(turn, stage(parts), _fixed(progress))
        return SnapshotRead(rows, requests, complete=False)
    done = replace(progress, phase=Phase.STREAMING, created_through=upper, last_reconcile_at=upper)
    await committer.commit(turn, stage(parts), _fixed(done))
    return SnapshotRead(rows, requests)


def _fixed(progress: EventProgress) -> Callable[[EventProgress | None], EventProgress]:
    """The snapshot's progress: the poller is the event's only writer during a snapshot
    cycle (signals wait for its turn, and the next cycle begins from what they committed)."""
    return lambda _committed: progress
