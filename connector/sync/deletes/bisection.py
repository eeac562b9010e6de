"""The delete check's bisection: which ranges of creation time to count, and which to read.

Pure (sans-io): ranges and row counts in, the next request out. The I/O shell
(``connector.delete_checker``) sends each request and hands its answer back.

Why counts find deletes: a new meeting always lands at the current second, so the rows of
an old range of creation seconds change only when a meeting of it is deleted or its
participants change (which polling sees and commits, so the state catches up). The check
asks the API for the rows of the whole judged range (one ``per_page=1`` request: its
``total``) and compares them with the rows the state tracks there (``RowIndex``): equal
means nothing vanished, at a cost of one request whatever the event's size. A range that
differs is cut into ``fan_out`` parts of about equal tracked rows; all parts but the last
are counted side by side and the last one's count is the parent's minus theirs (no
request), so a delete costs about (fan_out - 1) * log_fan_out(rows / per_page) counts plus
one read of its leaf, in log_fan_out(rows / per_page) round trips (the check's duration
adds to a delete's latency: 4 parts halve the round trips of halving, for 1.5x the
counts). A leaf (its rows fit one page,
or it is one second) is read in full; which of its tracked meetings are gone is then the
reconcile delete policy's decision (``connector.deletes``), taken by the shell against the
committed state.

A difference that is not a delete (a participant change polling has not committed yet, a
row written late, a meeting held back as malformed) only costs requests: the leaf read
finds every tracked meeting present and deletes nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from connector.ops.labels import Ask, CheckOutcome


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Creation seconds ``first..last``, both included (unix s)."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"empty span {self.first}..{self.last}")


@dataclass(frozen=True, slots=True)
class Request:
    """What the shell should send next."""

    ask: Ask
    span: Span


class TrackedRows(Protocol):
    """The state's rows by creation second (implemented by ``connector.row_index.RowIndex``)."""

    def rows(self, first_s: int, last_s: int) -> int: ...  # noqa: D102

    def split_seconds(self, first_s: int, last_s: int, parts: int) -> list[int]: ...  # noqa: D102


def judged_span(
    created_through: int, *, untracked_through: int | None = None, floor: int = 0
) -> Span | None:
    """The creation seconds a check may judge: those behind the committed created
    watermark (later rows may not be committed yet), after ``untracked_through``
    (snapshot mode ``never``: older meetings are not tracked, so their rows would always
    differ). None when there is nothing to judge yet."""
    first = floor if untracked_through is None else max(floor, untracked_through + 1)
    if created_through < first:
        return None
    return Span(first, created_through)


class Bisection:
    """One check as a state machine: take ``next_requests()``, ``answer()`` each (in any
    order, concurrently if you like: they are independent), until none is left.

    ``leaf_rows``: rows one read request returns (the reader's ``per_page``); ``fan_out``:
    the parts a differing range is cut into. Counts are
    compared with ``tracked`` when they are answered, so the state may move in between
    (polling commits); a count that no longer matches only costs a request or a read.
    """

    def __init__(self, span: Span, tracked: TrackedRows, leaf_rows: int, fan_out: int = 4) -> None:
        if leaf_rows < 1 or fan_out < 2:
            raise ValueError("leaf_rows must be >= 1 and fan_out >= 2")
        self._tracked = tracked
        self._leaf_rows = leaf_rows
        self._fan_out = fan_out
        self._queue: deque[Request] = deque([Request(Ask.COUNT, span)])
        # the parts of a differing range but its last -> their family (see _Family)
        self._families: dict[Span, _Family] = {}
        self._asked: set[Request] = set()
        self.requests: dict[Ask, int] = dict.fromkeys(Ask, 0)

    @property
    def differed(self) -> bool:
        """Whether a range was found to differ (a read was asked)."""
        return self.requests[Ask.READ] > 0

    @property
    def done(self) -> bool:
        """Whether every request was sent and answered."""
        return not self._queue and not self._asked

    def next_requests(self) -> list[Request]:
        """Every request that can be sent now (empty: wait for answers, or ``done``)."""
        ready = list(self._queue)
        self._queue.clear()
        for request in ready:
            self._asked.add(request)
            self.requests[request.ask] += 1
        return ready

    def answer(self, request: Request, rows: int) -> None:
        """The API's rows of ``request.span``: its count, or the rows a read returned."""
        if request not in self._asked:
            raise RuntimeError(f"answer to {request}, which was not asked")
        self._asked.discard(request)
        if request.ask is Ask.COUNT:
            self._judge(request.span, rows)
        family = self._families.pop(request.span, None)
        if family is not None:
            family.unknown -= 1
            family.rows_left -= rows
            if not family.unknown:
                self._judge(family.last, family.rows_left)

    def _judge(self, span: Span, api_rows: int) -> None:
        tracked = self._tracked.rows(span.first, span.last)
        if api_rows == tracked:
            return
        cuts = self._tracked.split_seconds(span.first, span.last, self._fan_out)
        if max(api_rows, tracked) <= self._leaf_rows or not cuts:
            self._queue.append(Request(Ask.READ, span))
            return
        bounds = [span.first, *(c + 1 for c in cuts), span.last + 1]
        parts = [Span(a, b - 1) for a, b in pairwise(bounds)]
        family = _Family(parts[-1], len(parts) - 1, api_rows)
        for part in parts[:-1]:
            self._families[part] = family
            # A part that fits half a page is read at once: the read tells its rows too.
            small = self._tracked.rows(part.first, part.last) <= self._leaf_rows // 2
            self._queue.append(Request(Ask.READ if small else Ask.COUNT, part))


@dataclass(slots=True)
class _Family:
    """The parts of a differing range: the last one's count is the parent's minus the
    others' (once all of them are answered)."""

    last: Span
    unknown: int  # parts answered so far are subtracted from rows_left
    rows_left: int


__all__ = ["Ask", "Bisection", "CheckOutcome", "Request", "Span", "TrackedRows", "judged_span"]
