"""The in-memory meeting store: writes with history, and the export's filter semantics.

Every write stamps ``updated_at`` with the clock's current second (a write that changes
nothing is not a write), bumps the meeting's ``version`` and appends to its history.
Queries select candidates through the narrowest index, filter with every bound
(inclusive), sort, and flatten meetings into rows; the flattened result of a filter is
cached until the event's next write, so paging through it costs a slice per page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from meetings_simulator.errors import MeetingNotFound
from meetings_simulator.index import EventIndex, SortedPairs
from meetings_simulator.model import SimMeeting, SimParticipant, sorted_participants
from meetings_simulator.query import ExportQuery, RowFilter
from meetings_simulator.render import (
    TimeFormatter,
    compact_json,
    meeting_fields,
    participant_fields,
)
from meetings_simulator.results import BUILD_STEP, ResultCache, ResultSet, build_steps, matches

UPDATABLE_FIELDS = frozenset(
    {
        "status",
        "start",
        "duration_minutes",
        "location",
        "participants",
        "title",
        "meeting_type",
        "notes",
    }
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One version a meeting had: ``seeded``, ``created``, ``updated`` or ``deleted``.

    ``at`` is the second of the change (for a seeded meeting: its ``updated_at``); a
    deletion has ``meeting`` None and the version after the last one.
    """

    meeting_id: int
    event_id: int
    version: int
    at: int
    kind: str
    meeting: SimMeeting | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of export rows plus the size of the whole filtered set."""

    total: int
    rows: list[str]


class MeetingStore:
    """Meetings of every event, their history, indexes and rendered rows."""

    def __init__(
        self,
        now: Callable[[], int],
        formatter: TimeFormatter,
        *,
        modified_at_creation: bool = True,
        build_step: int = BUILD_STEP,
    ) -> None:
        self._now = now
        #: False: creation leaves the filters' last-modified time unset (``SimMeeting.unstamped``)
        self.modified_at_creation = modified_at_creation
        self.formatter = formatter
        self._meetings: dict[int, SimMeeting] = {}
        self._events: dict[int, EventIndex] = {}
        self._history: dict[int, list[HistoryEntry]] = {}
        self._heads: dict[int, tuple[int, str]] = {}  # meeting_id -> (version, head)
        self._tails: dict[SimParticipant, str] = {}
        self._results = ResultCache()
        #: meetings rendered per step of a result set :meth:`serve` builds
        self.build_step = build_step
        #: result sets being built by :meth:`serve`, awaited by requests for the same filter
        self._building: dict[RowFilter, asyncio.Future[ResultSet]] = {}
        self._next_id = 1

    # -- reads -------------------------------------------------------------------------

    def get(self, meeting_id: int) -> SimMeeting:
        """The current version of a meeting, or :class:`MeetingNotFound`."""
        try:
            return self._meetings[meeting_id]
        except KeyError:
            raise MeetingNotFound(meeting_id) from None

    def meetings(self, event_id: int) -> list[SimMeeting]:
        """Current versions of the event's meetings, by meeting id."""
        index = self._events.get(event_id)
        if index is None:
            return []
        return [self._meetings[mid] for mid in index.by_id]

    def history(self, event_id: int) -> list[HistoryEntry]:
        """Every version of every meeting the event ever had, by (meeting_id, version)."""
        entries = [e for h in self._history.values() if h[0].event_id == event_id for e in h]
        entries.sort(key=lambda e: (e.meeting_id, e.version))
        return entries

    def event_ids(self) -> list[int]:
        """Events that have (or had) meetings."""
        return sorted(self._events)

    def count(self, event_id: int) -> int:
        """Number of current meetings of an event."""
        index = self._events.get(event_id)
        return 0 if index is None else len(index.by_id)

    def random_meeting(self, event_id: int, rng: random.Random) -> SimMeeting | None:
        """A uniformly chosen current meeting of the event, or None if it has none."""
        index = self._events.get(event_id)
        if index is None or not index.by_id:
            return None
        return self._meetings[index.by_id[rng.randrange(len(index.by_id))]]

    # -- writes ------------------------------------------------------------------------

    def allocate_id(self) -> int:
        """Reserve the next meeting id (ids are never reused)."""
        mid = self._next_id
        self._next_id += 1
        return mid

    def create(
        self,
        *,
        event_id: int,
        start: int,
        duration_minutes: int,
        status: str,
        participants: Sequence[SimParticipant],
        location: str | None = None,
        title: str = "",
        meeting_type: str = "one-to-one",
        notes: str | None = None,
    ) -> SimMeeting:
        """Create a meeting now: ``created_at == updated_at ==`` the current second (which
        ``last_modified_*`` filters match unless ``modified_at_creation`` is False)."""
        now = self._now()
        meeting = SimMeeting(
            meeting_id=self.allocate_id(),
            event_id=event_id,
            status=status,
            start=start,
            duration_minutes=duration_minutes,
            location=location,
            created_at=now,
            updated_at=now,
            participants=sorted_participants(tuple(participants)),
            title=title,
            meeting_type=meeting_type,
            notes=notes,
            unstamped=not self.modified_at_creation,
        )
        self._meetings[meeting.meeting_id] = meeting
        self._index(event_id).add(meeting)
        self._results.on_change(None, meeting, self._parts)
        self._history[meeting.meeting_id] = [
            HistoryEntry(meeting.meeting_id, event_id, 1, now, "created", meeting)
        ]
        return meeting

    def bulk_load(self, meetings: Iterable[SimMeeting]) -> int:
        """Load pre-built meetings (seeding): indexes are built by sorting once."""
        loaded: dict[int, list[SimMeeting]] = {}
        for meeting in meetings:
            self._meetings[meeting.meeting_id] = meeting
            self._history[meeting.meeting_id] = [
                HistoryEntry(
                    meeting.meeting_id,
                    meeting.event_id,
                    meeting.version,
                    meeting.updated_at,
                    "seeded",
                    meeting,
                )
            ]
            loaded.setdefault(meeting.event_id, []).append(meeting)
            self._next_id = max(self._next_id, meeting.meeting_id + 1)
        for event_id, batch in loaded.items():
            existing = self.meetings(event_id)
            self._events[event_id] = EventIndex([*existing, *batch])
            self._results.drop_event(event_id)
        return sum(len(batch) for batch in loaded.values())

    def update(self, meeting_id: int, **changes: Any) -> SimMeeting:
        """Apply ``changes`` (fields of :data:`UPDATABLE_FIELDS`); no-op changes do nothing."""
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        old = self.get(meeting_id)
        if "participants" in changes:
            changes["participants"] = sorted_participants(tuple(changes["participants"]))
        candidate = dataclasses.replace(old, **changes)
        if candidate.same_content(old):
            return old
        now = self._now()
        new = dataclasses.replace(
            candidate, updated_at=now, version=old.version + 1, unstamped=False
        )
        self._meetings[meeting_id] = new
        self._events[new.event_id].replace(old, new)
        self._results.on_change(old, new, self._parts)
        self._history[meeting_id].append(
            HistoryEntry(meeting_id, new.event_id, new.version, now, "updated", new)
        )
        return new

    def delete(self, meeting_id: int) -> None:
        """Hard-delete a meeting: its rows vanish; history keeps a tombstone."""
        old = self.get(meeting_id)
        del self._meetings[meeting_id]
        self._heads.pop(meeting_id, None)
        self._events[old.event_id].remove(old)
        self._results.on_change(old, None, self._parts)
        self._history[meeting_id].append(
            HistoryEntry(meeting_id, old.event_id, old.version + 1, self._now(), "deleted", None)
        )

    def _index(self, event_id: int) -> EventIndex:
        index = self._events.get(event_id)
        if index is None:
            index = self._events[event_id] = EventIndex()
        return index

    # -- export ------------------------------------------------------------------------

    def query(self, query: ExportQuery) -> Page:
        """One page of rows for ``query``, computed against the current data."""
        counted = self._count(query)
        if counted is not None:
            return counted
        return _page_of(query, self.result(query.filter))

    async def serve(self, query: ExportQuery) -> Page:
        """:meth:`query` for a server: a result set not cached yet is built in steps,
        other requests (and writes) served between them; a request for a set being
        built waits for that build."""
        counted = self._count(query)
        if counted is not None:
            return counted
        return _page_of(query, await self._result_soon(query.filter))

    def result(self, row_filter: RowFilter) -> ResultSet | None:
        """The (cached, always current) rows of ``row_filter``; None for an unknown event."""
        index = self._events.get(row_filter.event_id)
        if index is None:
            return None
        cached = self._results.get(row_filter)
        if cached is not None:
            return cached
        key = ResultCache.key(row_filter)
        result = ResultSet.build(key, self._matches(index, key), self._parts)
        self._results.put(result)
        return result

    async def _result_soon(self, row_filter: RowFilter) -> ResultSet | None:
        key = ResultCache.key(row_filter)
        building = self._building.get(key)
        if building is not None:
            try:
                return await asyncio.shield(building)
            except asyncio.CancelledError:
                if not building.cancelled():
                    raise  # this request was cancelled
                return await self._result_soon(row_filter)  # the build was: build anew
        index = self._events.get(row_filter.event_id)
        if index is None or self._results.get(row_filter) is not None:
            return self.result(row_filter)
        built: asyncio.Future[ResultSet] = asyncio.get_running_loop().create_future()
        self._building[key] = built
        log = self._results.watch(key.event_id)
        try:
            steps = build_steps(key, self._matches(index, key), self._parts, self.build_step)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    result: ResultSet = done.value
                    break
                await asyncio.sleep(0)  # other requests and writes go on meanwhile
            if log.reloaded:  # bulk-loaded meanwhile: what was built is stale
                result = ResultSet.build(
                    key, self._matches(self._events[key.event_id], key), self._parts
                )
            else:
                log.replay(result, self._parts)
            self._results.put(result)
            built.set_result(result)
            return result
        except asyncio.CancelledError:
            built.cancel()  # its waiters build anew
            raise
        except Exception as exc:
            built.set_exception(exc)
            built.exception()  # retrieved: no warning when no request waited for it
            raise
        finally:
            self._results.unwatch(log)
            del self._building[key]

    def _matches(self, index: EventIndex, key: RowFilter) -> list[SimMeeting]:
        meetings = [self._meetings[mid] for mid in self._candidates(index, key)]
        return [m for m in meetings if matches(m, key)]

    def _count(self, query: ExportQuery) -> Page | None:
        """A first page of one row (a count: what a connector's probes and delete checks
        ask) without materialising the result set, which would flatten and sort every row
        of the filter (a second at 100,000 meetings); a real API counts in its database.
        None where the filter's set is cached anyway, or is ordered otherwise."""
        f = query.filter
        if query.page != 1 or query.per_page != 1 or f.order_by != "meeting_id":
            return None
        index = self._events.get(f.event_id)
        if index is None or self._results.get(f) is not None:
            return None
        key = ResultCache.key(f)
        meetings = self._meetings
        candidates = self._candidates(index, key)
        # the creation index's span is exactly the matches of a creation range alone
        only_created = key == RowFilter(
            f.event_id, created_from=key.created_from, created_to=key.created_to, order=key.order
        )
        ascending = f.order == "ASC"
        total, first_id = 0, -1
        for mid in candidates:  # one pass: this runs for every count a connector asks
            m = meetings[mid]
            rows_of = len(m.participants)  # a meeting without rows is not in the export
            if not rows_of or not (only_created or matches(m, key)):
                continue
            total += rows_of
            if first_id < 0 or (mid < first_id if ascending else mid > first_id):
                first_id = mid
        if not total:
            return Page(total=0, rows=[])
        first = meetings[first_id]
        rows = self._parts(first)  # participants are kept sorted by account id
        head, tail = (rows[0] if ascending else rows[-1])[1:]
        return Page(total=total, rows=[head + tail])

    def _candidates(self, index: EventIndex, f: RowFilter) -> list[int]:
        """Meeting ids from the narrowest applicable index (a superset of the matches)."""
        best: tuple[int, SortedPairs, int, int] | None = None
        for low, high, pairs in (
            (f.modified_from, f.modified_to, index.by_updated),
            (f.created_from, f.created_to, index.by_created),
            (f.time_from, f.time_to, index.by_start),
        ):
            if low is not None or high is not None:
                start, stop = pairs.span(low, high)
                if best is None or stop - start < best[0]:
                    best = (stop - start, pairs, start, stop)
        if f.account_id is not None:
            members = index.by_account.get(f.account_id, set())
            if best is None or len(members) < best[0]:
                return list(members)
        if best is None:
            return index.by_id
        _, pairs, start, stop = best
        return pairs.ids(start, stop)

    def _parts(self, meeting: SimMeeting) -> list[tuple[SimParticipant, str, str]]:
        """(participant, head, tail) per row of ``meeting``, rendering what is not cached."""
        cached = self._heads.get(meeting.meeting_id)
        if cached is None or cached[0] != meeting.version:
            head = compact_json(meeting_fields(meeting, self.formatter))[:-1] + ","
            self._heads[meeting.meeting_id] = (meeting.version, head)
        else:
            head = cached[1]
        parts = []
        for participant in meeting.participants:
            tail = self._tails.get(participant)
            if tail is None:
                tail = self._tails[participant] = compact_json(participant_fields(participant))[1:]
            parts.append((participant, head, tail))
        return parts


def _page_of(query: ExportQuery, result: ResultSet | None) -> Page:
    if result is None:
        return Page(total=0, rows=[])
    page = result.page(query.offset, query.per_page, query.filter.order)
    return Page(total=len(result), rows=[head + tail for head, tail in page])
