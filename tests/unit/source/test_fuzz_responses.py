"""Fuzzing the response handling: arbitrary statuses, headers and bodies from a real local
HTTP server to ``ExportClient.fetch_page`` and ``WindowReader.read``.

Properties (DESIGN.md problem 9: never crash the loop, never advance a watermark past data
not read):

- ``fetch_page`` raises nothing but ``RetriableSourceError`` / ``FatalSourceError``, returns
  a page only from a 2xx response whose body is a well-formed, self-consistent page (and then
  exactly its rows), is fatal only after a non-retriable status, and its API clock stays an
  integer whatever the ``Date`` header says;
- ``WindowReader.read`` over an honest data set whose responses are corrupted at random
  (error statuses, 429 with any ``Retry-After``, non-JSON, truncated bodies, cut connections,
  wrong totals or page numbers, malformed rows) raises nothing but those two errors; the parts
  it yields are contiguous from the window's start, hold only true meetings, miss none of the
  window's meetings (a meeting is withheld only when one of its rows was served corrupted)
  and dead-letter only rows that were served corrupted.

The server runs in its own thread and event loop for the whole module; each example runs the
client in a fresh loop (hypothesis drives synchronous tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from connector.config.settings import ApiSettings
from connector.core.kinds import WindowKind
from connector.core.model import Meeting
from connector.errors import FatalSourceError, RetriableSourceError
from connector.ops.metrics import Metrics
from connector.source.assembly import assemble
from connector.source.client import EXPORT_PATH, ExportClient
from connector.source.export_page import ExportPage
from connector.source.leaf_parts import WindowPart
from connector.source.limiter import RequestLimiter
from connector.source.reader import WindowReader
from connector.source.rows import RowParser
from connector.source.windows import Window

EVENT = 3
S = 1_700_000_000  # the data set's first second


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut: int | None = None  # announce the whole body, send this many bytes, close


@dataclass
class Script:
    """What the server answers: scripted replies first, then the honest data set."""

    replies: list[Reply] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Any] = field(default_factory=list)  # per request of a reader run
    served: list[Reply] = field(default_factory=list)
    corrupted: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


class Server:
    """An aiohttp server in a thread of its own, answering from ``self.script``."""

    def __init__(self) -> None:
        self.script = Script()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(EXPORT_PATH, self._export)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> Server:
        self._thread.start()
        self._ready.wait(30)
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _export(self, request: web.Request) -> web.StreamResponse:
        script = self.script
        script.requests += 1
        if script.replies:
            reply = script.replies.pop(0)
        else:
            fault = script.faults.pop(0) if script.faults else None
            reply = honest_reply(script, request.query, fault)
        script.served.append(reply)
        if reply.cut is None:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = len(reply.body)
        await response.prepare(request)
        await response.write(reply.body[: reply.cut])
        if request.transport is not None:
            request.transport.close()
        return response


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server().start()
    yield running
    running.stop()


def api_settings(url: str) -> ApiSettings:
    return ApiSettings(
        api_base_url=url,
        event_ids=(EVENT,),
        api_max_retries=2,
        api_timeout_seconds=5.0,
        api_backoff_initial_seconds=0.001,
        api_backoff_max_seconds=0.001,
        api_rate_limit_per_second=0,
    )


async def _no_sleep(_: float) -> None:
    return None


@contextlib.asynccontextmanager
async def export_client(url: str):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        yield ExportClient(
            session,
            api_settings(url),
            Metrics(),
            limiter=RequestLimiter(0, 4, sleep=_no_sleep),
            sleep=_no_sleep,
        )


def page_body(rows: list[Any], total: int, page: int, per_page: int) -> dict[str, Any]:
    return {
        "current_page": page,
        "per_page": per_page,
        "total": total,
        "last_page": max(1, -(-total // per_page)),
        "from": None if not rows else (page - 1) * per_page + 1,
        "to": None if not rows else (page - 1) * per_page + len(rows),
        "data": rows,
    }


# --- fetch_page -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
STATUSES = [200, 201, 203, 206, 299, 300, 301, 302, 400, 401, 403, 404, 408, 409, 418, 422]
STATUSES += [429, 500, 501, 502, 503, 504, 507, 599]
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def replies(draw: st.DrawFn, page: int, per_page: int) -> Reply:
    status = draw(st.sampled_from(STATUSES))
    rows = draw(st.lists(json_values, max_size=per_page))
    total = (page - 1) * per_page + len(rows)
    if len(rows) == per_page:
        total += draw(st.integers(0, 50))
    body_json: Any = page_body(rows, total, page, per_page)
    kind = draw(st.sampled_from(["page", "mutated", "json", "bytes", "truncated", "cut"]))
    if kind == "mutated":
        key = draw(st.sampled_from(sorted(body_json)))
        if draw(st.booleans()):
            del body_json[key]
        else:
            body_json[key] = draw(json_values)
    elif kind == "json":
        body_json = draw(json_values)
    body = json.dumps(body_json).encode()
    if kind == "bytes":
        body = draw(st.binary(max_size=60))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "text/html", "application/json; charset=latin-1"])
        )
    if draw(st.booleans()):
        headers["Date"] = draw(
            header_text
            | st.datetimes(timezones=st.just(UTC)).map(
                lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
            )
        )
    if draw(st.booleans()):
        headers["Retry-After"] = draw(
            header_text | st.integers(-5, 10**12).map(str) | st.floats().map(str)
        )
    if status == 200 and body and draw(st.integers(0, 9)) == 0:
        headers["Content-Encoding"] = "gzip"  # a plain body claiming gzip
    cut = None
    if kind == "truncated" and len(body) > 1:
        body = body[: draw(st.integers(1, len(body) - 1))]
    elif kind == "cut" and len(body) > 1:
        cut = draw(st.integers(1, len(body) - 1))
    return Reply(status, body, headers, cut)


def acceptable(reply: Reply, page: int, per_page: int) -> list[Any] | None:
    """The rows of a reply the client may accept (an independent statement of the contract)."""
    if not 200 <= reply.status < 300 or reply.cut is not None:
        return None
    if "Content-Encoding" in reply.headers:
        return None
    try:
        body = json.loads(reply.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    rows, total, last = body.get("data"), body.get("total"), body.get("last_page")
    if not isinstance(rows, list):
        return None
    for number in (total, last):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            return None
    if body.get("current_page", page) != page:
        return None
    if len(rows) != max(0, min(per_page, total - (page - 1) * per_page)):
        return None
    return rows


def retriable(reply: Reply) -> bool:
    # A body cut short is a transport failure whatever the status said.
    return (
        reply.status == 429
        or reply.status >= 500
        or 200 <= reply.status < 300
        or reply.cut is not None
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data(), st.integers(1, 3), st.sampled_from([1, 3, 500]))
def test_fetch_page_accepts_only_good_pages_and_raises_only_source_errors(
    server: Server, data: st.DataObject, page: int, per_page: int
) -> None:
    script = [data.draw(replies(page, per_page)) for _ in range(3)]  # 1 try + 2 retries
    server.script = Script(replies=list(script))

    async def fetch() -> tuple[ExportPage | BaseException, int]:
        async with export_client(server.url) as client:
            try:
                result: ExportPage | BaseException = await client.fetch_page(
                    EVENT, Window(WindowKind.MODIFIED, S, S + 9), page, per_page
                )
            except (RetriableSourceError, FatalSourceError) as exc:
                result = exc
            now = client.api_now()
            assert isinstance(now, int)
            return result, len(server.script.served)

    outcome, served = asyncio.run(fetch())
    event(type(outcome).__name__)
    expected: ExportPage | type[Exception] = RetriableSourceError
    for reply in script:
        rows = acceptable(reply, page, per_page)
        if rows is not None:
            expected = ExportPage(rows, 0, 0, 0)
            break
        if not retriable(reply):
            expected = FatalSourceError
            break
    if isinstance(expected, ExportPage):
        assert isinstance(outcome, ExportPage), (outcome, script)
        assert outcome.rows == expected.rows
    else:
        assert isinstance(outcome, expected), (outcome, script)
    assert served <= len(script)


# --- WindowReader.read ------------------------------------------------------------------------


def _time(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


@st.composite
def data_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for meeting_id in range(1, draw(st.integers(0, 10)) + 1):
        created = S + draw(st.integers(0, 6))
        modified = created + draw(st.integers(0, 3))
        accounts = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
        for position, account in enumerate(sorted(accounts)):
            rows.append(
                {
                    "meeting_id": meeting_id,
                    "event_id": EVENT,
                    "status": "confirmed",
                    "start_time": _time(S + 86_400),
                    "end_time": _time(S + 88_200),
                    "location": f"Table {meeting_id}",
                    "created_at": _time(created),
                    "updated_at": _time(modified),
                    "title": "Intro",
                    "duration": 30,
                    "account_id": account,
                    "participant_role": "requester" if position == 0 else "invitee",
                    "participant_status": "accepted",
                }
            )
    return rows


BAD_VALUES = {
    "meeting_id": [None, "x", -1, 1.5, [1]],
    "account_id": ["x", None, 0, True],
    "start_time": ["31/02/2024 25:61", None, 17.5],
    "status": ["", None, 3],
    "updated_at": ["never", None],
}
faults = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from([429, 500, 503, 502]).map(lambda s: ("status", s)),
    st.sampled_from(["malformed", "truncated", "cut", "page", "data", "last_page"]),
    st.integers(1, 40).map(lambda k: ("total_plus", k)),
    st.tuples(st.just("bad_row"), st.integers(0, 30), st.sampled_from(sorted(BAD_VALUES))),
)


def _second(row: dict[str, Any], key: str) -> int:
    return int(datetime.strptime(row[key], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def honest_reply(script: Script, query: Any, fault: Any) -> Reply:
    """The data set filtered and paged as the API does, then ``fault`` applied."""
    page, per_page = int(query.get("page", "1")), int(query.get("per_page", "100"))
    rows = script.rows
    for param, key in (("created", "created_at"), ("last_modified", "updated_at")):
        low, high = query.get(f"{param}_from"), query.get(f"{param}_to")
        if low is not None:
            rows = [r for r in rows if _second(r, key) >= int(low)]
        if high is not None:
            rows = [r for r in rows if _second(r, key) <= int(high)]
    total = len(rows)
    data = [dict(r) for r in rows[(page - 1) * per_page : page * per_page]]
    headers = {"Content-Type": "application/json"}
    if isinstance(fault, tuple) and fault[0] == "status":
        return Reply(fault[1], b'{"error": "injected"}', {**headers, "Retry-After": "1"})
    if isinstance(fault, tuple) and fault[0] == "bad_row" and data:
        row = data[fault[1] % len(data)]
        values = BAD_VALUES[fault[2]]
        row[fault[2]] = values[fault[1] % len(values)]
        script.corrupted.append(row)
    body: dict[str, Any] = page_body(data, total, page, per_page)
    if isinstance(fault, tuple) and fault[0] == "total_plus":
        body["total"] += fault[1]
    elif fault == "page":
        body["current_page"] = page + 1
    elif fault == "data":
        body["data"] = {"rows": data}
    elif fault == "last_page":
        body["last_page"] = "many"
    text = json.dumps(body).encode()
    if fault == "malformed":
        return Reply(200, b"<html>502 Bad Gateway</html>", headers)
    if fault == "truncated":
        return Reply(200, text[: len(text) // 2], headers)
    if fault == "cut":
        return Reply(200, text, headers, cut=len(text) // 2)
    return Reply(200, text, headers)


def true_meetings(rows: list[dict[str, Any]]) -> dict[int, Meeting]:
    parser = RowParser()
    assembled = assemble([parser.parse(r, EVENT) for r in rows])
    assert not assembled.inconsistent
    assert not assembled.withheld
    return {m.meeting_id: m for m in assembled.meetings}


def _in(meeting: Meeting, window: Window) -> bool:
    millis = meeting.created_at if window.kind is WindowKind.CREATED else meeting.modified_at
    return window.start <= millis // 1000 <= window.end


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data_sets(),
    st.lists(faults, max_size=12),
    st.sampled_from(WindowKind),
    st.integers(0, 4),
    st.integers(5, 9),
    st.sampled_from([1, 2, 3, 5, 500]),
)
@example(  # a re-read for a row without a readable meeting id finds the window outgrown
    rows=[
        {
            "meeting_id": 1,
            "event_id": 3,
            "status": "confirmed",
            "start_time": "2023-11-15 22:13:20",
            "end_time": "2023-11-15 22:43:20",
            "location": "Table 1",
            "created_at": "2023-11-14 22:13:20",
            "updated_at": "2023-11-14 22:13:20",
            "title": "Intro",
            "duration": 30,
            "account_id": 1,
            "participant_role": "requester",
            "participant_status": "accepted",
        }
    ],
    fault_list=[("bad_row", 0, "meeting_id"), ("total_plus", 1)],
    kind=WindowKind.CREATED,
    start=0,
    end=5,
    per_page=1,
)
def test_window_reader_yields_only_complete_true_parts(
    server: Server,
    rows: list[dict[str, Any]],
    fault_list: list[Any],
    kind: WindowKind,
    start: int,
    end: int,
    per_page: int,
) -> None:
    server.script = Script(rows=rows, faults=list(fault_list))
    window = Window(kind, S + start, S + end)
    truth = true_meetings(rows)

    async def read() -> tuple[list[WindowPart], BaseException | None]:
        parts: list[WindowPart] = []
        async with export_client(server.url) as client:
            reader = WindowReader(client, per_page, sleep=_no_sleep)
            try:
                async for part in reader.read(EVENT, window):
                    parts.append(part)
            except (RetriableSourceError, FatalSourceError) as exc:
                return parts, exc
        return parts, None

    parts, error = asyncio.run(read())
    assert not isinstance(error, FatalSourceError), error  # no 4xx was served
    event(f"parts={min(len(parts), 3)} error={type(error).__name__}")
    event(f"dead letters: {bool(sum(len(p.dead_letters) for p in parts))}")
    corrupted_ids = {
        r["meeting_id"] for r in server.script.corrupted if isinstance(r.get("meeting_id"), int)
    }
    corrupted_raws = [json.dumps(r, separators=(",", ":")) for r in server.script.corrupted]
    expected_start = window.start
    for part in parts:
        assert part.window.kind is kind
        assert part.window.start == expected_start, (part.window, window)
        assert part.window.end <= window.end
        expected_start = part.window.end + 1
        for meeting in part.meetings:
            assert truth.get(meeting.meeting_id) == meeting, "a meeting the data set lacks"
            assert _in(meeting, part.window)
        for meeting in truth.values():
            if _in(meeting, part.window) and meeting not in part.meetings:
                assert meeting.meeting_id in part.inconsistent, f"lost {meeting.meeting_id}"
        for letter in part.dead_letters:
            assert json.loads(letter.raw) in [json.loads(r) for r in corrupted_raws]
        assert not (part.inconsistent - corrupted_ids - _unreadable_ids(server.script))
    if error is None:
        assert expected_start == window.end + 1, "the read ended before the window's end"


def _unreadable_ids(script: Script) -> set[Any]:
    # A row whose meeting id was corrupted may make any meeting in its window suspect.
    if any(not isinstance(r.get("meeting_id"), int) for r in script.corrupted):
        return {r["meeting_id"] for r in script.rows}
    return set()
