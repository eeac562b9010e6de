"""Local date-times of the API's time zone as instants, daylight-saving folds resolved (pure).

The export writes date-times as local wall time without an offset. When clocks fall back an
hour (30 minutes on Lord Howe Island) repeats: a local ``01:05`` is two instants, the first
occurrence (``fold=0``) and the second (``fold=1``). :func:`instants` gives both; a local time
that exists once gives one. A local time in the spring-forward gap never comes from an API
that renders real instants; it is read as the clock before the change would have shown it
(``fold=0``, Python's rule: ``02:30`` in New York's gap is 03:30 EDT).

A row's times come in pairs that bound an interval, ``start_at <= end_at`` and
``created_at <= modified_at`` (every change sets the last-modified time to its current
second), and a row returned for a ``created``/``last_modified`` window has that time inside
the window's unix bounds. :func:`resolve_interval` picks one instant per time from those
facts, and where they leave a choice, by one rule:

    among the combinations the bounds allow, the one with the shortest non-negative
    interval; ties go to the earlier instants.

So an appointment ``01:30``-``02:00`` in the repeated hour is 30 minutes long, not 90,
and a conversion never makes ``end_at`` earlier than ``start_at`` when some reading of the
two keeps them ordered. For ``created_at``/``modified_at`` the rule is consistent across the
windows a version is read in: a meeting created and modified in the second occurrence
reads as that in its ``created`` window (the window decides ``created_at``, the ordering
then ``modified_at``) and in its ``last_modified`` window (the other way round). Where
nothing decides, ``modified_at`` takes the earlier instant: classification never publishes
a version that differs only by an *older* ``modified_at`` (``connector.changes``), so a
read without a window's help cannot produce a spurious event for a version already
published with the right instant.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

#: (first, last) epoch milliseconds, both inclusive.
Bounds = tuple[int, int]


def instants(naive: datetime, zone: tzinfo) -> tuple[int] | tuple[int, int]:
    """Epoch milliseconds of the local ``naive`` date-time in ``zone``: one, or the first
    and the second occurrence when it lies in a repeated (fall-back) interval.

    Raises ``OverflowError``/``ValueError`` as ``datetime.timestamp`` does.
    """
    first = _millis(naive.replace(tzinfo=zone, fold=0))
    second = _millis(naive.replace(tzinfo=zone, fold=1))
    # fold=1 is later only for a repeated time; in a gap it is earlier (and fold=0 stands).
    if second > first:
        return (first, second)
    return (first,)


def resolve_interval(
    earlier: tuple[int, ...],
    later: tuple[int, ...],
    earlier_bounds: Bounds | None = None,
    later_bounds: Bounds | None = None,
) -> tuple[int, int]:
    """One instant each for two times that bound an interval (see the module docstring).

    ``earlier``/``later`` are the candidate instants of each (from :func:`instants`);
    bounds, when known, say where each must lie. Bounds that no candidate meets are
    ignored (a row outside its window is the API's doing, not a reason to fail).
    """
    first = within(earlier, earlier_bounds)
    second = within(later, later_bounds)
    best: tuple[int, int] | None = None
    best_key: tuple[int, int, int, int] | None = None
    for a in first:
        for b in second:
            # ordered pairs first (shortest interval), then reversed ones (least reversed)
            key = (0, b - a, b, a) if a <= b else (1, a - b, b, a)
            if best_key is None or key < best_key:
                best, best_key = (a, b), key
    assert best is not None  # noqa: S101 - both candidate tuples are non-empty
    return best


def within(candidates: tuple[int, ...], bounds: Bounds | None) -> tuple[int, ...]:
    """The candidates inside ``bounds``; all of them when none is (or no bounds)."""
    if bounds is None or len(candidates) == 1:
        return candidates
    inside = tuple(c for c in candidates if bounds[0] <= c <= bounds[1])
    return inside or candidates


def _millis(moment: datetime) -> int:
    seconds = moment.timestamp()
    whole = int(seconds)
    if whole == seconds:
        return whole * 1000
    return int(seconds * 1000)
