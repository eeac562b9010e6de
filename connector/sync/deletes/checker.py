"""One delete check of one event: the I/O shell around ``connector.delete_check``.

It sends what the bisection asks (counts through ``ExportClient.count_rows``, leaf reads
through the ``WindowReader``, so a leaf read keeps every drift safety of the reader), then
judges each leaf read against the committed state, inside the commit (under the
committer's lock): a tracked meeting created in the leaf's range that the read did not
return is gone, by the reconcile delete policy (``connector.deletes``), and goes out as
DELETED plus a state tombstone through ``Batch.stage_delete``, the reconciler's path and
record format. A meeting the read returned is never touched here, whatever its rows:
polling publishes its change. A meeting polling committed while the check ran (``watch``)
is left alone: the read may have been sent before it existed. Before a candidate is
deleted, one more request confirms it is absent from its first participant's rows too
(the leaf judged it by the creation second the state holds for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connector.config.settings import Settings
from connector.core.kinds import WindowKind
from connector.core.progress import EventProgress
from connector.ops.health import HealthState
from connector.ops.labels import Ask, CheckOutcome, DeleteCheckState
from connector.ops.metrics import Metrics
from connector.source.client import ExportClient
from connector.source.reader import WindowReader
from connector.source.windows import Window
from connector.state.store import StateCodec, Tracked
from connector.sync.batch import Batch
from connector.sync.committer import Committer, Turn
from connector.sync.deletes.bisection import Bisection, Request, Span
from connector.sync.deletes.policy import deletions

log = logging.getLogger("connector.sync.engine")

#: Rows per page of a confirmation (one participant's rows: usually one page).
CONFIRM_PER_PAGE = 500


class TotalsNotReported(Exception):
    """The API answered a count without ``total``: the check cannot run on it."""


@dataclass(slots=True)
class ApiTotals:
    """Whether the export API reports row totals (None: not known yet). The API's
    behaviour is the API's: one probe learns it for every event of the process."""

    reported: bool | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class _Leaf:
    span: Span
    seen: set[int] = field(default_factory=set)
    unattributed: int = 0  # malformed rows naming no meeting: any candidate may be one


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a finished check did."""

    outcome: CheckOutcome
    requests: dict[Ask, int]  # HTTP requests sent, by what they asked
    deleted: int

    def count(self, metrics: Metrics, label: str) -> None:
        """Add this check to the event's delete-check metrics."""
        metrics.delete_checks.labels(label, self.outcome).inc()
        for ask, requests in self.requests.items():
            metrics.delete_check_requests.labels(label, ask).inc(requests)
        metrics.delete_check_deletions.labels(label).inc(self.deleted)


def report_no_totals(
    event_id: int, settings: Settings, health: HealthState, metrics: Metrics
) -> None:
    """Say (log, ``/status`` and ``meetings_cdc_delete_check_state``) that deletes wait for
    the reconciliation: the API reports no row totals to check them by."""
    interval = settings.reconcile_interval_seconds
    log.warning(
        "delete check unavailable: the export API reports no row totals, so hard deletes "
        "are found by the full reconciliation only (MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS)",
        extra={"event_id": event_id, "reconcile_interval_s": interval},
    )
    health.set_delete_check(
        event_id,
        "unavailable: the export API reports no row totals; deletes are found by "
        f"reconciliation every {interval:g} s",
    )
    metrics.set_delete_check_state(event_id, DeleteCheckState.UNAVAILABLE)


