"""Which tracked meetings were created when, and how many export rows each has.

The delete check (``connector.delete_check``) compares the API's row count of a range of
creation seconds with the rows the state tracks there, and at a leaf needs the tracked
meetings of that range. Decoding every state value to answer either would cost in
proportion to the event on every check, so the state keeps this index beside its values.

Memory matters (a million meetings per process, ~0.3 KB each for the state values): the
index is three flat ``array``s sorted by (creation second, meeting id), 20 bytes a meeting,
and no Python object per meeting. A new meeting lands at the current second, so it is
nearly always appended at the end; updates change a count in place; a removal or an
out-of-order insert moves the tail (a ``memmove``: about a millisecond at a million).
A restore indexes the restored values in whatever order they are held: :meth:`bulk_add`
just appends and :meth:`finish` sorts once at the end.

A meeting's row count is its participants (one export row each); counts above 2**32 - 1
are clamped (they only steer the bisection; a wrong count costs requests, never a delete).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

_ROWS_MAX = 2**32 - 1


class RowIndex:
    """(creation second, meeting id) -> export rows, sorted; range sums and lookups."""

    __slots__ = ("_ids", "_rows", "_seconds", "_sorted")

    def __init__(self) -> None:
        self._seconds = array("q")
        self._ids = array("q")
        self._rows = array("I")
        self._sorted = True

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def bytes_used(self) -> int:
        """Bytes of the arrays' items (what the index costs per meeting: 20)."""
        return len(self._ids) * (8 + 8 + 4)

    # --- updates ------------------------------------------------------------------------------

    def put(self, meeting_id: int, created_s: int, rows: int) -> None:
        """Track ``meeting_id`` (created at ``created_s``) with ``rows`` export rows."""
        self._sort()
        at = self._find(meeting_id, created_s)
        rows = min(max(rows, 0), _ROWS_MAX)
        if at is not None:
            self._rows[at] = rows
            return
        # first position after every entry that sorts before (created_s, meeting_id)
        lo = bisect_left(self._seconds, created_s)
        hi = bisect_right(self._seconds, created_s, lo)
        at = lo
        while at < hi and self._ids[at] < meeting_id:
            at += 1
        if at == len(self._ids):
            self._seconds.append(created_s)
            self._ids.append(meeting_id)
            self._rows.append(rows)
        else:
            self._seconds.insert(at, created_s)
            self._ids.insert(at, meeting_id)
            self._rows.insert(at, rows)

    def remove(self, meeting_id: int, created_s: int) -> None:
        """Forget ``meeting_id`` (nothing if it is not indexed at ``created_s``)."""
        self._sort()
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
        lo, hi = self._span(first_s, last_s)
        return sum(self._rows[lo:hi])

    def meetings(self, first_s: int, last_s: int) -> list[int]:
        """Ids of the meetings created in ``[first_s, last_s]``."""
        lo, hi = self._span(first_s, last_s)
        return list(self._ids[lo:hi])

    def split_seconds(self, first_s: int, last_s: int, parts: int) -> list[int]:
        """Up to ``parts - 1`` increasing seconds ``s`` (``first_s <= s < last_s``) that
        cut ``[first_s, last_s]`` into ranges ``[.., s]``, ``[s + 1, ..]`` of about equal
        rows (equal time where nothing is tracked); empty when the range is one second."""
        if last_s <= first_s or parts < 2:
            return []
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
        self._sort()
        return zip(self._ids, self._seconds, self._rows, strict=True)

    # --- internals ----------------------------------------------------------------------------

    def _span(self, first_s: int, last_s: int) -> tuple[int, int]:
        self._sort()
        lo = bisect_left(self._seconds, first_s)
        return lo, bisect_right(self._seconds, last_s, lo)

    def _find(self, meeting_id: int, created_s: int) -> int | None:
        lo, hi = self._span(created_s, created_s)
        for at in range(lo, hi):
            if self._ids[at] == meeting_id:
                return at
        return None

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
