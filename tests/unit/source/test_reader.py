"""WindowReader's request order and clean-up, against an in-memory export API."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.config.settings import ApiSettings
from connector.core.kinds import WindowKind
from connector.ops.metrics import Metrics
from connector.source.export_page import ExportPage
from connector.source.leaf_parts import WindowPart
from connector.source.reader import LEAF_ROWS, WindowReader
from connector.source.rows import RowParser
from connector.source.windows import Window

EVENT = 3
S = 1_700_000_000


def _time(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def rows_of(meetings: int, spacing: int = 1) -> list[dict[str, Any]]:
    """One row per meeting, meeting ``i`` created at second ``S + i * spacing``."""
    return [
        {
            "meeting_id": i,
            "event_id": EVENT,
            "status": "confirmed",
            "start_time": _time(S + 86_400),
            "end_time": _time(S + 88_200),
            "location": None,
            "created_at": _time(S + i * spacing),
            "updated_at": _time(S + i * spacing),
            "account_id": 1,
            "participant_role": "requester",
            "participant_status": "accepted",
        }
        for i in range(1, meetings + 1)
    ]


@dataclass
class FakeApi:
    """The export API over ``rows`` (CREATED filters only), recording every request."""

    rows: list[dict[str, Any]]
    requests: list[tuple[Window, int]] = field(default_factory=list)
    api_clock_known: bool = True
    seconds: list[int] = field(default_factory=list)
    settings: ApiSettings = field(
        default_factory=lambda: ApiSettings(api_base_url="http://unused", event_ids=(EVENT,))
    )
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.seconds = [_second(r["created_at"]) for r in self.rows]

    def api_now(self) -> int:
        return S + 10**6

    async def fetch_page(
        self,
        event_id: int,
        window: Window | None,
        page: int,
        per_page: int,
        extra_params: Any = None,
    ) -> ExportPage:
        assert window is not None
        self.requests.append((window, per_page))
        await asyncio.sleep(0)
        matching = [
            r
            for r, second in zip(self.rows, self.seconds, strict=True)
            if window.start <= second <= window.end and not extra_params
        ]
        data = matching[(page - 1) * per_page : page * per_page]
        return ExportPage(data, len(matching), max(1, math.ceil(len(matching) / per_page)), 0)


def _second(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def reader_of(api: FakeApi, per_page: int = 10) -> WindowReader:
    return WindowReader(api, per_page, parser=RowParser())


WINDOW = Window(WindowKind.CREATED, S, S + 10_000)


def test_every_row_is_read_once_in_ascending_parts() -> None:
    api = FakeApi(rows_of(2_000, spacing=3))

    async def read() -> list[WindowPart]:
        return [part async for part in reader_of(api).read(EVENT, WINDOW)]

    parts = asyncio.run(read())
    assert [p.window.start for p in parts] == [
        WINDOW.start,
        *[p.window.end + 1 for p in parts[:-1]],
    ]
    assert parts[-1].window.end == WINDOW.end
    ids = [m.meeting_id for p in parts for m in p.meetings]
    assert ids == list(range(1, 2_001))


def test_a_part_that_overflows_is_probed_only_after_the_part_before_it_queued_its_reads() -> None:
    """Probes (a costly count for the API) queued ahead of the reads of the part being
    read would hold those up: the first part arrives after at most two probes."""
    api = FakeApi(rows_of(2_000, spacing=3))

    async def first_part() -> int:
        reads = reader_of(api).read(EVENT, WINDOW)
        await anext(reads)
        probes = sum(1 for _, per_page in api.requests if per_page == 1)
        await reads.aclose()
        return probes

    assert asyncio.run(first_part()) <= 2


def test_stopping_early_leaves_no_read_running() -> None:
    api = FakeApi(rows_of(2_000, spacing=3))

    async def stop_after(parts: int) -> list[asyncio.Task[Any]]:
        reads = reader_of(api).read(EVENT, WINDOW)
        for _ in range(parts):
            await anext(reads)
        await reads.aclose()
        await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    for parts in (1, 7, 40):
        assert asyncio.run(stop_after(parts)) == []


@dataclass
class ChangingApi(FakeApi):
    """Reports a modification "since" the read began to the first ``changes`` checks."""

    changes: int = 1

    async def fetch_page(
        self,
        event_id: int,
        window: Window | None,
        page: int,
        per_page: int,
        extra_params: Any = None,
    ) -> ExportPage:
        if extra_params and "last_modified_from" in extra_params and self.changes:
            self.changes -= 1
            assert window is not None
            self.requests.append((window, per_page))
            return ExportPage([], 1, 1, 0)
        return await super().fetch_page(event_id, window, page, per_page, extra_params)


def test_a_window_is_paged_at_full_pages_when_nothing_changes() -> None:
    api = FakeApi(rows_of(2_000, spacing=3))

    async def read() -> list[WindowPart]:
        return [part async for part in reader_of(api, per_page=100).read(EVENT, WINDOW)]

    parts = asyncio.run(read())
    assert [m.meeting_id for p in parts for m in p.meetings] == list(range(1, 2_001))
    # 20 full pages and the "modified since" check
    assert sum(p.requests for p in parts) == len(api.requests) == 21


def test_a_paged_window_that_changed_is_split_and_read_again_whole() -> None:
    """A change while paging: nothing from that read is trusted; the window is split."""
    api = ChangingApi(rows_of(2_000, spacing=3), changes=3)

    async def read() -> list[WindowPart]:
        return [part async for part in reader_of(api, per_page=100).read(EVENT, WINDOW)]

    parts = asyncio.run(read())
    assert [m.meeting_id for p in parts for m in p.meetings] == list(range(1, 2_001))
    assert len(parts) > 1
    assert len(api.requests) > 21


def test_a_paged_window_is_handed_on_in_pieces_cut_between_seconds() -> None:
    """Parsing 30,000 rows at once would hold the event loop: pieces of ~LEAF_ROWS rows,
    contiguous, each a complete sub-window (two rows per meeting, never apart)."""
    rows = rows_of(2_500, spacing=2)
    twins = [{**r, "account_id": 2} for r in rows]
    api = FakeApi(sorted(rows + twins, key=lambda r: (r["meeting_id"], r["account_id"])))

    async def read() -> list[WindowPart]:
        return [part async for part in reader_of(api, per_page=100).read(EVENT, WINDOW)]

    parts = asyncio.run(read())
    assert len(api.requests) == 50 + 1  # paged whole: full pages and "modified since"
    assert len(parts) == 3
    assert all(p.rows <= LEAF_ROWS for p in parts)
    assert [p.window.start for p in parts[1:]] == [p.window.end + 1 for p in parts[:-1]]
    assert (parts[0].window.start, parts[-1].window.end) == (WINDOW.start, WINDOW.end)
    meetings = [m for p in parts for m in p.meetings]
    assert [m.meeting_id for m in meetings] == list(range(1, 2_501))
    assert all(len(m.participants) == 2 for m in meetings)
