"""ExportClient mechanics over real HTTP against a tiny local aiohttp app.

Retries, Retry-After, timeouts, malformed and truncated bodies, validation, fatal 4xx, the
API clock and the shared limiter. Sleeps are injected (recorded, not slept) where waiting
would only slow the test down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connector.config.settings import ApiSettings
from connector.core.kinds import WindowKind
from connector.errors import FatalSourceError, RetriableSourceError
from connector.ops.metrics import Metrics
from connector.source.client import ExportClient
from connector.source.limiter import RequestLimiter
from connector.source.windows import Window

SECRET = "sk-live-0123456789abcdef"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeApi:
    """A local server whose export handler is replaced per test; records every request."""

    def __init__(self) -> None:
        self.handler: Handler = self.ok
        self.requests: list[web.Request] = []
        self.url = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self.handler(request)

    @staticmethod
    async def ok(request: web.Request) -> web.StreamResponse:
        per_page = int(request.query.get("per_page", "100"))
        rows = [{"meeting_id": 1, "account_id": i + 1} for i in range(min(per_page, 3))]
        return web.json_response(page_body(rows, total=len(rows), per_page=per_page))


def page_body(rows: list[Any], total: int, per_page: int = 500, page: int = 1) -> dict[str, Any]:
    return {
        "current_page": page,
        "per_page": per_page,
        "total": total,
        "last_page": max(1, -(-total // per_page)),
        "data": rows,
    }


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/api/v2/meetings/export", fake.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def settings(url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "api_base_url": url,
        "event_ids": (3,),
        "api_key": SECRET,
        "api_max_retries": 3,
        "api_timeout_seconds": 2.0,
        "api_backoff_initial_seconds": 0.5,
        "api_backoff_max_seconds": 4.0,
        "api_rate_limit_per_second": 0,
    }
    values.update(overrides)
    return ApiSettings(**values)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(
    session: aiohttp.ClientSession, api: FakeApi, sleeps: Sleeps, **overrides: Any
) -> tuple[ExportClient, Metrics]:
    metrics = Metrics()
    conf = settings(api.url, **overrides)
    limiter = RequestLimiter(conf.api_rate_limit_per_second, conf.api_max_concurrency, sleep=sleeps)
    client = ExportClient(session, conf, metrics, limiter, sleep=sleeps)
    return client, metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_sends_window_params_and_auth_header(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    client, metrics = make_client(session, api, Sleeps())
    window = Window(WindowKind.MODIFIED, 100, 200)
    page = await client.fetch_page(3, window, 1, 50, {"order_by": "meeting_id"})
    request = api.requests[0]
    assert dict(request.query) == {
        "event_id": "3",
        "page": "1",
        "per_page": "50",
        "last_modified_from": "100",
        "last_modified_to": "200",
        "order_by": "meeting_id",
    }
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert page.total == 3
    assert page.body_bytes > 0
    assert (
        sample(metrics, "meetings_cdc_rows_fetched_total", event_id="3", window_kind="modified")
        == 3
    )
    assert sample(metrics, "meetings_cdc_api_requests_total", event_id="3", status_class="2xx") == 1
    created = await client.fetch_page(3, Window(WindowKind.CREATED, 5, 6), 1, 10)
    assert created.total == 3
    assert api.requests[1].query["created_from"] == "5"
    assert api.requests[1].query["created_to"] == "6"


async def test_5xx_is_retried_with_jittered_exponential_backoff(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    failures = 3

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal failures
        if failures:
            failures -= 1
            return web.json_response({"error": "overloaded"}, status=503)
        return await FakeApi.ok(request)

    api.handler = flaky
    sleeps = Sleeps()
    client, metrics = make_client(session, api, sleeps)
    page = await client.fetch_page(3, None, 1, 100)
    assert page.total == 3
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= min(4.0, 0.5 * 2**attempt)
    labels = {"event_id": "3", "reason": "server_error"}
    assert sample(metrics, "meetings_cdc_api_retries_total", **labels) == 3
    assert sample(metrics, "meetings_cdc_api_requests_total", event_id="3", status_class="5xx") == 3


async def test_exhausted_retries_raise_retriable(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    async def down(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="bad gateway")

    api.handler = down
    client, _ = make_client(session, api, Sleeps())
    with pytest.raises(RetriableSourceError, match="after 3 retries: HTTP 502: bad gateway"):
        await client.fetch_page(3, None, 1, 100)
    assert len(api.requests) == 4


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_honours_retry_after(
    api: FakeApi, session: aiohttp.ClientSession, form: str
) -> None:
    limited = True

    async def rate_limited(request: web.Request) -> web.StreamResponse:
        nonlocal limited
        if limited:
            limited = False
            if form == "seconds":
                value = "3"
            else:
                value = format_datetime(datetime.fromtimestamp(time.time() + 3, UTC), usegmt=True)
            return web.Response(status=429, headers={"Retry-After": value})
        return await FakeApi.ok(request)

    api.handler = rate_limited
    sleeps = Sleeps()
    client, metrics = make_client(session, api, sleeps)
    await client.fetch_page(3, None, 1, 100)
    # the request waits Retry-After, and the shared limiter holds every request as long
    # (the fake sleep does not pass time, so the hold is seen as a second wait)
    assert len(sleeps.delays) == 2
    assert 1.5 <= sleeps.delays[0] <= 3.0
    assert sample(metrics, "meetings_cdc_api_rate_limited_seconds_total", event_id="3") >= 1.5
    assert (
        sample(metrics, "meetings_cdc_api_retries_total", event_id="3", reason="rate_limited") == 1
    )
    assert sample(metrics, "meetings_cdc_api_requests_total", event_id="3", status_class="429") == 1


async def test_timeouts_are_retried(api: FakeApi, session: aiohttp.ClientSession) -> None:
    slow = True

    async def sluggish(request: web.Request) -> web.StreamResponse:
        nonlocal slow
        if slow:
            slow = False
            await asyncio.sleep(1.0)
        return await FakeApi.ok(request)

    api.handler = sluggish
    client, metrics = make_client(session, api, Sleeps(), api_timeout_seconds=0.2)
    page = await client.fetch_page(3, None, 1, 100)
    assert page.total == 3
    assert sample(metrics, "meetings_cdc_api_retries_total", event_id="3", reason="timeout") == 1
    assert (
        sample(metrics, "meetings_cdc_api_requests_total", event_id="3", status_class="error") == 1
    )


async def _truncated_connection(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Length": "1000", "Content-Type": "application/json"}
    )
    await response.prepare(request)
    await response.write(b'{"current_page": 1, "da')
    request.transport.close()  # type: ignore[union-attr]
    return response


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            lambda r: web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html"),
            "malformed",
        ),
        (
            lambda r: web.Response(
                text='{"current_page": 1, "data": [{"meet', content_type="application/json"
            ),
            "truncated",
        ),
        (lambda r: web.json_response({"data": [1, 2], "total": 5, "last_page": 1}), "invalid"),
        (lambda r: web.json_response({"data": "x", "total": 5, "last_page": 1}), "invalid"),
        (lambda r: web.json_response(page_body([], total=-1)), "invalid"),
        (lambda r: web.json_response([1, 2]), "invalid"),
        (_truncated_connection, "truncated"),
    ],
)
async def test_bad_bodies_are_retried(
    api: FakeApi, session: aiohttp.ClientSession, bad: Callable[[web.Request], Any], reason: str
) -> None:
    served = False

    async def once_bad(request: web.Request) -> web.StreamResponse:
        nonlocal served
        if not served:
            served = True
            result = bad(request)
            return await result if asyncio.iscoroutine(result) else result
        return await FakeApi.ok(request)

    api.handler = once_bad
    client, metrics = make_client(session, api, Sleeps())
    page = await client.fetch_page(3, None, 1, 100)
    assert page.total == 3
    got = {
        s.labels["reason"]
        for s in metrics.api_retries.collect()[0].samples
        if s.name.endswith("_total") and s.value
    }
    assert got == {reason} or (reason == "truncated" and got <= {"truncated", "connection"})


async def test_401_is_fatal_tells_what_to_check_and_never_shows_the_key(
    api: FakeApi, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async def unauthorized(request: web.Request) -> web.StreamResponse:
        # A careless API echoing the credential back: it still must not reach our output.
        got = request.headers.get("Authorization")
        return web.json_response({"error": f"invalid token {got}"}, status=401)

    api.handler = unauthorized
    caplog.set_level(logging.DEBUG)
    client, _ = make_client(session, api, Sleeps())
    with pytest.raises(FatalSourceError) as caught:
        await client.fetch_page(3, None, 1, 100)
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "invalid token Bearer ***" in message
    assert "MEETINGS_CDC_API_KEY" in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value)
    assert SECRET not in repr(client)
    assert SECRET not in caplog.text
    assert len(api.requests) == 1  # not retried


async def test_400_is_fatal_with_the_api_error(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    async def bad_request(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "per_page must be between 1 and 500"}, status=422)

    api.handler = bad_request
    client, _ = make_client(session, api, Sleeps())
    with pytest.raises(FatalSourceError, match="HTTP 422: per_page must be between 1 and 500"):
        await client.fetch_page(3, None, 1, 100)


async def test_connection_refused_is_retried_then_retriable(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    conf = settings("http://127.0.0.1:9", api_max_retries=2)
    sleeps = Sleeps()
    client = ExportClient(session, conf, Metrics(), sleep=sleeps)
    with pytest.raises(RetriableSourceError, match="after 2 retries"):
        await client.fetch_page(3, None, 1, 100)
    assert len(sleeps.delays) == 2
    assert SECRET not in caplog.text


async def test_api_now_follows_the_date_header(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    skew = 3_600

    async def skewed(request: web.Request) -> web.StreamResponse:
        response = await FakeApi.ok(request)
        date = datetime.fromtimestamp(time.time() + skew, UTC)
        response.headers["Date"] = format_datetime(date, usegmt=True)
        return response

    api.handler = skewed
    client, metrics = make_client(session, api, Sleeps())
    assert abs(client.api_now() - time.time()) <= 1  # local clock before any response
    await client.fetch_page(3, None, 1, 1)
    assert abs(client.api_now() - (time.time() + skew)) <= 2
    offset = metrics.registry.get_sample_value("meetings_cdc_api_clock_offset_seconds")
    assert offset is not None
    assert abs(offset - skew) <= 2
    # one response: the estimate may be up to a second (plus the round trip) behind
    uncertainty = metrics.registry.get_sample_value("meetings_cdc_api_clock_uncertainty_seconds")
    assert uncertainty is not None
    assert 0 < uncertainty <= 1.5


async def test_a_clock_probe_asks_for_nothing_and_is_spaced(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    """The probe only wants a Date header: an always-empty window, one row, no count of the
    whole event for the API to make; and the next one is not due for a while."""
    client, _ = make_client(session, api, Sleeps())
    assert client.clock_probe_delay() is None  # no clock known yet: nothing to aim at
    await client.fetch_page(3, None, 1, 1)
    assert client.clock_probe_delay() is not None

    await client.probe_clock(3)

    query = api.requests[-1].query
    assert (query["created_from"], query["created_to"], query["per_page"]) == ("0", "0", "1")
    assert client.clock_probe_delay() is None  # the next one is due a probe interval later
    requests = len(api.requests)
    await client.probe_clock(4)  # another event's loop, a moment later: not due
    assert len(api.requests) == requests


async def test_concurrency_is_bounded_by_the_shared_limiter(
    api: FakeApi, session: aiohttp.ClientSession
) -> None:
    in_flight = peak = 0

    async def counting(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return await FakeApi.ok(request)

    api.handler = counting
    conf = settings(api.url, api_max_concurrency=3)
    limiter = RequestLimiter.from_settings(conf)
    first = ExportClient(session, conf, Metrics(), limiter=limiter)
    second = ExportClient(session, conf, Metrics(), limiter=limiter)  # another event, same process
    await asyncio.gather(*(c.fetch_page(e, None, 1, 10) for c, e in [(first, 3), (second, 4)] * 10))
    assert peak == 3


async def test_token_bucket_spaces_requests() -> None:
    now = 0.0
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    limiter = RequestLimiter(8.0, 10, clock=lambda: now, sleep=sleep)
    for _ in range(5):
        async with limiter:
            pass
    # a burst of a quarter second's worth (2), then one every 0.125 s
    assert waits == [0.125, 0.25, 0.375]
    limiter.pause(10)
    async with limiter:
        pass
    assert waits[-1] == 10


async def test_an_unresolvable_host_is_named_plainly_at_the_first_failure(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    conf = settings("http://does-not-exist.invalid", api_max_retries=1)
    client = ExportClient(session, conf, Metrics(), sleep=Sleeps())
    with pytest.raises(RetriableSourceError):
        await client.fetch_page(3, None, 1, 100)
    first = caplog.records[0]
    assert first.levelno == logging.WARNING
    message = first.getMessage()
    assert "does-not-exist.invalid" in message
    assert "MEETINGS_CDC_API_BASE_URL" in message
    assert "ClientConnectorDNSError" in message or "resolve" in message.lower()
