"""Reading one window completely, without page drift (problems 1 and 3 of the design).

The API computes pages when they are requested: a row that leaves the window while it is
paged (its meeting was modified) shifts every later row one place back, onto a page already
read, and an unchanged meeting is skipped for good. So the reader never trusts
an unverified page: a window whose rows fit one page is read by ONE request (atomic); a
window of up to ``2 * paged_part_pages`` pages is *paged*: every page at full size, asked
for at once, then verified: every page must report the same ``total``, the rows must be
``total`` distinct (meeting, account) pairs, and for a CREATED window (the only kind rows
can also enter: a participant added) no row of it may have been modified since the read
began (one more request). A bigger window is split by time
(:func:`~connector.source.windows.split`) into parts of about ``paged_part_pages`` pages,
each read the same way, so a snapshot costs about the minimum number of requests (rows /
per_page) instead of one under-filled page per part plus a probe per split.

A paged part that fails its verification (it changed while being read) is not read again
as a whole: it is split into one-page parts, read atomically as before, and the parts the
read plans next are half as large (doubling again after each part that verified), so under
churn the reader falls back to small atomic reads. Only a one-second window cannot be
split; it is paged and verified again, a bounded number of times.

A MODIFIED window ends in the past (behind the settle delay), so rows can only leave it;
a CREATED window's rows can leave or, through a modification, enter. Either way equal
totals plus "nothing modified since" prove the set did not move while it was paged.

Parts come out in ascending time order as :class:`WindowPart` values: after a part, every
row of its kind up to ``part.window.end`` has been read, so the engine may advance its
watermark to it. Malformed rows make a part be read again (the simulator's and many real
APIs' bad rows are transient); meetings complete in any read are kept, the others are
withheld and their rows dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any

from connector.errors import RetriableSourceError
from connector.metrics import Metrics
from connector.model import Meeting
from connector.source.assembly import Assembled, assemble
from connector.source.client import ExportClient, ExportPage
from connector.source.rows import DeadLetter, ParsedRow, RowError, RowParser, raw_text
from connector.source.windows import (
    MAX_PARTS,
    Window,
    WindowKind,
    expected_rows,
    split,
)

#: Reads of one drifting one-second window before the cycle gives up (and retries later).
MAX_REREADS = 5
#: Splits below the first may cut into this many times more parts.
DEEP_FAN_OUT = 4
#: Extra reads of a part that held malformed rows, hoping they were transient.
MALFORMED_REREADS = 2
#: Pages of a paged part as planned by a split (a part is paged up to twice this): large
#: enough that the verification request and the part's last, partial page cost ~2 % more
#: than the minimum; small enough that a read of it rarely meets a change (see above).
PAGED_PART_PAGES = 64
#: A paged part is handed on in pieces of about this many rows (cut at second boundaries),
#: so that parsing, assembling and staging it never hold the event loop for long.
LEAF_ROWS = 2_000


@dataclass(frozen=True, slots=True)
class WindowPart:
    """One leaf window read completely.

    ``meetings`` are complete and consistent. ``inconsistent`` holds the ids of meetings
    seen in the part but not handed on: their rows disagreed (changed while being read) or
    one of their rows was malformed; ``withheld`` is the subset withheld for a malformed
    row. ``max_modified_at`` is the newest last-modified time seen (epoch ms).
    """

    window: Window
    meetings: list[Meeting]
    dead_letters: list[DeadLetter]
    inconsistent: frozenset[int]
    rows: int
    pages: int
    requests: int
    max_modified_at: int | None
    withheld: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class WindowRead:
    """A whole window read: every part's results together (see :func:`read_window`)."""

    window: Window
    meetings: list[Meeting]
    dead_letters: list[DeadLetter]
    inconsistent: set[int]
    rows: int
    pages: int
    requests: int
    parts: int
    max_modified_at: int | None


