"""The request budget of a process: rate (token bucket), concurrency (semaphore) and the
priority of foreground work (polls) over background work (reconcile passes).

One :class:`RequestLimiter` is shared by every event of the process and by every request
of the :class:`~connector.source.client.ExportClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType

from connector.config.settings import ApiSettings

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: True in a task whose work may wait for others' (the reconciler): at most
#: ``max_concurrency - 1`` of its requests hold or queue for a slot at once, so a poll's
#: request waits for one slot to free at most, however many reads a pass has started; and
#: no body of theirs is decoded while foreground work runs.
BACKGROUND = contextvars.ContextVar("meetings_cdc_background_reads", default=False)


class RequestLimiter:
    """Request rate (token bucket) and concurrency (semaphore) shared by a whole process,
    and the priority of foreground work over background work.

    ``async with limiter:`` waits for a free slot and a token. ``pause(seconds)`` holds back
    every request, e.g. after a 429 with Retry-After.

    Priority: a poll cycle runs inside ``with limiter.foreground():``. A reconcile pass is
    CPU work in the same event loop (pages decoded, rows parsed, states decoded and
    classified) and requests to the same API; at its yield points it awaits
    :meth:`background_turn`, which waits while any foreground work of the process runs. So
    a poll's pages and its commit do not queue behind a pass's CPU work: at most behind one
    slice of it. A pass's requests still go out meanwhile (a poll waiting on the network
    would stall it for nothing), within their slots and their own pace.
    """

    def __init__(
        self,
        rate_per_second: float,
        max_concurrency: int,
        *,
        background_rate_per_second: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_second < 0 or max_concurrency < 1 or background_rate_per_second < 0:
            raise ValueError("rates must be >= 0 and max_concurrency >= 1")
        self.rate = rate_per_second
        self.max_concurrency = max_concurrency
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._background = asyncio.Semaphore(max(1, max_concurrency - 1))
        self._clock = clock
        self._sleep = sleep
        self._bucket = _TokenBucket(rate_per_second, clock())
        # A pass's own pace (passes of every event together): a pass that fetched as fast
        # as it can keeps the process (and the API) busy all the time, and a busy process
        # is served last by the OS when a poll wakes; paced, the work left between polls
        # is bounded (README: MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND).
        self._background_bucket = _TokenBucket(background_rate_per_second, clock())
        self._paused_until = 0.0
        self._foreground = 0  # foreground sections open
        # Set when the foreground work a background waiter waits for is over: one per busy
        # period, so a waiter goes on once that work ends even if new work began meanwhile
        # (back-to-back polls cannot starve a pass; it gets a slice between them).
        self._quiet = asyncio.Event()
        self._quiet.set()

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> RequestLimiter:
        """The limiter configured by ``api_rate_limit_per_second``, ``api_max_concurrency``
        and ``reconcile_rate_limit_per_second``."""
        return cls(
            settings.api_rate_limit_per_second,
            settings.api_max_concurrency,
            background_rate_per_second=settings.reconcile_rate_limit_per_second,
        )

    def pause(self, seconds: float) -> None:
        """Hold back every request for ``seconds`` from now."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark foreground work (a poll cycle): background work waits until it ends."""
        if self._foreground == 0:
            self._quiet = asyncio.Event()
        self._foreground += 1
        try:
            yield
        finally:
            self._foreground -= 1
            if self._foreground == 0:
                self._quiet.set()

    async def background_turn(self) -> None:
        """Let other tasks run; while foreground work runs, wait until it is over."""
        await asyncio.sleep(0)
        if self._foreground:
            await self._quiet.wait()

    async def __aenter__(self) -> None:
        background = BACKGROUND.get()
        if background:
            await self._background.acquire()
        try:
            if background:
                wait = self._background_bucket.reserve(self._clock())
                if wait > 0:
                    await self._sleep(wait)
            await self._semaphore.acquire()
            try:
                await self._wait_turn()
            except BaseException:
                self._semaphore.release()
                raise
        except BaseException:
            if background:
                self._background.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._semaphore.release()
        if BACKGROUND.get():
            self._background.release()

    async def _wait_turn(self) -> None:
        now = self._clock()
        wait = max(self._paused_until - now, self._bucket.reserve(now))
        if wait > 0:
            await self._sleep(wait)

    def __repr__(self) -> str:
        return (
            f"RequestLimiter(rate_per_second={self.rate}, max_concurrency={self.max_concurrency})"
        )


class _TokenBucket:
    """``rate`` tokens a second, a burst of a quarter second's worth; rate 0 = no limit.

    A quarter second: an API that limits with a bucket of its own (likely a second's worth)
    then never sees this one empty it, whatever the jitter between our send times and its
    arrival times (a full-size burst let a process at its limit draw 429s).
    """

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._burst = max(1.0, rate / 4)
        self._tokens = self._burst
        self._stamp = now

    def reserve(self, now: float) -> float:
        """Take a token; the seconds until it is earned. The balance may go negative:
        callers are served in the order they reserved, without polling."""
        if self.rate <= 0:
            return 0.0
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return max(0.0, -self._tokens / self.rate)


__all__ = ["BACKGROUND", "RequestLimiter"]