async def check_deletes(
    event_id: int,
    client: ExportClient,
    reader: WindowReader,
    committer: Committer,
    span: Span,
    turn: Turn,
    stop: asyncio.Event,
    detected_ms: Callable[[], int],
    codec: StateCodec,
    paused: Callable[[], bool] = lambda: False,
) -> CheckResult | None:
    """Run one check over ``span``; None when ``stop`` or a pause (``paused``, asked after
    each answer) cut it short (nothing committed).

    Raises ``TotalsNotReported`` if a count came back without ``total``, and the source
    and publish errors of the client, reader and committer.
    """
    state = committer.state
    machine = Bisection(span, state.rows, leaf_rows=reader.per_page)
    sent = dict.fromkeys(Ask, 0)
    leaves: list[_Leaf] = []
    with committer.watch() as touched:

        async def send(request: Request) -> tuple[Request, int]:
            window = Window(WindowKind.CREATED, request.span.first, request.span.last)
            if request.ask is Ask.COUNT:
                total = await client.count_rows(event_id, window)
                sent[Ask.COUNT] += 1
                if total is None:
                    raise TotalsNotReported(f"the export API reports no total for {window}")
                return request, total
            leaf = _Leaf(request.span)
            rows = 0
            async for part in reader.read(event_id, window):
                sent[Ask.READ] += part.requests
                rows += part.rows
                leaf.seen.update(m.meeting_id for m in part.meetings)
                leaf.seen.update(part.inconsistent)  # changed while read, or a bad row: exist
                leaf.unattributed += sum(1 for d in part.dead_letters if d.meeting_id is None)
            leaves.append(leaf)
            return request, rows

        # Requests of different ranges are independent: sent side by side (the client's
        # limiter bounds them), so a check of many deletes takes a few round trips per level.
        running: set[asyncio.Task[tuple[Request, int]]] = set()
        try:
            while not machine.done:
                running.update(asyncio.create_task(send(r)) for r in machine.next_requests())
                finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    machine.answer(*task.result())
                if stop.is_set() or paused():
                    return None
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        if not leaves:
            return CheckResult(CheckOutcome.CLEAN, sent, 0)
        absent: set[int] = set()
        for leaf in leaves:
            for meeting_id in _candidates(
                state.rows.meetings(leaf.span.first, leaf.span.last), leaf, touched
            ):
                if stop.is_set() or paused():
                    return None
                tracked = state.get(meeting_id, codec)
                if tracked is not None and await confirm_absent(client, event_id, tracked, sent):
                    absent.add(meeting_id)
        if stop.is_set() or paused():
            return None
        deleted = 0

        def stage(batch: Batch) -> None:
            nonlocal deleted
            for leaf in leaves:
                deleted += _stage_gone(batch, leaf, touched, absent, detected_ms, event_id)

        await committer.commit(turn, stage, _unchanged, skip_empty=True)
    if deleted:
        log.info(
            "delete check found deleted meetings",
            extra={
                "event_id": event_id,
                "deleted": deleted,
                "requests": sum(sent.values()),
                "seconds": round(time.monotonic() - turn.started, 3),
            },
        )
    return CheckResult(CheckOutcome.DIFFERED, sent, deleted)


def _candidates(indexed: list[int], leaf: _Leaf, touched: set[int]) -> list[int]:
    return [m for m in indexed if m not in leaf.seen and m not in touched]


async def confirm_absent(
    client: ExportClient, event_id: int, tracked: Tracked, sent: dict[Ask, int]
) -> bool:
    """Whether the meeting is also absent from the rows of its first participant (any
    creation time): the leaf judged it by the creation second the state holds, which can
    be off (a local time repeated by a daylight-saving fall-back, read where no window
    told which one it was); one request, as deleting cannot be taken back."""
    meeting = tracked.meeting
    if not meeting.participants:
        return True  # no rows: the export cannot show it, as a full pass would find
    params = {"account_id": meeting.participants[0].account_id}
    page, pages = 1, 1
    while page <= pages:
        found = await client.fetch_page(event_id, None, page, CONFIRM_PER_PAGE, params)
        sent[Ask.CONFIRM] += 1
        if any(
            isinstance(r, dict) and r.get("meeting_id") == meeting.meeting_id for r in found.rows
        ):
            log.warning(
                "delete check: a meeting missing from its creation range is still there; "
                "kept (its creation time in state differs from the API's)",
                extra={"event_id": event_id, "meeting_id": meeting.meeting_id},
            )
            return False
        pages = found.last_page
        page += 1
    return True


def _stage_gone(
    batch: Batch,
    leaf: _Leaf,
    touched: set[int],
    absent: set[int],
    detected_ms: Callable[[], int],
    event_id: int,
) -> int:
    """Stage DELETED for the tracked meetings of ``leaf`` its read did not return (and
    whose absence was confirmed: ``absent``)."""
    staging = batch.staging

    def created_at(meeting_id: int) -> int | None:
        tracked = staging.get(meeting_id)
        return None if tracked is None else tracked.meeting.created_at

    span = leaf.span
    gone = deletions(
        staging.base.rows.meetings(span.first, span.last),
        leaf.seen,
        unattributed=leaf.unattributed,
        bound_ms=span.last * 1000 + 999,
        created_at=created_at,
        touched=touched,
    )
    if gone.held_back:
        log.warning(
            "delete check skips deletes: malformed rows without a meeting id",
            extra={"event_id": event_id, "rows": leaf.unattributed, "candidates": gone.held_back},
        )
    window = Window(WindowKind.CREATED, span.first, span.last)
    staged = 0
    for meeting_id in gone.meeting_ids:
        tracked = staging.get(meeting_id)
        # deletions() keeps tracked ids only; one not confirmed waits for the next check
        if tracked is not None and meeting_id in absent:
            batch.stage_delete(tracked, window, detected_ms())
            staged += 1
    return staged


def _unchanged(progress: EventProgress | None) -> EventProgress:
    assert progress is not None  # noqa: S101 - a check runs only once the event streams
    return progress


__all__ = ["CheckResult", "TotalsNotReported", "check_deletes", "confirm_absent"]
