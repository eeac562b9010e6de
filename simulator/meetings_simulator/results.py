"""Materialised export results: the sorted rows of a filter, kept current on every write.

Paging through a large export must not recompute it for every page, and with background
churn a cache invalidated by every write would recompute it anyway. So each cached
:class:`ResultSet` holds its rows in ascending sort-key order and each write patches it in
place (remove the old version's rows, insert the new one's, by bisect). Descending pages
are read from the end of the same list.

Building a set renders and sorts every row of its filter (266,000 rows at 100,000 meetings,
most of a second). The simulator serves every client from one event loop, so the server
builds in steps (:func:`build_steps`) and answers other requests between them, as a real
API's database does not stop other queries for one export; writes made meanwhile are
logged (:meth:`ResultCache.watch`) and applied to the set once it is built.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from operator import attrgetter

from meetings_simulator.model import SimMeeting, SimParticipant
from meetings_simulator.query import Order, OrderBy, RowFilter

#: A row as the store keeps it: (meeting part, participant part) of its JSON text.
RowParts = tuple[str, str]
RowKey = tuple[int, ...]
#: Renders a meeting: (participant, meeting part, participant part) per row.
Renderer = Callable[[SimMeeting], list[tuple[SimParticipant, str, str]]]
#: Meetings rendered between two steps of a build (~5 ms of work).
BUILD_STEP = 2_000


def matches(m: SimMeeting, f: RowFilter) -> bool:
    """Whether meeting ``m`` passes every bound of ``f`` (all bounds inclusive)."""
    modified = m.modified_key
    if modified is None and (f.modified_from is not None or f.modified_to is not None):
        return False
    return (
        (f.modified_from is None or (modified is not None and modified >= f.modified_from))
        and (f.modified_to is None or (modified is not None and modified <= f.modified_to))
        and (f.created_from is None or m.created_at >= f.created_from)
        and (f.created_to is None or m.created_at <= f.created_to)
        and (f.time_from is None or m.start >= f.time_from)
        and (f.time_to is None or m.start <= f.time_to)
        and (f.account_id is None or f.account_id in m.account_ids)
    )


def row_key(order_by: OrderBy, m: SimMeeting, p: SimParticipant) -> RowKey:
    """The ascending sort key of one row; unique, so the order is total and stable."""
    if order_by == "account_id":
        return (p.account_id, m.meeting_id)
    if order_by == "time":
        return (m.start, m.meeting_id, p.account_id)
    return (m.meeting_id, p.account_id)


class ResultSet:
    """The rows matching one filter, ascending by :func:`row_key`."""

    __slots__ = ("filter", "keys", "rows")

    def __init__(self, row_filter: RowFilter, keys: list[RowKey], rows: list[RowParts]):
        """A set of ``rows`` under their ascending ``keys`` (see :func:`build_steps`)."""
        self.filter = row_filter
        self.keys = keys
        self.rows = rows

    @classmethod
    def build(
        cls, row_filter: RowFilter, meetings: list[SimMeeting], render: Renderer
    ) -> ResultSet:
        """The set of ``meetings`` (the filter's matches), built at once."""
        steps = build_steps(row_filter, meetings, render)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: ResultSet = done.value
                return result

    def __len__(self) -> int:
        return len(self.rows)

    def page(self, offset: int, per_page: int, order: Order) -> list[RowParts]:
        """Rows ``offset .. offset+per_page-1`` in ``order``."""
        if order == "ASC":
            return self.rows[offset : offset + per_page]
        stop = len(self.rows) - offset
        if stop <= 0:
            return []
        return self.rows[max(0, stop - per_page) : stop][::-1]

    def apply(self, old: SimMeeting | None, new: SimMeeting | None, render: Renderer) -> None:
        """Replace ``old``'s rows (if it matched) with ``new``'s (if it matches)."""
        f = self.filter
        if old is not None and matches(old, f):
            for p in old.participants:
                key = row_key(f.order_by, old, p)
                pos = bisect.bisect_left(self.keys, key)
                if pos == len(self.keys) or self.keys[pos] != key:  # pragma: no cover
                    raise RuntimeError(f"result set lost row {key}")
                del self.keys[pos]
                del self.rows[pos]
        if new is not None and matches(new, f):
            for p, head, tail in render(new):
                key = row_key(f.order_by, new, p)
                pos = bisect.bisect_left(self.keys, key)
                self.keys.insert(pos, key)
                self.rows.insert(pos, (head, tail))


def build_steps(
    row_filter: RowFilter, meetings: list[SimMeeting], render: Renderer, step: int = BUILD_STEP
) -> Generator[None, None, ResultSet]:
    """Build the set of ``meetings`` (the filter's matches, as they were when the build
    began), yielding after every ``step`` meetings rendered; returns the set."""
    order_by = row_filter.order_by
    if order_by == "time":
        meetings.sort(key=attrgetter("start", "meeting_id"))
    else:
        meetings.sort(key=attrgetter("meeting_id"))
    keyed: list[tuple[RowKey, RowParts]] = []
    for start in range(0, len(meetings), step):
        keyed.extend(
            (row_key(order_by, m, p), (h, t))
            for m in meetings[start : start + step]
            for p, h, t in render(m)
        )
        yield
    if order_by == "account_id":
        keyed.sort(key=lambda item: item[0])
    return ResultSet(row_filter, [k for k, _ in keyed], [r for _, r in keyed])


@dataclass(slots=True, eq=False)
class WriteLog:
    """The writes to one event while a set of it is built, to apply once it is.

    Compared by identity (``eq=False``): each build watches with its own log, and builds
    of one event run at once (other filters of it, or the build that replaces a cancelled
    one), their logs equal in value while nothing is written. Compared by value,
    :meth:`ResultCache.unwatch` removed the first *equal* log: a build ending stopped
    another build's log (whose set then missed the writes made after) and left its own
    logging, and the other build's unwatch later raised ``ValueError`` (issue 30 item 4).
    """

    event_id: int
    changes: list[tuple[SimMeeting | None, SimMeeting | None]] = field(default_factory=list)
    #: the event was bulk-loaded meanwhile: the set being built is stale, build it again
    reloaded: bool = False

    def replay(self, result: ResultSet, render: Renderer) -> None:
        """Bring ``result`` (built from the meetings as they were) up to date."""
        for old, new in self.changes:
            result.apply(old, new, render)


class ResultCache:
    """The most recently used result sets (the sort direction is not part of the key)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._sets: OrderedDict[RowFilter, ResultSet] = OrderedDict()
        self._logs: list[WriteLog] = []

    def watch(self, event_id: int) -> WriteLog:
        """Log the event's writes from now on, until :meth:`unwatch`."""
        log = WriteLog(event_id)
        self._logs.append(log)
        return log

    def unwatch(self, log: WriteLog) -> None:
        """Stop logging into ``log`` (this very log: logs compare by identity; one not
        watched, e.g. unwatched twice, is a bug and raises ``ValueError``)."""
        self._logs.remove(log)

    @staticmethod
    def key(row_filter: RowFilter) -> RowFilter:
        """The cache key of a filter: the filter in ascending order."""
        return dataclasses.replace(row_filter, order="ASC")

    def get(self, row_filter: RowFilter) -> ResultSet | None:
        """The cached set of ``row_filter``, marked most recently used."""
        key = self.key(row_filter)
        found = self._sets.get(key)
        if found is not None:
            self._sets.move_to_end(key)
        return found

    def put(self, result: ResultSet) -> None:
        """Cache ``result``, evicting the least recently used beyond capacity."""
        self._sets[result.filter] = result
        self._sets.move_to_end(result.filter)
        while len(self._sets) > self.capacity:
            self._sets.popitem(last=False)

    def on_change(self, old: SimMeeting | None, new: SimMeeting | None, render: Renderer) -> None:
        """Patch every cached set of the meeting's event."""
        event_id = (new or old).event_id  # type: ignore[union-attr]
        for result in self._sets.values():
            if result.filter.event_id == event_id:
                result.apply(old, new, render)
        for log in self._logs:
            if log.event_id == event_id:
                log.changes.append((old, new))

    def drop_event(self, event_id: int) -> None:
        """Forget every set of an event (after a bulk load)."""
        for key in [k for k in self._sets if k.event_id == event_id]:
            del self._sets[key]
        for log in self._logs:
            if log.event_id == event_id:
                log.reloaded = True
