"""An HTTP client of a simulator's admin API and export endpoint, for tests and tools.

Works the same against an in-process :class:`~meetings_simulator.app.SimulatorServer` and a
``meetings-cdc simulate`` subprocess. Unexpected statuses raise :class:`SimulatorHTTPError`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp

from meetings_simulator.export import EXPORT_PATH

_UNSET: Any = object()


class SimulatorHTTPError(Exception):
    """The simulator answered with an unexpected status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class SimulatorClient:
    """Admin and export calls against ``base_url``; an async context manager."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client's HTTP session (created on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SimulatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self, method: str, path: str, expect: int, *, json: Any = _UNSET, **params: Any
    ) -> Any:
        kwargs: dict[str, Any] = {"params": params} if params else {}
        if json is not _UNSET:
            kwargs["json"] = json
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            text = await response.text()
            if response.status != expect:
                raise SimulatorHTTPError(response.status, text)
            return await response.json() if text else None

    # -- meetings ----------------------------------------------------------------------

    async def create(
        self,
        *,
        event_id: int,
        start: int,
        participants: list[int] | list[dict[str, Any]],
        duration_minutes: int = 30,
        status: str = "pending",
        location: str | None = None,
        **extra: Any,
    ) -> int:
        """``POST /admin/meetings``; return the new meeting id."""
        body = {
            "event_id": event_id,
            "start": start,
            "participants": participants,
            "duration_minutes": duration_minutes,
            "status": status,
            "location": location,
            **extra,
        }
        created = await self._call("POST", "/admin/meetings", 201, json=body)
        return int(created["meeting_id"])

    async def patch(self, meeting_id: int, **fields: Any) -> dict[str, Any]:
        """``PATCH /admin/meetings/{id}``; return the meeting."""
        result: dict[str, Any] = await self._call(
            "PATCH", f"/admin/meetings/{meeting_id}", 200, json=fields
        )
        return result

    async def delete(self, meeting_id: int) -> None:
        """``DELETE /admin/meetings/{id}`` (hard delete)."""
        await self._call("DELETE", f"/admin/meetings/{meeting_id}", 204)

    async def meeting(self, meeting_id: int) -> dict[str, Any]:
        """``GET /admin/meetings/{id}``."""
        result: dict[str, Any] = await self._call("GET", f"/admin/meetings/{meeting_id}", 200)
        return result

    async def truth(self, event_id: int) -> list[dict[str, Any]]:
        """``GET /admin/meetings?event_id=N``: current meetings, by id."""
        result: list[dict[str, Any]] = await self._call(
            "GET", "/admin/meetings", 200, event_id=event_id
        )
        return result

    async def history(self, event_id: int) -> list[dict[str, Any]]:
        """``GET /admin/history?event_id=N``: every version, deletes as tombstones."""
        result: list[dict[str, Any]] = await self._call(
            "GET", "/admin/history", 200, event_id=event_id
        )
        return result

    # -- faults and clock --------------------------------------------------------------

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """``PUT /admin/faults``: replace the whole fault set (no arguments clears it)."""
        result: dict[str, Any] = await self._call("PUT", "/admin/faults", 200, json=faults)
        return result

    async def clear_faults(self) -> dict[str, Any]:
        """Remove every fault."""
        return await self.set_faults()

    async def get_faults(self) -> dict[str, Any]:
        """``GET /admin/faults``: the fault set and injected counts."""
        result: dict[str, Any] = await self._call("GET", "/admin/faults", 200)
        return result

    async def set_clock(
        self,
        *,
        skew_seconds: float | None = None,
        frozen_at: int | None = _UNSET,
        advance: int | None = None,
    ) -> dict[str, Any]:
        """``PUT /admin/clock``: skew, freeze (``frozen_at=None`` unfreezes) or advance."""
        body: dict[str, Any] = {}
        if skew_seconds is not None:
            body["skew_seconds"] = skew_seconds
        if frozen_at is not _UNSET:
            body["frozen_at"] = frozen_at
        if advance is not None:
            body["advance"] = advance
        result: dict[str, Any] = await self._call("PUT", "/admin/clock", 200, json=body)
        return result

    async def get_clock(self) -> dict[str, Any]:
        """``GET /admin/clock``: ``{"now", "skew_seconds", "frozen_at"}``."""
        result: dict[str, Any] = await self._call("GET", "/admin/clock", 200)
        return result

    async def requests(self) -> dict[str, int]:
        """``GET /admin/requests``: export requests received so far, by time filter."""
        result: dict[str, int] = await self._call("GET", "/admin/requests", 200)
        return result

    # -- export ------------------------------------------------------------------------

    async def export_page(self, event_id: int, **params: Any) -> dict[str, Any]:
        """One export page, parsed (200 expected)."""
        result: dict[str, Any] = await self._call(
            "GET", EXPORT_PATH, 200, event_id=event_id, **params
        )
        return result

    async def export_rows(self, event_id: int, **params: Any) -> list[dict[str, Any]]:
        """Every row of a query, page after page (not drift-safe: for quiet simulators)."""
        params.setdefault("per_page", 500)
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            body = await self.export_page(event_id, page=page, **params)
            rows.extend(body["data"])
            if page >= body["last_page"]:
                return rows
            page += 1
