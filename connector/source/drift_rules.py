"""The reader's drift rules as a sans-io plan: what to request, and when a window is read.

The API computes pages when they are requested: a row that leaves the window while it is
paged shifts every later row one place back, onto a page already read, and an unchanged
meeting is skipped for good. So no unverified page is trusted: a window that fits one page
is read by ONE request; a window of up to ``2 * paged_pages`` pages is *paged*: every page
at full size, asked for at once, then verified (equal ``total``s; ``total`` distinct
(meeting, account) pairs; for CREATED, the only kind rows can also enter, nothing modified
since the read began: one more request). A bigger window is split by time
(:func:`~connector.source.windows.split`) into parts of about ``paged_pages`` pages, so a
snapshot costs about rows / per_page requests. A part that fails verification is split
smaller and the parts planned next are halved (doubling after each that verifies); a
one-second window cannot be split and is re-read, up to ``max_rereads`` times.

The plan is a generator (as httpx's auth flows and meltano's paginators are): it yields
the commands of :mod:`connector.source.plan_commands`, is sent their results and never
does I/O. The executor (:class:`~connector.source.reader.WindowReader`) owns concurrency
and cancellation; a test may run spawned plans at once, one after another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.core.kinds import WindowKind
from connector.errors import RetriableSourceError
from connector.source.leaf_parts import LeafReads, Rows, WindowPart, distinct, pieces, sample
from connector.source.plan_commands import (
    Answer,
    Count,
    Emit,
    Fetch,
    Join,
    Occurrence,
    PageRequest,
    Sleep,
    Spawn,
    Steps,
)
from connector.source.rows import RowParser
from connector.source.windows import Window, expected_rows, split

#: Reads of one drifting one-second window before the cycle gives up (and retries later).
MAX_REREADS = 5
#: Splits below the first may cut into this many times more parts.
DEEP_FAN_OUT = 4
#: Extra reads of a part that held malformed rows, hoping they were transient.
MALFORMED_REREADS = 2
#: Pages of a paged part as planned by a split (a part is paged up to twice this): large
#: enough that the verification request and the part's last, partial page cost ~2 % more
#: than the minimum; small enough that a read of it rarely meets a change.
PAGED_PART_PAGES = 64


@dataclass(slots=True)
class Overflow:
    """A window of more than one second too large to read as it is: to be split."""

    total: int
    sample: list[int]


@dataclass(slots=True)
class Moved:
    """A paged window that moved while paged; ``now``: the API clock at its last answer."""

    now: int


@dataclass(slots=True)
class Split:
    """A window planned as ``parts``; ``handles`` of the parts' spawned plans."""

    parts: list[Window]
    estimates: list[float]
    depth: int  # the parts' depth
    handles: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.handles = [None] * len(self.parts)


@dataclass(slots=True)
class Rules:
    """The settings of one read, and its pacing: ``paged_pages`` adapts while it runs."""

    event_id: int
    per_page: int
    parser: RowParser
    max_parts: int
    paged_pages: int  # parts planned from now on are paged up to twice this many pages
    max_paged_pages: int
    max_rereads: int = MAX_REREADS
    malformed_rereads: int = MALFORMED_REREADS

    def pageable(self) -> int:
        """Rows up to which a window is paged rather than split (per_page: never paged)."""
        return self.per_page * (2 * self.paged_pages if self.paged_pages >= 2 else 1)


def read(rules: Rules, window: Window) -> Steps[None]:
    """Emit ``window``'s leaf parts in ascending order, each read completely."""
    first = yield from _fetch(window, 1, rules.per_page)
    plan = yield from _plan(rules, window, first, 0)
    yield from _walk(rules, window, plan, 0, ())


def _fetch(
    window: Window, page: int, per_page: int, params: Mapping[str, int | str] | None = None
) -> Steps[Answer]:
    (answer,) = yield Fetch((PageRequest(window, page, per_page, params or {}),))
    assert isinstance(answer, Answer)  # noqa: S101 - the executor's contract
    return answer


