"""Grouping participant rows into complete, consistent meetings (pure).

A meeting is handed on only when every row of it that the read saw is valid and the rows
agree (problem 3 of the design): all carry the same meeting-level fields and no account
appears twice. Rows that disagree mean the meeting changed while it was being read; its new
version has a newer last-modified second and arrives in a later MODIFIED window, so it is
reported in ``inconsistent`` instead of being handed on half old, half new. A meeting one of
whose rows is malformed would be handed on without that participant, so it is ``withheld``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from connector.core.model import Meeting
from connector.source.rows import ParsedRow, RowError

_MATCHABLE = ("event_id", "status", "start_at", "end_at", "location", "created_at", "modified_at")


@dataclass(frozen=True, slots=True)
class Assembled:
    """The outcome of grouping one read's rows."""

    meetings: list[Meeting]
    inconsistent: frozenset[int]
    withheld: frozenset[int]


def assemble(rows: Iterable[ParsedRow], errors: Iterable[RowError] = ()) -> Assembled:
    """Group ``rows`` by meeting; hand on only complete, consistent meetings.

    ``errors`` are the rows of the same read that failed to parse. One that names its
    meeting withholds that meeting; one that does not is matched against every meeting by
    the meeting-level fields it did carry, and withholds each meeting it could belong to
    (all of them, if it carried none), because handing one on without it would report a
    participant removed that was not. Meetings come out sorted by id, participants sorted
    by account id: the result does not depend on the order of ``rows``.
    """
    groups: dict[int, list[ParsedRow]] = {}
    for row in rows:
        groups.setdefault(row.meeting_id, []).append(row)

    withheld: set[int] = set()
    for error in errors:
        if error.meeting_id is not None:
            withheld.add(error.meeting_id)
        else:
            withheld.update(_candidates(groups, error.known))

    meetings: list[Meeting] = []
    inconsistent: set[int] = set()
    for meeting_id in sorted(groups):
        group = groups[meeting_id]
        if meeting_id in withheld:
            continue
        meeting = _meeting(meeting_id, group)
        if meeting is None:
            inconsistent.add(meeting_id)
        else:
            meetings.append(meeting)
    return Assembled(meetings, frozenset(inconsistent), frozenset(withheld))


def _meeting(meeting_id: int, group: list[ParsedRow]) -> Meeting | None:
    """The meeting of ``group``, or None when its rows disagree."""
    first = group[0]
    fields = first.meeting_fields()
    accounts: set[int] = set()
    for row in group:
        if row.participant.account_id in accounts:
            return None
        accounts.add(row.participant.account_id)
        if row is not first and row.meeting_fields() != fields:
            return None
    return Meeting(
        event_id=first.event_id,
        meeting_id=meeting_id,
        status=first.status,
        start_at=first.start_at,
        end_at=first.end_at,
        location=first.location,
        created_at=first.created_at,
        modified_at=first.modified_at,
        participants=tuple(row.participant for row in group),
        extra=first.meeting_extra,
    )


def _candidates(groups: Mapping[int, list[ParsedRow]], known: Mapping[str, object]) -> set[int]:
    """Meetings a row without a readable meeting id could belong to."""
    checks = [(name, known[name]) for name in _MATCHABLE if name in known]
    return {
        meeting_id
        for meeting_id, group in groups.items()
        if any(all(getattr(row, name) == value for name, value in checks) for row in group)
    }
