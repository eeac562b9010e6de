"""Per-event sorted indexes over meetings, so filters do not scan every meeting.

Each range index is a sorted list of ``(second, meeting_id)`` pairs searched with bisect;
``by_account`` maps an account id to the meetings it takes part in. Maintenance is
O(log n) search plus a memmove per change, cheap next to serving a page.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from meetings_simulator.model import SimMeeting

_MAX_ID = 2**63


class SortedPairs:
    """A sorted list of ``(key, meeting_id)`` pairs with inclusive range queries."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[int, int]] = ()) -> None:
        self._items = sorted(items)

    def add(self, key: int, meeting_id: int) -> None:
        """Insert one pair."""
        bisect.insort(self._items, (key, meeting_id))

    def remove(self, key: int, meeting_id: int) -> None:
        """Remove one pair (which must be present)."""
        pos = bisect.bisect_left(self._items, (key, meeting_id))
        if pos < len(self._items) and self._items[pos] == (key, meeting_id):
            del self._items[pos]
        else:  # pragma: no cover - an index bug, not an input error
            raise KeyError((key, meeting_id))

    def span(self, low: int | None, high: int | None) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the pairs with ``low <= key <= high``."""
        start = 0 if low is None else bisect.bisect_left(self._items, (low, -_MAX_ID))
        stop = (
            len(self._items) if high is None else bisect.bisect_right(self._items, (high, _MAX_ID))
        )
        return start, max(start, stop)

    def ids(self, start: int, stop: int) -> list[int]:
        """Meeting ids of the pairs at positions ``[start, stop)``, in key order."""
        return [mid for _, mid in self._items[start:stop]]

    def __len__(self) -> int:
        return len(self._items)


class EventIndex:
    """All indexes of one event."""

    __slots__ = ("by_account", "by_created", "by_id", "by_start", "by_updated")

    def __init__(self, meetings: Iterable[SimMeeting] = ()) -> None:
        items = list(meetings)
        self.by_id: list[int] = sorted(m.meeting_id for m in items)
        self.by_created = SortedPairs((m.created_at, m.meeting_id) for m in items)
        self.by_updated = SortedPairs(
            (m.updated_at, m.meeting_id) for m in items if m.modified_key is not None
        )
        self.by_start = SortedPairs((m.start, m.meeting_id) for m in items)
        self.by_account: dict[int, set[int]] = {}
        for meeting in items:
            for account_id in meeting.account_ids:
                self.by_account.setdefault(account_id, set()).add(meeting.meeting_id)

    def add(self, meeting: SimMeeting) -> None:
        """Index a new meeting."""
        bisect.insort(self.by_id, meeting.meeting_id)
        self.by_created.add(meeting.created_at, meeting.meeting_id)
        if meeting.modified_key is not None:
            self.by_updated.add(meeting.modified_key, meeting.meeting_id)
        self.by_start.add(meeting.start, meeting.meeting_id)
        for account_id in meeting.account_ids:
            self.by_account.setdefault(account_id, set()).add(meeting.meeting_id)

    def remove(self, meeting: SimMeeting) -> None:
        """Forget a meeting (the version currently indexed)."""
        pos = bisect.bisect_left(self.by_id, meeting.meeting_id)
        del self.by_id[pos]
        self.by_created.remove(meeting.created_at, meeting.meeting_id)
        if meeting.modified_key is not None:
            self.by_updated.remove(meeting.modified_key, meeting.meeting_id)
        self.by_start.remove(meeting.start, meeting.meeting_id)
        for account_id in meeting.account_ids:
            members = self.by_account.get(account_id)
            if members is not None:
                members.discard(meeting.meeting_id)
                if not members:
                    del self.by_account[account_id]

    def replace(self, old: SimMeeting, new: SimMeeting) -> None:
        """Re-index a meeting that changed from ``old`` to ``new``."""
        mid = new.meeting_id
        if old.modified_key != new.modified_key:
            if old.modified_key is not None:
                self.by_updated.remove(old.modified_key, mid)
            if new.modified_key is not None:
                self.by_updated.add(new.modified_key, mid)
        if old.start != new.start:
            self.by_start.remove(old.start, mid)
            self.by_start.add(new.start, mid)
        old_accounts, new_accounts = set(old.account_ids), set(new.account_ids)
        for account_id in old_accounts - new_accounts:
            members = self.by_account[account_id]
            members.discard(mid)
            if not members:
                del self.by_account[account_id]
        for account_id in new_accounts - old_accounts:
            self.by_account.setdefault(account_id, set()).add(mid)