@dataclass(slots=True)
class _Fetched:
    """A first page and the ``per_page`` it was asked with (1 = a probe for the total)."""

    page: ExportPage
    per_page: int
    started: int | None  # the API's clock (unix s) when the request was sent, if known


@dataclass(slots=True)
class _Rows:
    """Every row of a window that fits (or of a verified one-second window)."""

    rows: list[Any]
    pages: int


@dataclass(slots=True)
class _Overflow:
    """A window of more than one second too large to read as it is: to be split."""

    total: int
    sample: list[int]


@dataclass(slots=True)
class _Split:
    """A window read as ``parts``: each part's plan, started ahead of being walked."""

    parts: list[Window]
    estimates: list[float]
    depth: int  # the parts' depth
    tasks: list[asyncio.Task[_Rows | _Split] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tasks = [None] * len(self.parts)


async def _cancel(plan: _Split) -> None:
    """Cancel every read ``plan`` started, and those of its parts' plans."""
    tasks = [task for task in plan.tasks if task is not None]
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, _Split):
            await _cancel(result)


@dataclass(slots=True)
class _Context:
    event_id: int
    label: str
    filters: dict[str, int | str]
    paged_pages: int  # parts planned from now on are paged up to twice this many pages
    max_paged_pages: int
    requests: int = 0
    reported: int = 0

    def paged_failed(self) -> None:
        self.paged_pages //= 2

    def paged_verified(self) -> None:  # only a paged part verifies: paged_pages >= 2
        self.paged_pages = min(self.max_paged_pages, self.paged_pages * 2)


