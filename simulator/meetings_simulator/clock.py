"""The simulator's clock: the API's idea of "now", possibly skewed or frozen.

Every timestamp the simulator writes (``created_at``, ``updated_at``) and its HTTP ``Date``
header come from one :class:`SimClock`, so tests can make the API clock differ from the
caller's (``skew_seconds``) or pin it to a known second (``freeze``).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Wall-clock time plus a settable skew, or a frozen second; whole seconds."""

    __slots__ = ("_base", "frozen_at", "skew_seconds")

    def __init__(
        self,
        skew_seconds: float = 0.0,
        *,
        base: Callable[[], float] = time.time,
        frozen_at: int | None = None,
    ) -> None:
        self._base = base
        self.skew_seconds = skew_seconds
        self.frozen_at = frozen_at

    def time(self) -> float:
        """The API's current time as float unix seconds (skew applied)."""
        if self.frozen_at is not None:
            return float(self.frozen_at)
        return self._base() + self.skew_seconds

    def now(self) -> int:
        """The API's current whole unix second."""
        return int(self.time())

    def freeze(self, at: int | None = None) -> int:
        """Stop the clock at ``at`` (default: the current second); return that second."""
        self.frozen_at = self.now() if at is None else at
        return self.frozen_at

    def advance(self, seconds: int) -> int:
        """Move a frozen clock forward (or add to the skew of a running one)."""
        if self.frozen_at is not None:
            self.frozen_at += seconds
        else:
            self.skew_seconds += seconds
        return self.now()

    def unfreeze(self) -> None:
        """Let the clock run again (wall clock plus skew)."""
        self.frozen_at = None

    def __repr__(self) -> str:
        return f"SimClock(skew_seconds={self.skew_seconds!r}, frozen_at={self.frozen_at!r})"
