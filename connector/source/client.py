"""The export API client: one page per call, retried, rate limited, validated; the API clock.

This is the one module of the source side that does network I/O. It never decides what to
read (that is the reader's job): it fetches one page of one window and either returns a
validated :class:`ExportPage` or raises ``FatalSourceError`` (retrying cannot help: bad
key, bad request) or ``RetriableSourceError`` (transient failures outlasted every retry).

Transient failures (5xx, 429, timeouts, connection errors, bodies that are not JSON or are
cut short, pages that contradict themselves) are retried with exponential backoff and full
jitter; a 429 waits for its ``Retry-After`` and holds back every request of the process
meanwhile. One :class:`~connector.source.limiter.RequestLimiter` shared by every event of
the process paces the requests; :mod:`connector.source.export_page` checks each body.

The API key travels only in a request header: it is never logged, never part of an error
message (error text from the API is redacted too) and never part of a repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp

from connector.config.settings import ApiSettings
from connector.core.kinds import WindowKind
from connector.errors import FatalSourceError, RetriableSourceError
from connector.ops.labels import RetryReason, StatusClass
from connector.ops.metrics import Metrics
from connector.source.api_clock import ApiClock
from connector.source.api_errors import (
    EXPORT_PATH,
    error_text,
    redact,
    rejection_message,
    retry_after_seconds,
)
from connector.source.export_page import ExportPage, InvalidPage, parse_page
from connector.source.limiter import BACKGROUND, RequestLimiter
from connector.source.windows import Window

log = logging.getLogger(__name__)

#: What a clock probe asks for: nothing, so the API has no rows to count.
CLOCK_PROBE_WINDOW = Window(WindowKind.CREATED, 0, 0)


Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class _Transient(Exception):
    """One failed attempt that may succeed when retried."""

    def __init__(self, reason: RetryReason, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class ExportClient:
    """Fetches export pages for any number of events over one injected aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ApiSettings,
        metrics: Metrics,
        limiter: RequestLimiter | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._metrics = metrics
        self._limiter = limiter or RequestLimiter.from_settings(settings)
        self._sleep = sleep
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._url = settings.api_base_url + EXPORT_PATH
        self._headers = {"Accept": "application/json", **settings.auth_headers()}
        self._secrets = [s for s in settings.secret_values() if s]
        self._timeout = aiohttp.ClientTimeout(total=settings.api_timeout_seconds)
        # The API's clock as an offset from our monotonic clock, from the Date headers.
        self.clock = ApiClock()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        settings: ApiSettings,
        metrics: Metrics,
        limiter: RequestLimiter | None = None,
    ) -> AsyncIterator[ExportClient]:
        """A client over a new session sized for ``settings``; closes the session on exit."""
        connector = aiohttp.TCPConnector(limit=settings.api_max_concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            yield cls(session, settings, metrics, limiter)

    def __repr__(self) -> str:
        return f"ExportClient(url={self._url!r})"

    @property
    def settings(self) -> ApiSettings:
        """The settings the client was built with."""
        return self._settings

    @property
    def metrics(self) -> Metrics:
        """Where the requests are counted; also the reader's metrics."""
        return self._metrics

    @property
    def limiter(self) -> RequestLimiter:
        """The limiter shared by the process: also the foreground/background priority."""
        return self._limiter

    # --- the API clock ------------------------------------------------------------------------

    def api_now(self) -> int:
        """The API's clock in unix seconds (whole seconds that have begun there).

        Estimated from the responses' ``Date`` headers by :class:`ApiClock`: never ahead
        of the API's clock (an estimate a little behind only delays windows), within a
        round trip of it once a response was stamped just after a second began (the
        engine's clock probes see to that). Before the first response this is the local
        clock.
        """
        return int(self.api_time())

    def api_time(self) -> float:
        """The API's clock in fractional unix seconds (estimate; see :meth:`api_now`)."""
        offset = self.clock.offset(self._clock())
        if offset is None:
            return self._wall()
        return self._clock() + offset

    def api_second_at(self, wall: float) -> int:
        """The API's second, on its clock as estimated now, at the instant ``wall`` of this
        machine's wall clock (when a committed progress was written, say)."""
        return int(self.api_time() - (self._wall() - wall))

    def api_step(self) -> tuple[int, int] | None:
        """After a recent step back of the API's clock: the API second every write since
        carries at least, and the last second a write before it can carry (see
        :meth:`ApiClock.step_floor` and :meth:`ApiClock.step_ceiling`); else None."""
        now = self._clock()
        floor, ceiling = self.clock.step_floor(now), self.clock.step_ceiling(now)
        if floor is None or ceiling is None:
            return None
        return int(floor), math.ceil(ceiling)

    @property
    def api_clock_known(self) -> bool:
        """Whether a response has told the API's clock yet (else api_now() is local)."""
        return self.clock.known

    def clock_probe_delay(self) -> float | None:
        """Seconds until a clock probe (:meth:`probe_clock`) is due, or None."""
        now = self._clock()
        at = self.clock.probe_at(now)
        return None if at is None else max(0.0, at - now)

    async def probe_clock(self, event_id: int) -> None:
        """Send the cheapest request there is, for its ``Date`` header only: one row of a
        window that is always empty (meetings created in the first second of 1970). One per
        process and probe interval: if another event's loop probed meanwhile, nothing."""
        now = self._clock()
        if self.clock.probe_at(now) is None:
            return
        self.clock.probed(now)
        await self.fetch_page(event_id, CLOCK_PROBE_WINDOW, page=1, per_page=1)

    def _observe_date(self, header: str | None, sent: float) -> None:
        if not header:
            return
        try:
            api_time = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        steps_back = self.clock.steps_back
        self.clock.observe(api_time, sent, self._clock())
        if self.clock.steps_back != steps_back:
            log.warning("the API's clock went back; its estimate starts again")
        self._metrics.api_clock_offset.set(self.api_time() - self._wall())
        uncertainty = self.clock.uncertainty(self._clock())
        if uncertainty is not None:
            self._metrics.api_clock_uncertainty.set(uncertainty)

    # --- pages --------------------------------------------------------------------------------

    async def count_rows(self, event_id: int, window: Window) -> int | None:
        """The rows of ``window`` as the API counts them (one ``per_page=1`` request), or
        None when the API reports no ``total`` (the delete check then cannot run)."""
        page = await self.fetch_page(event_id, window, page=1, per_page=1, total_optional=True)
        return None if page.total < 0 else page.total

    async def fetch_page(
        self,
        event_id: int,
        window: Window | None,
        page: int,
        per_page: int,
        extra_params: Mapping[str, int | str] | None = None,
        *,
        total_optional: bool = False,
    ) -> ExportPage:
        """Fetch and validate one page of ``window`` (None: every row of the event).

        Raises ``RetriableSourceError`` when transient failures outlast
        ``api_max_retries`` retries, ``FatalSourceError`` when retrying cannot help.
        """
        params: dict[str, str] = {
            "event_id": str(event_id),
            "page": str(page),
            "per_page": str(per_page),
        }
        if window is not None:
            prefix = "created" if window.kind is WindowKind.CREATED else "last_modified"
            params[f"{prefix}_from"] = str(window.start)
            params[f"{prefix}_to"] = str(window.end)
        for key, value in (extra_params or {}).items():
            params[key] = str(value)
        label = str(event_id)
        retries = self._settings.api_max_retries
        for attempt in range(retries + 1):
            try:
                result = await self._attempt(params, page, per_page, label, total_optional)
            except _Transient as failure:
                if attempt == retries:
                    raise RetriableSourceError(
                        f"export API still failing for event {event_id} after {retries} "
                        f"retries: {failure}",
                        retry_after=failure.retry_after,
                    ) from None
                await self._back_off(attempt, failure, label)
                continue
            kind = window.kind.value if window is not None else WindowKind.CREATED.value
            self._metrics.rows_fetched.labels(label, kind).inc(len(result.rows))
            self._metrics.pages_fetched.labels(label, kind).inc()
            self._metrics.bytes_fetched.labels(label).inc(result.body_bytes)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _back_off(self, attempt: int, failure: _Transient, label: str) -> None:
        if failure.retry_after is not None:
            delay = min(failure.retry_after, self._settings.api_backoff_max_seconds * 4)
            self._limiter.pause(delay)
            self._metrics.api_rate_limited_seconds.labels(label).inc(delay)
        else:
            ceiling = min(
                self._settings.api_backoff_max_seconds,
                self._settings.api_backoff_initial_seconds * 2**attempt,
            )
            delay = self._rng.uniform(0, ceiling)  # full jitter
        self._metrics.api_retries.labels(label, failure.reason).inc()
        # The message itself names the host, the setting and the error: an unresolvable or
        # refusing host must be plain from the first failure, not after every retry.
        log.warning(
            "export request to %s (MEETINGS_CDC_API_BASE_URL) failed: %s; retry %d in %.1fs",
            urlsplit(self._url).netloc,
            failure,
            attempt + 1,
            delay,
            extra={
                "reason": failure.reason,
                "error": str(failure),
                "attempt": attempt + 1,
                "delay_seconds": round(delay, 3),
            },
        )
        await self._sleep(delay)

    async def _attempt(
        self,
        params: dict[str, str],
        page: int,
        per_page: int,
        label: str,
        total_optional: bool = False,
    ) -> ExportPage:
        status: int | None = None
        started = self._clock()
        try:
            async with self._limiter:
                started = self._clock()
                try:
                    async with self._session.get(
                        self._url, params=params, headers=self._headers, timeout=self._timeout
                    ) as response:
                        status = response.status
                        self._observe_date(response.headers.get("Date"), started)
                        body = await response.read()
                        retry_after = response.headers.get("Retry-After")
                except TimeoutError:
                    raise _Transient(
                        RetryReason.TIMEOUT,
                        f"no response within {self._settings.api_timeout_seconds}s",
                    ) from None
                except aiohttp.ClientPayloadError as exc:
                    raise _Transient(
                        RetryReason.TRUNCATED, f"body cut short: {redact(exc, self._secrets)}"
                    ) from None
                except aiohttp.ClientError as exc:
                    raise _Transient(
                        RetryReason.CONNECTION,
                        f"{type(exc).__name__}: {redact(exc, self._secrets)}",
                    ) from None
        finally:
            self._metrics.api_requests.labels(label, StatusClass.of(status)).inc()
            self._metrics.api_request_duration.labels(label).observe(self._clock() - started)
        if status == 429:
            wait = retry_after_seconds(retry_after, self._wall())
            raise _Transient(RetryReason.RATE_LIMITED, "429 Too Many Requests", retry_after=wait)
        if status >= 500:
            raise _Transient(
                RetryReason.SERVER_ERROR, f"HTTP {status}: {error_text(body, self._secrets)}"
            )
        if status >= 300:
            raise FatalSourceError(rejection_message(status, params, body, self._secrets))
        if BACKGROUND.get():
            await self._limiter.background_turn()  # a big page's decode waits for a poll
        try:
            return parse_page(body, page, per_page, total_optional)
        except InvalidPage as exc:
            raise _Transient(exc.reason, str(exc)) from None
