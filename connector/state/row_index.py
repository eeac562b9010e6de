"""Which tracked meetings were created when, and how many export rows each has.

The delete check (``connector.delete_check``) compares the API's row count of a range of
creation seconds with the rows the state tracks there, and at a leaf needs the tracked
meetings of that range. Decoding every state value to answer either would cost in
proportion to the event on every check, so the state keeps this index beside its values.

Memory matters (a million meetings per process, ~0.3 KB each for the state values): the
index is three flat ``array``s sorted by (creation second, meeting id), 20 bytes a meeting,
and no Python object per meeting. A meeting that sorts after every one held (a new meeting,
at the current second) is appended; updates change a count in place. Any other new meeting
(a snapshot reads meetings in whatever order the export pages them, so nearly all of its
meetings) waits in a small dict, merged into the arrays in one pass (a bisect per waiting
meeting, a ``memcpy`` of the rest) when it reaches 1/32 of the index or a query needs it:
inserting each into the arrays would move their tail every time, quadratic in the meetings
(11.7 us a meeting at 100,000, 1.9 us merged; issue 17). A restore indexes the restored
values in whatever order they are held: :meth:`bulk_add` just appends and :meth:`finish`
sorts once at the end.

A meeting's row count is its participants (one export row each); counts above 2**32 - 1
are clamped (they only steer the bisection; a wrong count costs requests, never a delete).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

_ROWS_MAX = 2**32 - 1
#: New meetings out of order that may wait before a merge, at least (else 1/32 of the index).
_PENDING_MIN = 4_096


class RowIndex:
    """(creation second, meeting id) -> export rows, sorted; range sums and lookups."""

    __slots__ = ("_ids", "_pending", "_pending_min", "_rows", "_seconds", "_sorted")

    def __init__(self, pending_min: int = _PENDING_MIN) -> None:
        """``pending_min``: the waiting meetings that are always allowed before a merge."""
        self._seconds = array("q")
        self._ids = array("q")
        self._rows = array("I")
        self._sorted = True  # False after a bulk_add out of order, until finish
        # New meetings not yet in the arrays: (creation second, meeting id) -> rows.
        self._pending: dict[tuple[int, int], int] = {}
        self._pending_min = pending_min

    def __len__(self) -> int:
        return len(self._ids) + len(self._pending)

    @property
    def bytes_used(self) -> int:
        """Bytes of the arrays' items (what the index costs per meeting: 20)."""
        return len(self._ids) * (8 + 8 + 4)

    # --- updates ------------------------------------------------------------------------------

    def put(self, meeting_id: int, created_s: int, rows: int) -> None:
        """Track ``meeting_id`` (created at ``created_s``) with ``rows`` export rows."""
        self._sort()
        rows = min(max(rows, 0), _ROWS_MAX)
        pending = self._pending
        key = (created_s, meeting_id)
        if key in pending:
            pending[key] = rows
            return
        seconds, ids = self._seconds, self._ids
        lo = bisect_left(seconds, created_s)
        hi = bisect_right(seconds, created_s, lo)
        for at in range(lo, hi):
            if ids[at] == meeting_id:
                self._rows[at] = rows
                return
        if hi == len(ids) and (hi == lo or ids[hi - 1] < meeting_id):  # sorts after all
            seconds.append(created_s)
            ids.append(meeting_id)
            self._rows.append(rows)
            return
        pending[key] = rows
        if len(pending) >= max(self._pending_min, len(ids) >> 5):
            self._merge()

    def remove(self, meeting_id: int, created_s: int) -> None:
        """Forget ``meeting_id`` (nothing if it is not indexed at ``created_s``)."""
        self._sort()
        if self._pending.pop((created_s, meeting_id), None) is not None:
            return
        at = self._find(meeting_id, created_s)
        if at is not None:
            del self._seconds[at]
            del self._ids[at]
            del self._rows[at]

    def bulk_add(self, meeting_id: int, created_s: int, rows: int) -> None:
        """Add a meeting not indexed yet, in any order (a restore); call :meth:`finish`
        once every one is added."""
        if self._ids and (created_s, meeting_id) < (self._seconds[-1], self._ids[-1]):
            self._sorted = False
        self._seconds.append(created_s)
        self._ids.append(meeting_id)
        self._rows.append(min(max(rows, 0), _ROWS_MAX))

    def finish(self) -> None:
        """Sort what :meth:`bulk_add` appended."""
        self._sort()

    # --- queries ------------------------------------------------------------------------------

    def rows(self, first_s: int, last_s: int) -> int:
        """Export rows of the meetings created in ``[first_s, last_s]``."""
        self._merge()
        lo, hi = self._span(first_s, last_s)
        return sum(self._rows[lo:hi])

    def meetings(self, first_s: int, last_s: int) -> list[int]:
        """Ids of the meetings created in ``[first_s, last_s]``."""
        self._merge()
        lo, hi = self._span(first_s, last_s)
        return list(self._ids[lo:hi])

    def split_seconds(self, first_s: int, last_s: int, parts: int) -> list[int]:
        """Up to ``parts - 1`` increasing seconds ``s`` (``first_s <= s < last_s``) that
        cut ``[first_s, last_s]`` into ranges ``[.., s]``, ``[s + 1, ..]`` of about equal
        rows (equal time where nothing is tracked); empty when the range is one second."""
        if last_s <= first_s or parts < 2:
            return []
        self._merge()
        lo, hi = self._span(first_s, last_s)
        total = sum(self._rows[lo:hi])
        if hi - lo < parts or total < parts:  # too little tracked to balance: cut the time
            step = (last_s - first_s + 1) / parts
            cuts = {first_s + int(step * i) - 1 for i in range(1, parts)}
        else:
            cuts = set()
            running, goal, at = 0, 1, lo
            for at in range(lo, hi):
                running += self._rows[at]
                while goal < parts and running * parts >= total * goal:
                    cuts.add(self._seconds[at])
                    goal += 1
            # a crowded second (a part's worth of rows alone) becomes a part of its own
            for cut in list(cuts):
                if self.rows(cut, cut) * parts >= total:
                    cuts.add(cut - 1)
        return sorted(c for c in cuts if first_s <= c < last_s)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """(meeting id, creation second, rows) of every entry, in creation order."""
        self._merge()
        return zip(self._ids, self._seconds, self._rows, strict=True)

    # --- internals ----------------------------------------------------------------------------

    def _span(self, first_s: int, last_s: int) -> tuple[int, int]:
        """Where the arrays hold ``[first_s, last_s]`` (pending meetings aside)."""
        self._sort()
        lo = bisect_left(self._seconds, first_s)
        return lo, bisect_right(self._seconds, last_s, lo)

    def _find(self, meeting_id: int, created_s: int) -> int | None:
        lo, hi = self._span(created_s, created_s)
        for at in range(lo, hi):
            if self._ids[at] == meeting_id:
                return at
        return None

    def _merge(self) -> None:
        """Move the pending meetings into the arrays, in one pass over them."""
        self._sort()
        if not self._pending:
            return
        old_seconds, old_ids, old_rows = self._seconds, self._ids, self._rows
        seconds, ids, rows = array("q"), array("q"), array("I")
        done = 0  # old entries copied so far
        for (created_s, meeting_id), count in sorted(self._pending.items()):
            at = bisect_left(old_seconds, created_s, done)
            while at < len(old_ids) and old_seconds[at] == created_s and old_ids[at] < meeting_id:
                at += 1
            seconds.extend(old_seconds[done:at])
            ids.extend(old_ids[done:at])
            rows.extend(old_rows[done:at])
            seconds.append(created_s)
            ids.append(meeting_id)
            rows.append(count)
            done = at
        seconds.extend(old_seconds[done:])
        ids.extend(old_ids[done:])
        rows.extend(old_rows[done:])
        self._seconds, self._ids, self._rows = seconds, ids, rows
        self._pending.clear()

    def _sort(self) -> None:
        if self._sorted:
            return
        # One-off, after a restore: the sort order as a list of positions (transient, ~40
        # bytes a meeting for a moment).
        seconds, ids = self._seconds, self._ids
        keep = sorted(range(len(ids)), key=lambda i: (seconds[i], ids[i]))
        self._seconds = array("q", (self._seconds[i] for i in keep))
        self._ids = array("q", (self._ids[i] for i in keep))
        self._rows = array("I", (self._rows[i] for i in keep))
        self._sorted = True


__all__ = ["RowIndex"]
