"""The API's clock, estimated from whole-second ``Date`` headers (pure).

A response stamped ``Date: D`` was stamped while it was on its way: after it was sent (at
our monotonic ``sent``) and before it arrived (``arrived``). So the API's clock minus ours
(the offset) lies in ``(D - arrived, D + 1 - sent)``. Every lower bound ``D - arrived`` is a
valid estimate that never runs ahead of the API; the largest one seen is the estimate, and
the smallest upper bound says how far behind it can be.

The bounds are only as tight as the phases the requests were sent at: a response stamped
just after the API's second began pins the offset to within a round trip, one stamped late
in a second is up to a second behind. Polls are scheduled from this very estimate (just
after a second ends on the API's clock), so their samples all share one phase and can never
tighten it; once older, better samples aged out, the estimate would slip further behind
with every poll. Hence:

- the bounds are kept for ``horizon`` seconds (clocks do not drift measurably in minutes),
  not for a number of responses;
- :meth:`ApiClock.probe_at` names a moment for a deliberate probe request, aimed so that
  the second its response is stamped with halves the interval between the bounds
  (bisection: a few probes narrow a second to a round trip), at most every
  ``probe_interval`` seconds while the uncertainty is above about a round trip, every
  ``settled_probe_interval`` seconds once it is down to that (a probe is a request
  against the API's rate limit: see README "API budget");
- a lower bound far above the median of the last ``RECENT_SAMPLES`` (a stray server, a
  bogus header) is ignored until most of them agree with it (a real step forward of the
  API's clock), which then also drops the upper bounds it contradicts;
- an upper bound below the estimate proves the API's clock stepped back: every bound so
  far is dropped and the estimate starts again from that response. The step happened after
  the previous response was sent, so every write since carries an API time of at least
  the new offset plus that send time: :meth:`ApiClock.step_floor` (a lower bound, since the
  new offset is one), which window planning rewinds its watermarks to (design 4.10), and
  the old estimate at that response is :meth:`ApiClock.step_ceiling`: rows written just
  before the step are stamped up to it, ahead of the new clock, and are read once more.
"""

from __future__ import annotations

import collections
import math
import statistics
from collections.abc import Callable

#: Raw samples the outlier test takes its median over.
RECENT_SAMPLES = 64
#: A sample this far above the median of the recent ones is ignored as an outlier.
OUTLIER_SECONDS = 1.5
#: How long the best lower bound stands.
HORIZON_SECONDS = 300.0
#: Probe requests are sent at most this often while the estimate is still settling (from a
#: second to a round trip takes about five probes).
PROBE_INTERVAL_SECONDS = 5.0
#: ... and this often once it has settled (its uncertainty is down to about a round trip):
#: a probe then only renews bounds that stand for ``HORIZON_SECONDS``, and every request
#: counts against the API's rate limit (one event polled every 5 s makes 12 a minute).
SETTLED_PROBE_INTERVAL_SECONDS = 60.0
#: The estimate has settled when its uncertainty is at most this plus twice the median
#: round trip of recent responses (bisection cannot do better than a round trip).
SETTLED_UNCERTAINTY_SECONDS = 0.02
#: How long after a step back its floor is reported: long enough for the next polls to
#: plan from it, short enough that a later one-second slip of the estimate does not rewind
#: the windows to an old step again.
STEP_MEMORY_SECONDS = 60.0


