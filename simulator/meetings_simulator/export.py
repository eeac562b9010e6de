"""``GET /api/v2/meetings/export``: Laravel-style pages of rows, with injected faults.

Order of events per request: added latency, the rate limit (429 + Retry-After), an injected
error status, parameter validation (400 naming the parameter), then the page itself, whose
rows may be corrupted one by one and whose body may be replaced (malformed) or cut
(truncated). Page bodies are joined from cached JSON row texts, never re-encoded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from aiohttp import web

from meetings_simulator.errors import BadParameter
from meetings_simulator.faults import MALFORMED_BODY
from meetings_simulator.query import ExportQuery, parse_export_query
from meetings_simulator.state import SIMULATOR

EXPORT_PATH = "/api/v2/meetings/export"
JSON_TYPE = "application/json"


def error_response(status: int, message: str, parameter: str | None = None) -> web.Response:
    """A JSON error body ``{"error": ..., "parameter": ...}``."""
    body: dict[str, object] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return web.json_response(body, status=status)


def page_body(
    query: ExportQuery, total: int, rows: list[str], url: str | None, *, omit_total: bool = False
) -> bytes:
    """The page as JSON bytes, ``data`` last; ``omit_total`` leaves ``total`` out."""
    per_page = query.per_page
    last_page = max(1, -(-total // per_page))
    first = query.offset + 1 if rows else None
    meta: dict[str, object] = {
        "current_page": query.page,
        "per_page": per_page,
        "total": total,
        "last_page": last_page,
        "from": first,
        "to": query.offset + len(rows) if rows else None,
    }
    if omit_total:
        del meta["total"]
    if url is not None:
        meta["path"] = url.split("?", 1)[0]
    head = json.dumps(meta, separators=(",", ":"))[:-1]
    return f'{head},"data":[{",".join(rows)}]}}'.encode()


async def export(request: web.Request) -> web.StreamResponse:
    """Serve one export page (see ``docs/simulator-api.md``)."""
    sim = request.app[SIMULATOR]
    sim.requests[_filter_kind(request.query)] += 1
    sim.requests[f"event:{request.query.get('event_id', '')}"] += 1
    injector = sim.faults
    faults = injector.faults
    if faults.latency_ms > 0:
        await asyncio.sleep(faults.latency_ms / 1000)
    retry_after = injector.admit()
    if retry_after is not None:
        sim.requests["rate_limited"] += 1
        response = error_response(429, "too many requests")
        response.headers["Retry-After"] = str(retry_after)
        return response
    if injector.roll(faults.error_rate, "error"):
        return error_response(faults.error_status, "injected upstream error")
    try:
        query = parse_export_query(request.query)
    except BadParameter as exc:
        return error_response(400, exc.message, exc.parameter)
    page = await sim.store.serve(query)
    rows = injector.maybe_corrupt_rows(page.rows)
    body = page_body(query, page.total, rows, str(request.url), omit_total=sim.omit_total)
    if injector.roll(faults.malformed_rate, "malformed"):
        return web.Response(body=MALFORMED_BODY, content_type=JSON_TYPE)
    if injector.roll(faults.truncated_rate, "truncated"):
        cut = injector.truncate_at(len(body))
        if faults.truncate_mode == "json":
            return web.Response(body=body[:cut], content_type=JSON_TYPE)
        return await _close_mid_body(request, body, cut)
    return web.Response(body=body, content_type=JSON_TYPE)


def _filter_kind(params: Mapping[str, str]) -> str:
    """Which time filter a request used, for ``GET /admin/requests``."""
    if "last_modified_from" in params or "last_modified_to" in params:
        return "last_modified"
    if "created_from" in params or "created_to" in params:
        return "created"
    return "none"


async def _close_mid_body(request: web.Request, body: bytes, cut: int) -> web.StreamResponse:
    """Promise ``len(body)`` bytes, send ``cut`` of them, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": JSON_TYPE})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:cut])
    transport = request.transport
    if transport is not None:
        transport.close()
    return response
