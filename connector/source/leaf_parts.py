"""A window's rows turned into :class:`WindowPart` values: cut, parsed, assembled (pure).

The drift rules (:mod:`connector.source.drift_rules`) decide which rows make up a window;
this module decides what is handed on from them: pieces of about ``LEAF_ROWS`` rows cut
at second boundaries (a meeting's rows share their second, so a cut never splits one),
and, over one or more reads of a piece, the meetings complete in any read, those withheld
(a malformed row) or inconsistent (rows that disagreed), and the dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.core.model import Meeting
from connector.source.assembly import assemble
from connector.source.rows import DeadLetter, ParsedRow, RowError, RowParser
from connector.source.windows import Window

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


@dataclass(slots=True)
class Rows:
    """Every row of a window that fits (or of a verified paged window), and its pages."""

    rows: list[Any]
    pages: int


def pieces(parser: RowParser, window: Window, collected: Rows) -> list[tuple[Window, Rows]]:
    """``window``'s rows as consecutive sub-windows of about ``LEAF_ROWS`` rows each.

    Rows whose second cannot be read (malformed) or lies outside the window keep the
    whole window as one piece. The pages are counted once, on the first piece.
    """
    rows = collected.rows
    if len(rows) <= LEAF_ROWS or window.seconds == 1:
        return [(window, collected)]
    seconds = _seconds(parser, window, rows)
    if seconds is None:
        return [(window, collected)]
    order = sorted(range(len(rows)), key=seconds.__getitem__)
    cut: list[tuple[Window, Rows]] = []
    start = window.start
    taken: list[Any] = []
    for k, i in enumerate(order):
        taken.append(rows[i])
        second = seconds[i]
        if k + 1 < len(order) and len(taken) >= LEAF_ROWS and seconds[order[k + 1]] != second:
            cut.append((Window(window.kind, start, second), Rows(taken, 0)))
            start, taken = second + 1, []
    cut.append((Window(window.kind, start, window.end), Rows(taken, 0)))
    cut[0][1].pages = collected.pages
    return cut


def _seconds(parser: RowParser, window: Window, rows: list[Any]) -> list[int] | None:
    """Each row's second of ``window``'s kind; None if one cannot be read or lies outside
    the window. A meeting's rows share their time: each text is read once."""
    second_of, kind = parser.second_of, window.kind
    key = parser.mapping.time_key(kind)
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


def sample(parser: RowParser, rows: list[Any], window: Window) -> list[int]:
    """The seconds of a first page's rows: where a split should cut."""
    second_of = parser.second_of
    return [s for s in (second_of(r, window.kind, window) for r in rows) if s is not None]


def distinct(parser: RowParser, rows: list[Any]) -> bool:
    """No (meeting, account) pair twice: an unstable order would repeat some."""
    m = parser.mapping
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


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@dataclass(slots=True)
class LeafReads:
    """The reads of one leaf window so far, and the part they make.

    Meetings complete in any read are kept. A meeting withheld by one read stays held
    back unless a read completes it: it may be missing from the next read (its only row
    unattributable there) and must not vanish from the part.
    """

    event_id: int
    window: Window
    resolved: dict[int, Meeting] = field(default_factory=dict)
    withheld: set[int] = field(default_factory=set)
    inconsistent: set[int] = field(default_factory=set)
    pages: int = 0
    rows: int = 0
    max_modified: int | None = None
    errors: Sequence[RowError] = ()
    raws: Sequence[str] = ()  # the failed rows' dead-letter texts (field rules applied)

    def add(self, parser: RowParser, read: Rows) -> bool:
        """Take one read of the window; whether another read may resolve more."""
        parsed, errors, raws = _parse(parser, self.event_id, self.window, read.rows)
        for row in parsed:
            if self.max_modified is None or row.modified_at > self.max_modified:
                self.max_modified = row.modified_at
        assembled = assemble(parsed, errors)
        for meeting in assembled.meetings:
            self.resolved[meeting.meeting_id] = meeting
        self.withheld |= assembled.withheld
        self.inconsistent |= assembled.inconsistent
        self.pages += read.pages
        self.rows = len(read.rows)
        self.errors, self.raws = errors, raws  # the last read's
        if not errors:
            return False
        unattributed = any(e.meeting_id is None for e in errors)
        return bool(assembled.withheld - self.resolved.keys()) or unattributed

    def part(self) -> WindowPart:
        """The part (its ``requests`` are counted by whoever sent them)."""
        unresolved = (self.withheld | self.inconsistent) - self.resolved.keys()
        letters = [
            DeadLetter(self.event_id, raw, error.reason, self.window, error.meeting_id)
            for error, raw in zip(self.errors, self.raws, strict=True)
            if error.meeting_id is None or error.meeting_id not in self.resolved
        ]
        withheld = frozenset(self.withheld & unresolved)
        inconsistent = frozenset(self.inconsistent & unresolved) | withheld
        return WindowPart(
            window=self.window,
            meetings=sorted(self.resolved.values(), key=lambda m: m.meeting_id),
            dead_letters=letters,
            inconsistent=inconsistent,
            rows=self.rows,
            pages=self.pages,
            requests=0,
            max_modified_at=self.max_modified,
            withheld=withheld,
        )


def _parse(
    parser: RowParser, event_id: int, window: Window, rows: list[Any]
) -> tuple[list[ParsedRow], list[RowError], list[str]]:
    # The rows came for ``window``: its bounds tell which instant a repeated local
    # time of its kind is (daylight saving, see ``connector.source.local_time``).
    parse = parser.parse
    parsed: list[ParsedRow] = []
    errors: list[RowError] = []
    raws: list[str] = []
    for raw in rows:
        try:
            parsed.append(parse(raw, event_id, window))
        except RowError as error:
            errors.append(error)
            raws.append(parser.dead_letter_raw(raw))
    return parsed, errors, raws