def _plan_part(rules: Rules, window: Window, per_page: int, depth: int) -> Steps[Rows | Split]:
    first = yield from _fetch(window, 1, per_page)
    return (yield from _plan(rules, window, first, depth))


def _plan(rules: Rules, window: Window, first: Answer, depth: int) -> Steps[Rows | Split]:
    """Every row of ``window`` if it fits, else its parts, their reads started."""
    collected = yield from _collect(rules, window, first)
    if isinstance(collected, Rows):
        return collected
    return (yield from _split(rules, window, collected, depth))


def _split(rules: Rules, window: Window, overflow: Overflow, depth: int) -> Steps[Split]:
    # The first split may face mostly empty seconds (a full export from 0): few parts.
    # Below it, rows were seen to be dense, and more parts save a level of requests.
    fan_out = rules.max_parts if depth == 0 else rules.max_parts * DEEP_FAN_OUT
    # parts to be paged are planned at half the size they may be paged up to
    part_rows = max(rules.per_page, rules.pageable() // 2)
    parts = split(window, overflow.total, part_rows, overflow.sample, fan_out)
    yield Count(Occurrence.SPLIT, window.kind)
    plan = Split(parts, expected_rows(parts, overflow.total, overflow.sample), depth + 1)
    # Parts expected to fit a page are read at once (the limiter bounds concurrency, and
    # serves them in the order they are walked). A part expected to overflow is probed
    # for its total only once the part before it has queued its reads: a probe is a
    # costly count for the API, and queued ahead of those reads it would hold them up.
    for i, estimate in enumerate(plan.estimates):
        if i == 0 or estimate <= rules.per_page:
            yield from _start(rules, plan, i)
    return plan


def _start(rules: Rules, plan: Split, i: int) -> Steps[None]:
    """Start planning part ``i`` of ``plan`` (once): a part that may be paged with its
    first full page, one expected to be split with a probe for its total."""
    if i < len(plan.parts) and plan.handles[i] is None:
        per_page = 1 if plan.estimates[i] > rules.pageable() else rules.per_page
        plan.handles[i] = yield Spawn(_plan_part(rules, plan.parts[i], per_page, plan.depth))


def _walk(
    rules: Rules,
    window: Window,
    plan: Rows | Split,
    depth: int,
    due: tuple[tuple[Split, int], ...],
) -> Steps[None]:
    """Emit the leaf parts of ``plan`` in order. ``due``: the next parts of the enclosing
    splits (innermost first), started before a leaf is emitted (by then the part being
    walked has queued its reads)."""
    if isinstance(plan, Split):
        for i, part in enumerate(plan.parts):
            yield from _start(rules, plan, i)
            if plan.estimates[i] > rules.per_page:
                # a paged part: the next one's first page queues behind its pages
                yield from _start(rules, plan, i + 1)
            inner = yield Join(_handle(plan, i))
            yield from _walk(rules, part, inner, plan.depth, ((plan, i + 1), *due))
        return
    for piece, rows in pieces(rules.parser, window, plan):
        leaf = yield from _leaf(rules, piece, rows)
        if isinstance(leaf, Overflow):
            # outgrew a page while re-read: split what is left of the window
            rest = Window(window.kind, piece.start, window.end)
            again = yield from _split(rules, rest, leaf, depth)
            yield from _walk(rules, rest, again, depth, due)
            return
        for outer, j in due:
            yield from _start(rules, outer, j)
        yield Emit(leaf)


def _handle(plan: Split, i: int) -> int:
    handle = plan.handles[i]
    assert handle is not None  # noqa: S101 - started by the walk just before
    return handle


def _collect(rules: Rules, window: Window, first: Answer | None) -> Steps[Rows | Overflow]:
    """Every row of ``window`` if it fits a page or is one second; else its size."""
    per_page, kind = rules.per_page, window.kind
    if first is None:
        first = yield from _fetch(window, 1, per_page)
    while True:
        total = first.total
        if first.request.per_page < per_page:  # a probe: it only told the total
            if total == 0:
                return Rows([], 1)
            if total > rules.pageable() and window.seconds > 1:
                return Overflow(total, [])
            first = yield from _fetch(window, 1, per_page)
            continue
        if total <= per_page:
            return Rows(first.rows, 1)
        if window.seconds == 1:
            return (yield from _read_second(rules, window, first))
        if total <= rules.pageable():
            if first.started is None and kind is WindowKind.CREATED:
                # sent before the API clock was known: "since" would be a guess
                first = yield from _fetch(window, 1, per_page)
                continue
            paged = yield from _page_through(rules, window, first)
            if isinstance(paged, Rows):
                rules.paged_pages = min(rules.max_paged_pages, rules.paged_pages * 2)
                return paged
            yield Count(Occurrence.REREAD, kind)
            rules.paged_pages //= 2  # its parts, and the next, are planned smaller
        return Overflow(total, sample(rules.parser, first.rows, window))


def _read_second(rules: Rules, window: Window, first: Answer) -> Steps[Rows]:
    """Page through a one-second window (it cannot be split) until it verifies."""
    kind = window.kind
    yield Count(Occurrence.SAME_SECOND_TIE, kind)
    fetched: Answer | None = first
    if first.started is None and kind is WindowKind.CREATED:
        fetched = None  # sent before the API clock was known: "since" would be a guess
    for attempt in range(rules.max_rereads + 1):
        if attempt:
            yield Count(Occurrence.REREAD, kind)
        if fetched is None:
            fetched = yield from _fetch(window, 1, rules.per_page)
            if fetched.total <= rules.per_page:
                return Rows(fetched.rows, 1)
        paged = yield from _page_through(rules, window, fetched)
        if isinstance(paged, Rows):
            return paged
        started, fetched = fetched.started, None
        if kind is WindowKind.CREATED and started is not None and paged.now <= started:
            # "Modified since" cannot tell a change made during the read from one made
            # earlier in the same second: read again once that second is over.
            yield Sleep(1.0)
    raise RetriableSourceError(
        f"window {window} of event {rules.event_id} kept changing while being paged "
        f"({rules.max_rereads + 1} reads); the cycle will be retried"
    )


def _page_through(rules: Rules, window: Window, first: Answer) -> Steps[Rows | Moved]:
    """Every row of ``window``, paged from its ``first`` page and verified to be one
    consistent set; Moved when it moved while being paged (or cannot be verified)."""
    started = first.started
    if started is None and window.kind is WindowKind.CREATED:
        return Moved(first.now)  # sent before the API clock was known
    per_page = rules.per_page
    pages = math.ceil(first.total / per_page)
    rest = yield Fetch(tuple(PageRequest(window, n, per_page) for n in range(2, pages + 1)))
    rows = list(first.rows)
    stable = True
    now = first.now
    for other in rest:
        assert isinstance(other, Answer)  # noqa: S101 - the executor's contract
        stable = stable and other.total == first.total
        rows.extend(other.rows)
        now = max(now, other.now)
    stable = stable and len(rows) == first.total and distinct(rules.parser, rows)
    if stable and started is not None and window.kind is WindowKind.CREATED:
        # Rows enter a CREATED window only through a modification: none may have
        # happened since the read began (conservatively, in its first second too).
        since = yield from _fetch(window, 1, 1, {"last_modified_from": started})
        stable, now = since.total == 0, max(now, since.now)
    return Rows(rows, pages) if stable else Moved(now)


def _leaf(rules: Rules, window: Window, collected: Rows) -> Steps[WindowPart | Overflow]:
    """Assemble a leaf; re-read it while malformed rows withhold meetings.

    A re-read that finds the window grown beyond a page returns its size instead: the
    window is then split and read like any other (a row the first read could not
    attribute may belong to any meeting of it, so no partial result is kept).
    """
    reads = LeafReads(rules.event_id, window)
    attempt = 0
    while reads.add(rules.parser, collected) and attempt < rules.malformed_rereads:
        attempt += 1
        again = yield from _collect(rules, window, None)
        if isinstance(again, Overflow):
            return again
        collected = again
    return reads.part()