class WindowReader:
    """Reads windows of one API through an :class:`ExportClient`, drift-free."""

    def __init__(
        self,
        client: ExportClient,
        per_page: int,
        *,
        metrics: Metrics | None = None,
        parser: RowParser | None = None,
        max_parts: int = MAX_PARTS,
        max_rereads: int = MAX_REREADS,
        malformed_rereads: int = MALFORMED_REREADS,
        paged_part_pages: int = PAGED_PART_PAGES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= per_page <= 500:
            raise ValueError("per_page must be between 1 and 500")
        self.client = client
        self.per_page = per_page
        # a throwaway registry where none is wanted: the counting code never checks
        self.metrics = metrics if metrics is not None else Metrics()
        self.parser = parser or RowParser(zone=client.settings.zone)
        self.max_parts = max_parts
        self.max_rereads = max_rereads
        self.malformed_rereads = malformed_rereads
        self.paged_part_pages = paged_part_pages  # below 2: only one-page parts
        self._sleep = sleep

    async def read(
        self, event_id: int, window: Window, filters: Mapping[str, int | str] | None = None
    ) -> AsyncIterator[WindowPart]:
        """Yield ``window``'s leaf parts in ascending order, each read completely.

        ``filters`` (other export parameters, e.g. ``created_from`` on a MODIFIED window)
        narrow every request of the read.
        """
        pages = self.paged_part_pages
        ctx = _Context(event_id, str(event_id), dict(filters or {}), pages, pages)
        first = await self._fetch(ctx, window, 1, self.per_page)
        plan = await self._plan(ctx, window, first, 0)
        try:
            async with contextlib.aclosing(self._walk(ctx, window, plan, 0)) as parts:
                async for part in parts:
                    yield part
        finally:
            if isinstance(plan, _Split):
                await _cancel(plan)  # reads started ahead, when the caller stops early

    # --- recursion ----------------------------------------------------------------------------

    def _pageable(self, ctx: _Context) -> int:
        """Rows up to which a window is paged rather than split (per_page: never paged)."""
        return self.per_page * (2 * ctx.paged_pages if ctx.paged_pages >= 2 else 1)

    async def _plan(
        self, ctx: _Context, window: Window, first: _Fetched | None, depth: int
    ) -> _Rows | _Split:
        """Every row of ``window`` if it fits a page, else its parts, their reads started."""
        collected = await self._collect(ctx, window, first)
        if isinstance(collected, _Rows):
            return collected
        return self._split(ctx, window, collected, depth)

    def _split(self, ctx: _Context, window: Window, overflow: _Overflow, depth: int) -> _Split:
        # The first split may face mostly empty seconds (a full export from 0): few parts.
        # Below it, rows were seen to be dense, and more parts save a level of requests.
        fan_out = self.max_parts if depth == 0 else self.max_parts * DEEP_FAN_OUT
        # parts to be paged are planned at half the size they may be paged up to
        part_rows = max(self.per_page, self._pageable(ctx) // 2)
        parts = split(window, overflow.total, part_rows, overflow.sample, fan_out)
        self._count("window_splits", ctx, window.kind)
        plan = _Split(parts, expected_rows(parts, overflow.total, overflow.sample), depth + 1)
        # Parts expected to fit a page are read at once (the limiter bounds concurrency,
        # and they are served in the order they are walked). A part expected to overflow
        # is probed for its total and split (its own parts' reads started) only once the
        # part before it has queued its reads: a probe is a costly count for the API, and
        # queued ahead of those reads it would hold up the rows wanted next.
        for i, estimate in enumerate(plan.estimates):
            if i == 0 or estimate <= self.per_page:
                self._start(ctx, plan, i)
        return plan

    def _start(self, ctx: _Context, plan: _Split, i: int) -> None:
        """Start planning part ``i`` of ``plan`` (once)."""
        if i < len(plan.parts) and plan.tasks[i] is None:
            # a part that may be paged starts with its first full page; one expected to
            # be split with a probe for its total
            per_page = 1 if plan.estimates[i] > self._pageable(ctx) else self.per_page
            plan.tasks[i] = asyncio.create_task(
                self._plan_part(ctx, plan.parts[i], per_page, plan.depth)
            )

    async def _plan_part(
        self, ctx: _Context, window: Window, per_page: int, depth: int
    ) -> _Rows | _Split:
        first = await self._fetch(ctx, window, 1, per_page)
        return await self._plan(ctx, window, first, depth)

    async def _walk(
        self, ctx: _Context, window: Window, plan: _Rows | _Split, depth: int
    ) -> AsyncGenerator[WindowPart, None]:
        """Yield the leaf parts of ``plan`` in ascending order, each read completely."""
        if isinstance(plan, _Rows):
            pieces = self._pieces(window, plan)
            for n, (piece, rows) in enumerate(pieces):
                read = await self._leaf(ctx, piece, rows)
                if isinstance(read, WindowPart):
                    yield read
                    if n + 1 < len(pieces):
                        await asyncio.sleep(0)  # let polls of other events run between pieces
                    continue
                # outgrew a page while re-read: split what is left of the window
                rest = Window(window.kind, piece.start, window.end)
                async with contextlib.aclosing(
                    self._walk(ctx, rest, self._split(ctx, rest, read, depth), depth)
                ) as leaves:
                    async for leaf in leaves:
                        yield leaf
                return
            return
        try:
            for i, part in enumerate(plan.parts):
                self._start(ctx, plan, i)
                if plan.estimates[i] > self.per_page:
                    # a paged part: the next one's first page queues behind its pages
                    self._start(ctx, plan, i + 1)
                task = plan.tasks[i]
                assert task is not None  # noqa: S101 - started just above
                inner = await task
                async with contextlib.aclosing(self._walk(ctx, part, inner, plan.depth)) as leaves:
                    async for leaf in leaves:
                        self._start(ctx, plan, i + 1)  # this part's reads are queued by now
                        yield leaf
        finally:
            await _cancel(plan)

    async def _collect(
        self, ctx: _Context, window: Window, first: _Fetched | None
    ) -> _Rows | _Overflow:
        """Every row of ``window`` if it fits a page or is one second; else its size."""
        if first is None:
            first = await self._fetch(ctx, window, 1, self.per_page)
        while True:
            total = first.page.total
            if first.per_page < self.per_page:  # a probe: it only told the total
                if total == 0:
                    return _Rows([], 1)
                if total > self._pageable(ctx) and window.seconds > 1:
                    return _Overflow(total, [])
                first = await self._fetch(ctx, window, 1, self.per_page)
                continue
            if total <= self.per_page:
                return _Rows(first.page.rows, 1)
            if window.seconds == 1:
                return await self._read_second(ctx, window, first)
            if total <= self._pageable(ctx):
                if first.started is None and window.kind is WindowKind.CREATED:
                    # sent before the API clock was known: "since" would be a guess
                    first = await self._fetch(ctx, window, 1, self.per_page)
                    continue
                paged = await self._page_through(ctx, window, first)
                if paged is not None:
                    ctx.paged_verified()
                    return paged
                self._count("window_rereads", ctx, window.kind)
                ctx.paged_failed()  # its parts, and the next, are planned smaller
            return _Overflow(total, self._sample(first.page.rows, window))

    async def _read_second(self, ctx: _Context, window: Window, first: _Fetched) -> _Rows:
        """Page through a one-second window (it cannot be split) until it verifies."""
        self._count("same_second_ties", ctx, window.kind)
        fetched: _Fetched | None = first
        if first.started is None and window.kind is WindowKind.CREATED:
            fetched = None  # sent before the API clock was known: "since" would be a guess
        for attempt in range(self.max_rereads + 1):
            if attempt:
                self._count("window_rereads", ctx, window.kind)
            if fetched is None:
                fetched = await self._fetch(ctx, window, 1, self.per_page)
                if fetched.page.total <= self.per_page:
                    return _Rows(fetched.page.rows, 1)
            rows = await self._page_through(ctx, window, fetched)
            if rows is not None:
                return rows
            started = fetched.started
            fetched = None
            if window.kind is WindowKind.CREATED and (
                started is not None and self.client.api_now() <= started
            ):
                # "Modified since" cannot tell a change made during the read from one made
                # earlier in the same second: read again once that second is over.
                await self._sleep(1.0)
        raise RetriableSourceError(
            f"window {window} of event {ctx.event_id} kept changing while being paged "
            f"({self.max_rereads + 1} reads); the cycle will be retried"
        )

    async def _page_through(self, ctx: _Context, window: Window, first: _Fetched) -> _Rows | None:
        """Every row of ``window``, paged from its ``first`` page and verified to be one
        consistent set; None when it moved while being paged (or cannot be verified)."""
        if first.started is None and window.kind is WindowKind.CREATED:
            return None  # sent before the API clock was known: "since" would be a guess
        head, started = first.page, first.started
        pages = math.ceil(head.total / self.per_page)
        rest = await asyncio.gather(
            *(self._fetch(ctx, window, n, self.per_page) for n in range(2, pages + 1))
        )
        rows = list(head.rows)
        stable = True
        for other in rest:
            stable = stable and other.page.total == head.total
            rows.extend(other.page.rows)
        stable = stable and len(rows) == head.total and self._distinct(rows)
        if stable and window.kind is WindowKind.CREATED:
            # Rows enter a CREATED window only through a modification: none may have
            # happened since the read began (conservatively, in its first second too).
            assert started is not None  # noqa: S101 - checked above
            since = await self._fetch(ctx, window, 1, 1, {"last_modified_from": started})
            stable = since.page.total == 0
        return _Rows(rows, pages) if stable else None

    # --- leaves -------------------------------------------------------------------------------

    def _pieces(self, window: Window, collected: _Rows) -> list[tuple[Window, _Rows]]:
        """``window``'s rows as consecutive sub-windows of about ``LEAF_ROWS`` rows each.

        A meeting's rows share their created (and modified) second, so a cut at a second
        boundary never splits a meeting. Rows whose second cannot be read (malformed) or
        lies outside the window keep the whole window as one piece.
        """
        rows = collected.rows
        if len(rows) <= LEAF_ROWS or window.seconds == 1:
            return [(window, collected)]
        seconds = self._seconds(window, rows)
        if seconds is None:
            return [(window, collected)]
        order = sorted(range(len(rows)), key=seconds.__getitem__)
        pieces: list[tuple[Window, _Rows]] = []
        start = window.start
        taken: list[Any] = []
        for k, i in enumerate(order):
            taken.append(rows[i])
            second = seconds[i]
            last = k + 1 == len(order)
            if not last and len(taken) >= LEAF_ROWS and seconds[order[k + 1]] != second:
                pieces.append((Window(window.kind, start, second), _Rows(taken, 0)))
                start, taken = second + 1, []
        pieces.append((Window(window.kind, start, window.end), _Rows(taken, 0)))
        pieces[0][1].pages = collected.pages  # the pages are counted once, on the first
        return pieces

    def _seconds(self, window: Window, rows: list[Any]) -> list[int] | None:
        """Each row's second of ``window``'s kind; None if one cannot be read or lies
        outside the window. A meeting's rows share their time: each text is read once."""
        second_of, kind = self.parser.second_of, window.kind
        key = self.parser.mapping.time_key(kind)
        known: dict[object, int | None] = {}
        seconds: list[int] = []
        try:
            for row in rows:
                value = row.get(key) if type(row) is dict else None
                if value is None:
                    return None
                if value in known:
                    second = known[value]
                else:
                    second = known[value] = second_of(row, kind, window)
                if second is None or not window.start <= second <= window.end:
                    return None
                seconds.append(second)
        except TypeError:  # an unhashable time value: a malformed row
            return None
        return seconds

    async def _leaf(
        self, ctx: _Context, window: Window, collected: _Rows
    ) -> WindowPart | _Overflow:
        """Assemble a leaf; re-read it while malformed rows withhold meetings.

        A re-read that finds the window grown beyond a page returns its size instead: the
        window is then split and read like any other (a row the first read could not
        attribute may belong to any meeting of it, so no partial result is kept).
        """
        resolved: dict[int, Meeting] = {}
        # Held back by any read: a meeting withheld by one read may be missing from the
        # next (its only row unattributable there), and must not vanish from the part.
        withheld: set[int] = set()
        inconsistent: set[int] = set()
        pages = collected.pages
        max_modified: int | None = None
        attempt = 0
        while True:
            parsed, errors, raws = self._parse(ctx.event_id, window, collected.rows)
            for row in parsed:
                if max_modified is None or row.modified_at > max_modified:
                    max_modified = row.modified_at
            assembled = assemble(parsed, errors)
            for meeting in assembled.meetings:
                resolved[meeting.meeting_id] = meeting
            withheld |= assembled.withheld
            inconsistent |= assembled.inconsistent
            unresolved = frozenset((withheld | inconsistent) - resolved.keys())
            if not errors or attempt >= self.malformed_rereads:
                break
            if not (assembled.withheld - resolved.keys()) and not _unattributed(errors):
                break
            attempt += 1
            again = await self._collect(ctx, window, None)
            if not isinstance(again, _Rows):
                return again
            collected = again
            pages += again.pages
        held = Assembled(assembled.meetings, frozenset(inconsistent), frozenset(withheld))
        return self._part(
            ctx,
            window,
            resolved,
            held,
            unresolved,
            errors,
            raws,
            pages,
            len(collected.rows),
            max_modified,
        )

    def _part(
        self,
        ctx: _Context,
        window: Window,
        resolved: dict[int, Meeting],
        last: Assembled,
        unresolved: frozenset[int],
        errors: Sequence[RowError],
        raws: Sequence[object],
        pages: int,
        rows: int,
        max_modified: int | None,
    ) -> WindowPart:
        letters = [
            DeadLetter(ctx.event_id, raw_text(raw), error.reason, window, error.meeting_id)
            for error, raw in zip(errors, raws, strict=True)
            if error.meeting_id is None or error.meeting_id not in resolved
        ]
        withheld = frozenset(last.withheld & unresolved)
        inconsistent = frozenset(last.inconsistent & unresolved) | withheld
        # Dead letters are counted when their transaction commits (the engine), not
        # here: a part is read again by a retried cycle or the next reconciliation.
        if inconsistent - withheld:
            reason = "inconsistent"
            self.metrics.meetings_withheld.labels(ctx.label, reason).inc(
                len(inconsistent - withheld)
            )
        if withheld:
            self.metrics.meetings_withheld.labels(ctx.label, "malformed_row").inc(len(withheld))
        requests = ctx.requests - ctx.reported
        ctx.reported = ctx.requests
        return WindowPart(
            window=window,
            meetings=sorted(resolved.values(), key=lambda m: m.meeting_id),
            dead_letters=letters,
            inconsistent=inconsistent,
            rows=rows,
            pages=pages,
            requests=requests,
            max_modified_at=max_modified,
            withheld=withheld,
        )

    def _parse(
        self, event_id: int, window: Window, rows: list[Any]
    ) -> tuple[list[ParsedRow], list[RowError], list[object]]:
        # The rows came for ``window``: its bounds tell which instant a repeated local
        # time of its kind is (daylight saving, see ``connector.source.local_time``).
        parse = self.parser.parse
        parsed: list[ParsedRow] = []
        errors: list[RowError] = []
        raws: list[object] = []
        for raw in rows:
            try:
                parsed.append(parse(raw, event_id, window))
            except RowError as error:
                errors.append(error)
                raws.append(raw)
        return parsed, errors, raws

    # --- helpers ------------------------------------------------------------------------------

    async def _fetch(
        self,
        ctx: _Context,
        window: Window,
        page: int,
        per_page: int,
        extra: dict[str, int | str] | None = None,
    ) -> _Fetched:
        ctx.requests += 1
        started = self.client.api_now() if self.client.api_clock_known else None
        params = {**ctx.filters, **(extra or {})}
        result = await self.client.fetch_page(ctx.event_id, window, page, per_page, params)
        return _Fetched(result, per_page, started)

    def _sample(self, rows: list[Any], window: Window) -> list[int]:
        second_of = self.parser.second_of
        return [s for s in (second_of(r, window.kind, window) for r in rows) if s is not None]

    def _distinct(self, rows: list[Any]) -> bool:
        """No (meeting, account) pair twice: an unstable order would repeat some."""
        m = self.parser.mapping
        meeting_key, account_key = m.meeting_id, m.account_id
        pairs = [
            pair
            for pair in ((r.get(meeting_key), r.get(account_key)) for r in rows if type(r) is dict)
            if pair[0] is not None and pair[1] is not None
        ]
        try:
            return len(set(pairs)) == len(pairs)
        except TypeError:  # an unhashable id: a malformed row, judged by the parser
            hashable = [pair for pair in pairs if _hashable(pair)]
            return len(set(hashable)) == len(hashable)

    def _count(self, name: str, ctx: _Context, kind: WindowKind) -> None:
        getattr(self.metrics, name).labels(ctx.label, kind.value).inc()


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _unattributed(errors: Sequence[RowError]) -> bool:
    return any(e.meeting_id is None for e in errors)


async def read_window(
    client: ExportClient, event_id: int, window: Window, per_page: int | None = None
) -> WindowRead:
    """Read ``window`` completely and return every part's results together."""
    reader = WindowReader(client, per_page or client.settings.api_per_page)
    meetings: list[Meeting] = []
    letters: list[DeadLetter] = []
    inconsistent: set[int] = set()
    rows = pages = requests = parts = 0
    newest: int | None = None
    async for part in reader.read(event_id, window):
        meetings.extend(part.meetings)
        letters.extend(part.dead_letters)
        inconsistent |= part.inconsistent
        rows += part.rows
        pages += part.pages
        requests += part.requests
        parts += 1
        if part.max_modified_at is not None and (newest is None or part.max_modified_at > newest):
            newest = part.max_modified_at
    return WindowRead(window, meetings, letters, inconsistent, rows, pages, requests, parts, newest)
