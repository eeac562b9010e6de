"""The ``version`` of a change event: never repeated for a meeting, gaps only between lives.

A consumer deduplicates and orders by ``(event_id, meeting_id, version)``, so a version
must never be used twice for one meeting: not after a delete and reappearance, a restart,
a failover, nor after the state topic was replaced (the state-reset procedure of
docs/replicas.md), when nothing of the old state is left to count from.

The rule (pure; the caller passes the time):

- a meeting the state tracks gets its previous version plus one: within one *life* of a
  meeting (from its SNAPSHOT or CREATED to its DELETED) versions are consecutive, so a
  consumer can see a gap;
- a meeting the state does not track (first sighting, reappearance after a delete, any
  meeting after a state reset) starts a new life at a *floor* taken from the clock: the
  detection time in epoch milliseconds, or one more than the version it was deleted with
  when this process still remembers that (a clock that stepped back).

A floor exceeds every earlier version of the meeting as long as the meeting had fewer
events than milliseconds passed since its previous life began (each event is one
transaction after one API read: far fewer than one a millisecond) and the clock did not
step back further than that. The state keeps nothing more per meeting than before: no
record of deleted meetings, so a million meetings cost what they did.
"""

from __future__ import annotations


def next_version(tracked: int | None, floor_ms: int, deleted: int | None = None) -> int:
    """The version of a meeting's next event.

    ``tracked``: the version the state holds for the meeting (None: not tracked);
    ``floor_ms``: the detection time in epoch milliseconds; ``deleted``: the version of a
    DELETED of the meeting this process still remembers, if any.
    """
    if tracked is not None:
        return tracked + 1
    if deleted is not None:
        return max(floor_ms, deleted + 1)
    return floor_ms
