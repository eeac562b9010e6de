"""One export response body -> a validated :class:`ExportPage`, or why it is not one (pure).

A page that contradicts itself (its rows fewer or more than ``total`` and ``per_page``
allow, another page number than asked for) is as transient as a body cut short: the
client retries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from connector.ops.labels import RetryReason


@dataclass(frozen=True, slots=True)
class ExportPage:
    """One validated page: its rows (raw dicts, parsed later), the set's size, body size."""

    rows: list[Any]
    total: int
    last_page: int
    body_bytes: int


class InvalidPage(ValueError):
    """A body that is not a well-formed page; ``reason`` is the retry reason it counts as."""

    def __init__(self, reason: RetryReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_page(body: bytes, page: int, per_page: int, total_optional: bool = False) -> ExportPage:
    """Page ``page`` (of ``per_page`` rows) from ``body``, or :class:`InvalidPage`.

    With ``total_optional``, a body without ``total`` is a page with ``total = -1`` (its
    rows unchecked)."""
    try:
        payload = loads_json(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = (
            RetryReason.TRUNCATED if body.lstrip()[:1] in (b"{", b"[") else RetryReason.MALFORMED
        )
        raise InvalidPage(reason, f"body is not JSON ({len(body)} bytes): {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidPage(RetryReason.INVALID, "body is not a JSON object")
    rows = payload.get("data")
    total = payload.get("total")
    last_page = payload.get("last_page")
    current = payload.get("current_page", page)
    if not isinstance(rows, list):
        raise InvalidPage(RetryReason.INVALID, "'data' is not an array")
    if total_optional and total is None:
        return ExportPage(rows=rows, total=-1, last_page=-1, body_bytes=len(body))
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise InvalidPage(
            RetryReason.INVALID, f"'total' is not a non-negative integer: {total!r:.40}"
        )
    if not isinstance(last_page, int) or isinstance(last_page, bool) or last_page < 0:
        raise InvalidPage(RetryReason.INVALID, f"'last_page' is not an integer: {last_page!r:.40}")
    if current != page:
        raise InvalidPage(RetryReason.INVALID, f"asked for page {page}, got {current!r:.40}")
    expected = max(0, min(per_page, total - (page - 1) * per_page))
    if len(rows) != expected:
        raise InvalidPage(
            RetryReason.INVALID,
            f"page {page} of {total} rows at {per_page} per page should hold {expected} "
            f"rows, holds {len(rows)}",
        )
    return ExportPage(rows=rows, total=total, last_page=last_page, body_bytes=len(body))


def loads_json(body: bytes) -> Any:
    """A JSON body: by orjson (over twice as fast on a page of 500 rows), else by ``json``.

    ``json`` takes what orjson refuses but it accepts (NaN, Infinity, 1e400, lone
    surrogates, UTF-16/32, a byte order mark), so the bodies accepted and the errors raised
    are those of ``json.loads``. One difference: orjson reads an integer beyond 64 bits as
    a float. No field the connector models takes one (ids beyond 63 bits and such
    timestamps are malformed rows either way); a free-form field keeps it as a float.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


__all__ = ["ExportPage", "InvalidPage", "parse_page"]
