"""Reading windows drift-free: the executor of :mod:`connector.source.drift_rules`.

The drift rules decide what to request and when a window is proven read, as a sans-io
plan; :class:`WindowReader` runs that plan against an :class:`ExportClient`: it sends the
requests a ``Fetch`` asks for at once (the client's limiter bounds concurrency), runs every
spawned part plan as a task so its reads go ahead of being needed (look-ahead), counts the
requests behind each part and the metrics, and cancels every read still running when the
caller stops early.

Parts come out in ascending time order as :class:`WindowPart` values: after a part, every
row of its kind up to ``part.window.end`` has been read, so the engine may advance its
watermark to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.config.settings import ApiSettings
from connector.core.model import Meeting
from connector.ops.labels import WithheldReason
from connector.ops.metrics import Metrics
from connector.source.client import ExportClient
from connector.source.drift_rules import (
    MALFORMED_REREADS,
    MAX_REREADS,
    PAGED_PART_PAGES,
    Rules,
    read,
)
from connector.source.export_page import ExportPage
from connector.source.leaf_parts import LEAF_ROWS, WindowPart
from connector.source.plan_commands import (
    Answer,
    Command,
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
from connector.source.rows import DeadLetter, RowParser
from connector.source.windows import MAX_PARTS, Window

__all__ = [
    "LEAF_ROWS",
    "MALFORMED_REREADS",
    "MAX_REREADS",
    "PAGED_PART_PAGES",
    "WindowPart",
    "WindowRead",
    "WindowReader",
    "read_window",
]


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
class _Run:
    """One read in progress: its spawned plans not yet joined, the requests sent so far."""

    event_id: int
    label: str
    filters: dict[str, int | str]
    tasks: dict[int, asyncio.Task[Any]] = field(default_factory=dict)
    spawned: int = 0
    requests: int = 0
    reported: int = 0


class PageSource(Protocol):
    """What the reader needs of the export API: an :class:`ExportClient` (or, in the
    executor's tests, an in-memory API)."""

    @property
    def settings(self) -> ApiSettings: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def api_clock_known(self) -> bool: ...

    def api_now(self) -> int: ...

    async def fetch_page(
        self,
        event_id: int,
        window: Window | None,
        page: int,
        per_page: int,
        extra_params: Mapping[str, int | str] | None = None,
    ) -> ExportPage: ...


class WindowReader:
    """Reads windows of one API through an :class:`ExportClient`, drift-free."""

    def __init__(
        self,
        client: PageSource,
        per_page: int,
        *,
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
        self.metrics = m = client.metrics
        self._counters = {
            Occurrence.SPLIT: m.window_splits,
            Occurrence.REREAD: m.window_rereads,
            Occurrence.SAME_SECOND_TIE: m.same_second_ties,
        }
        # The field rules apply as rows are parsed: nothing downstream sees them in clear.
        self.parser = parser or RowParser(
            zone=client.settings.zone, masker=client.settings.masker()
        )
        self.max_parts = max_parts
        self.max_rereads = max_rereads
        self.malformed_rereads = malformed_rereads
        self.paged_part_pages = paged_part_pages  # below 2: only one-page parts
        self._sleep = sleep

    async def read(
        self, event_id: int, window: Window, filters: Mapping[str, int | str] | None = None
    ) -> AsyncGenerator[WindowPart, None]:
        """Yield ``window``'s leaf parts in ascending order, each read completely.

        ``filters`` (other export parameters, e.g. ``created_from`` on a MODIFIED window)
        narrow every request of the read.
        """
        pages = self.paged_part_pages
        rules = Rules(
            event_id,
            self.per_page,
            self.parser,
            self.max_parts,
            pages,
            pages,
            self.max_rereads,
            self.malformed_rereads,
        )
        run = _Run(event_id, str(event_id), dict(filters or {}))
        plan = read(rules, window)
        reply: Any = None
        try:
            while True:
                try:
                    command = plan.send(reply)
                except StopIteration:
                    return
                if isinstance(command, Emit):
                    yield self._hand_on(run, command.part)
                    reply = None
                    await asyncio.sleep(0)  # let polls of other events run between parts
                else:
                    reply = await self._do(run, command)
        finally:
            plan.close()
            tasks = list(run.tasks.values())  # reads started ahead, when the caller stops early
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drive(self, run: _Run, plan: Steps[Any]) -> Any:
        """Run a spawned plan (a part's reads) to its result."""
        reply: Any = None
        while True:
            try:
                command = plan.send(reply)
            except StopIteration as done:
                return done.value
            reply = await self._do(run, command)

    async def _do(self, run: _Run, command: Command) -> Any:
        if isinstance(command, Fetch):
            return await asyncio.gather(*(self._fetch(run, r) for r in command.requests))
        if isinstance(command, Spawn):
            run.spawned += 1
            run.tasks[run.spawned] = asyncio.create_task(self._drive(run, command.plan))
            return run.spawned
        if isinstance(command, Join):
            # joined once: the task (and the rows it holds) is let go as soon as it is done
            task = run.tasks[command.handle]
            result = await task
            del run.tasks[command.handle]
            return result
        if isinstance(command, Sleep):
            await self._sleep(command.seconds)
            return None
        if isinstance(command, Count):
            self._counters[command.what].labels(run.label, command.kind).inc()
            return None
        raise TypeError(f"a spawned plan cannot {command!r}")  # Emit: only the read's own

    async def _fetch(self, run: _Run, request: PageRequest) -> Answer:
        run.requests += 1
        client = self.client
        started = client.api_now() if client.api_clock_known else None
        params = {**run.filters, **request.params}
        page = await client.fetch_page(
            run.event_id, request.window, request.page, request.per_page, params
        )
        return Answer(request, page.rows, page.total, started, client.api_now())

    def _hand_on(self, run: _Run, part: WindowPart) -> WindowPart:
        """``part`` with the requests sent since the last one; its withheld meetings counted."""
        # Dead letters are counted when their transaction commits (the engine), not
        # here: a part is read again by a retried cycle or the next reconciliation.
        withheld = self.metrics.meetings_withheld
        if part.inconsistent - part.withheld:
            withheld.labels(run.label, WithheldReason.INCONSISTENT).inc(
                len(part.inconsistent - part.withheld)
            )
        if part.withheld:
            withheld.labels(run.label, WithheldReason.MALFORMED_ROW).inc(len(part.withheld))
        requests, run.reported = run.requests - run.reported, run.requests
        return dataclasses.replace(part, requests=requests)


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
