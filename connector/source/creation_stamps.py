"""Whether the API stamps a new meeting's last-modified time at its creation, learnt from
what incremental cycles read (pure: values in, a verdict out).

When it does, a last-modified window sees every new meeting, and an incremental cycle needs
one window instead of two (``MEETINGS_CDC_CREATED_WINDOWS``). The simulator does
(``created_at == updated_at`` for a new meeting); an API whose filter column is filled only
by updates would not, and rows alone cannot tell: it may still show ``updated_at`` equal to
``created_at``. So the proof is the filter itself. While CREATED windows are read, both
windows of a cycle end at the same upper bound; a meeting returned by the CREATED window
whose last-modified equals its creation (never changed since) and lies inside the MODIFIED
window read after it must be among that window's meetings:

- it is: a confirmation; ``CONFIRMATIONS`` distinct meetings in a row prove it, and
  CREATED windows stop;
- it is not: a counter-example; the count starts again (and CREATED windows are read again
  if they had stopped). A meeting changed between the two reads of one cycle is a false
  counter-example: it costs a few confirmations more, never a row;
- a last-modified time earlier than the creation, in any window: a counter-example too (the
  API's stamps do not follow creations).

A meeting changed since its creation proves nothing (the filter finds changed meetings
either way). Rows without a last-modified time are malformed rows already (dead-lettered),
so they never get here. The verdict is per process and shared by its events (the API's
behaviour is the API's): after a restart the CREATED windows are read until new meetings
prove it again, which is the conservative side.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence, Set
from dataclasses import dataclass, field

from connector.core.model import Meeting
from connector.source.windows import Window

#: Distinct new meetings, in a row, that the MODIFIED window must have returned.
CONFIRMATIONS = 3


@dataclass(frozen=True, slots=True)
class CycleReads:
    """What one cycle read: the meetings of its CREATED windows, its MODIFIED windows and
    the meetings those returned."""

    created: Sequence[Meeting]
    modified_windows: Sequence[Window]
    modified: Sequence[Meeting]


@dataclass(slots=True)
class CreationStamps:
    """The evidence so far (see the module docstring); :attr:`proven` is the verdict."""

    confirmations: int = CONFIRMATIONS
    counter_examples: int = 0
    _confirmed: set[tuple[int, int]] = field(default_factory=set)

    @property
    def proven(self) -> bool:
        """Whether last-modified windows are known to show new meetings."""
        return len(self._confirmed) >= self.confirmations

    def observe(self, reads: CycleReads) -> None:
        """Weigh one cycle's reads."""
        found: Set[tuple[int, int]] = {m.key for m in reads.modified}
        if any(_earlier(m) for m in itertools.chain(reads.created, reads.modified)):
            self._counter()
            return
        for meeting in reads.created:
            if meeting.modified_at != meeting.created_at:
                continue  # changed since its creation: proves nothing
            second = meeting.modified_at // 1000
            if not any(w.start <= second <= w.end for w in reads.modified_windows):
                continue
            if meeting.key in found:
                self._confirmed.add(meeting.key)
            else:
                self._counter()

    def _counter(self) -> None:
        self.counter_examples += 1
        self._confirmed.clear()


def _earlier(meeting: Meeting) -> bool:
    return meeting.modified_at < meeting.created_at


__all__ = ["CONFIRMATIONS", "CreationStamps", "CycleReads"]
