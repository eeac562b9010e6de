"""What an event's loop runs next, decided once, from values.

Pure: no clock, no I/O. The engine asks :func:`next_action` once per turn and runs exactly
what it answered, so the metrics, ``/status`` and the log line of a cycle all name the cycle
that ran (the decision used to be taken twice, before and after the API's clock was learnt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from connector.core.kinds import CycleKind
from connector.core.progress import EventProgress, Phase

#: Polls start this long after a second ends on the API's clock (estimate error, late writes).
TICK_MARGIN_SECONDS = 0.15


@dataclass(frozen=True, slots=True)
class Run:
    """Run a cycle of ``kind`` now."""

    kind: CycleKind


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing is due: wait ``seconds`` (then ask again)."""

    seconds: float


Action = Run | Idle


def reconcile_due(progress: EventProgress, api_now: float, interval_seconds: float) -> bool:
    """Whether a reconciliation pass is due: never before the first one has a bound."""
    if interval_seconds <= 0 or progress.last_reconcile_at is None:
        return False
    return api_now - progress.last_reconcile_at >= interval_seconds


def reconcile_delay(progress: EventProgress, api_now: float, interval_seconds: float) -> float:
    """Seconds until the next pass is due (``math.inf``: reconciliation is off or cannot
    start yet: the event is still in its snapshot)."""
    if interval_seconds <= 0 or progress.phase != Phase.STREAMING:
        return math.inf
    if progress.last_reconcile_at is None:
        return math.inf
    return max(0.0, progress.last_reconcile_at + interval_seconds - api_now)


def until_next_poll(started_api: float, api_time: float, interval_seconds: float) -> float:
    """Seconds to sleep so the next poll starts an interval after the last one began,
    just after a second ends on the API's clock: a window can include a second only once
    it is over, so a poll right after the tick publishes its changes soonest."""
    target = started_api + interval_seconds
    if interval_seconds >= 1:
        # the tick nearest the target (the interval may shrink or grow by half a second)
        target = math.ceil(target - TICK_MARGIN_SECONDS - 0.5) + TICK_MARGIN_SECONDS
    # Never longer than an interval (and the tick): the API's clock may have gone back.
    return min(interval_seconds + 1.0, max(0.0, target - api_time))


def next_action(
    progress: EventProgress | None,
    *,
    api_now: float,
    api_time: float,
    last_started_api: float | None,
    poll_interval_seconds: float,
    reconcile_interval_seconds: float,
    reconciled_last: bool = False,
) -> Action:
    """What runs next.

    ``progress`` is the committed progress (None: the event never started, which begins
    with a snapshot unless the snapshot mode skips it: the caller's ``_begin`` decides that
    before asking). ``last_started_api`` is when the last cycle began on the API's clock, or
    None when the next one may start at once (a snapshot part left more to do, or there was
    no cycle yet). ``reconciled_last``: the last cycle was a pass; a pass longer than the
    interval leaves the next one due at once, and polling gets its turn first.
    ``reconcile_interval_seconds <= 0`` leaves passes out (another task runs them).
    """
    if progress is None or progress.phase == Phase.SNAPSHOT:
        return Run(CycleKind.SNAPSHOT)
    if last_started_api is not None:
        wait = until_next_poll(last_started_api, api_time, poll_interval_seconds)
        if wait > 0:
            return Idle(wait)
    if not reconciled_last and reconcile_due(progress, api_now, reconcile_interval_seconds):
        return Run(CycleKind.RECONCILE)
    return Run(CycleKind.INCREMENTAL)


__all__ = [
    "Action",
    "CycleKind",
    "Idle",
    "Run",
    "next_action",
    "reconcile_delay",
    "reconcile_due",
    "until_next_poll",
]