class ApiClock:
    """The API's clock as an offset from a monotonic clock (see the module docstring)."""

    def __init__(
        self,
        *,
        horizon: float = HORIZON_SECONDS,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
        settled_probe_interval: float = SETTLED_PROBE_INTERVAL_SECONDS,
    ) -> None:
        self.horizon = horizon
        self.probe_interval = probe_interval
        self.settled_probe_interval = max(probe_interval, settled_probe_interval)
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT_SAMPLES)
        self._round_trips: collections.deque[float] = collections.deque(maxlen=RECENT_SAMPLES)
        # Sliding-window extremes over the horizon, O(1) per sample: (arrived, bound) with
        # lower bounds strictly decreasing and upper bounds strictly increasing, so the
        # front of each is the best of the horizon.
        self._lower: collections.deque[tuple[float, float]] = collections.deque()
        self._upper: collections.deque[tuple[float, float]] = collections.deque()
        self._last_probe: float | None = None
        self._last_sent: float | None = None
        # (detected at, floor on the new clock, the old clock's time then)
        self._step: tuple[float, float, float] | None = None
        self.steps_back = 0

    @property
    def known(self) -> bool:
        """Whether any response has told the API's clock yet."""
        return bool(self._lower)

    def offset(self, now: float) -> float | None:
        """The estimated offset (API minus monotonic) at monotonic ``now``, or None."""
        lower = _expire(self._lower, now - self.horizon)
        return lower[0][1] if lower else None

    def uncertainty(self, now: float) -> float | None:
        """How far behind the API's clock the estimate may be (seconds), or None."""
        offset = self.offset(now)
        upper = _expire(self._upper, now - self.horizon)
        if offset is None or not upper:
            return None
        return max(0.0, upper[0][1] - offset)

    def observe(self, date: float, sent: float, arrived: float) -> None:
        """A response stamped with the whole second ``date`` (unix), sent and received at
        monotonic ``sent`` and ``arrived``."""
        lower = date - arrived
        upper = date + 1 - sent
        current = self.offset(arrived)
        if current is not None and current > upper:
            # The API's clock is behind where it could possibly be: it stepped back, and
            # every bound before this response is void.
            self._recent.clear()
            self._lower.clear()
            self.steps_back += 1
            previous = self._last_sent if self._last_sent is not None else sent
            # the old estimate may have been up to a second behind the old clock
            self._step = (arrived, lower + min(previous, sent), current + arrived + 1.0)
        self._last_sent = sent
        self._round_trips.append(max(0.0, arrived - sent))
        self._recent.append(lower)
        # The largest recent lower bound that most recent samples agree with (a real step
        # forward is followed once the median has moved; a lone stray never is).
        median = statistics.median_high(self._recent)
        agreed = max(s for s in self._recent if s <= median + OUTLIER_SECONDS)
        _push(self._lower, arrived, agreed, lambda old: old <= agreed)
        if self._upper and self._upper[0][1] < agreed:
            self._upper.clear()  # the API's clock stepped forward
        _push(self._upper, arrived, upper, lambda old: old >= upper)

    def step_floor(self, now: float) -> float | None:
        """After a step back of the API's clock (detected within ``STEP_MEMORY_SECONDS``
        of monotonic ``now``): the API time, on its new clock, that every write since the
        step is stamped at or after. None when there was no recent step."""
        if self._step is None or now - self._step[0] > STEP_MEMORY_SECONDS:
            return None
        return self._step[1]

    def step_ceiling(self, now: float) -> float | None:
        """After a recent step back: the old clock's time when it was detected, which no
        write before the step was stamped after (its rows are ahead of the new clock, and
        windows bounded by the new one would not read them until it caught up)."""
        if self._step is None or now - self._step[0] > STEP_MEMORY_SECONDS:
            return None
        return self._step[2]

    def settled(self, now: float) -> bool:
        """Whether the uncertainty is down to about a round trip (probes may be rare)."""
        uncertainty = self.uncertainty(now)
        if uncertainty is None:
            return False
        round_trip = statistics.median(self._round_trips) if self._round_trips else 0.0
        return uncertainty <= SETTLED_UNCERTAINTY_SECONDS + 2 * round_trip

    def probe_at(self, now: float) -> float | None:
        """The monotonic time for the next probe request, or None when none is due.

        A probe is due ``probe_interval`` after the last one (``settled_probe_interval``
        once the estimate has :meth:`settled`). It is sent when, were the offset the middle
        of its bounds, a second would just begin on the API's clock: the second its
        response is stamped with then tells which half the offset lies in.
        """
        offset = self.offset(now)
        upper = _expire(self._upper, now - self.horizon)
        if offset is None or not upper:
            return None
        interval = self.settled_probe_interval if self.settled(now) else self.probe_interval
        if self._last_probe is not None and now < self._last_probe + interval:
            return None
        middle = (offset + upper[0][1]) / 2
        return math.ceil(now + middle) - middle

    def probed(self, now: float) -> None:
        """Note that a probe was sent at ``now``."""
        self._last_probe = now


def _expire(
    bounds: collections.deque[tuple[float, float]], before: float
) -> collections.deque[tuple[float, float]]:
    """Drop bounds older than ``before``, but never the newest one (old beats none)."""
    while len(bounds) > 1 and bounds[0][0] < before:
        bounds.popleft()
    return bounds


def _push(
    bounds: collections.deque[tuple[float, float]],
    arrived: float,
    bound: float,
    dominated: Callable[[float], bool],
) -> None:
    """Append a bound, first dropping the older ones it makes redundant."""
    while bounds and dominated(bounds[-1][1]):
        bounds.pop()
    bounds.append((arrived, bound))
