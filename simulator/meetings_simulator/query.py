"""The export endpoint's query parameters: parsing and validation (pure).

Every bound is inclusive. See ``docs/simulator-api.md`` for the semantics of each parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from meetings_simulator.errors import BadParameter

DEFAULT_PER_PAGE: Final = 100
MAX_PER_PAGE: Final = 500
ORDER_BY_VALUES: Final = ("meeting_id", "account_id", "time")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")

Order = Literal["ASC", "DESC"]
OrderBy = Literal["meeting_id", "account_id", "time"]


@dataclass(frozen=True, slots=True)
class RowFilter:
    """What selects and orders rows; everything of a query but the page."""

    event_id: int
    account_id: int | None = None
    time_from: int | None = None
    time_to: int | None = None
    created_from: int | None = None
    created_to: int | None = None
    modified_from: int | None = None
    modified_to: int | None = None
    order: Order = "ASC"
    order_by: OrderBy = "meeting_id"


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """A validated export request: a filter plus a page."""

    filter: RowFilter
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        """Index of the page's first row in the filtered, sorted set."""
        return (self.page - 1) * self.per_page


def integer_param(params: Mapping[str, str], name: str) -> int | None:
    """The integer value of parameter ``name``, None if absent, or :class:`BadParameter`."""
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise BadParameter(name, f"must be an integer, got {raw!r}")
    return int(text)


def parse_export_query(params: Mapping[str, str]) -> ExportQuery:
    """Validate ``params`` (the URL query); raise :class:`BadParameter` naming the culprit."""
    event_id = integer_param(params, "event_id")
    if event_id is None:
        raise BadParameter("event_id", "is required")
    page = integer_param(params, "page")
    if page is None:
        page = 1
    elif page < 1:
        raise BadParameter("page", f"must be >= 1, got {page}")
    per_page = integer_param(params, "per_page")
    if per_page is None:
        per_page = DEFAULT_PER_PAGE
    elif not 1 <= per_page <= MAX_PER_PAGE:
        raise BadParameter("per_page", f"must be between 1 and {MAX_PER_PAGE}, got {per_page}")
    order_raw = params.get("order", "ASC").strip().upper()
    if order_raw not in ("ASC", "DESC"):
        raise BadParameter("order", f"must be ASC or DESC, got {params.get('order')!r}")
    order_by_raw = params.get("order_by", "meeting_id").strip()
    if order_by_raw not in ORDER_BY_VALUES:
        raise BadParameter(
            "order_by", f"must be one of {', '.join(ORDER_BY_VALUES)}, got {order_by_raw!r}"
        )
    row_filter = RowFilter(
        event_id=event_id,
        account_id=integer_param(params, "account_id"),
        time_from=integer_param(params, "time_from"),
        time_to=integer_param(params, "time_to"),
        created_from=integer_param(params, "created_from"),
        created_to=integer_param(params, "created_to"),
        modified_from=integer_param(params, "last_modified_from"),
        modified_to=integer_param(params, "last_modified_to"),
        order="ASC" if order_raw == "ASC" else "DESC",
        order_by=order_by_raw,  # type: ignore[arg-type]  # checked against ORDER_BY_VALUES
    )
    return ExportQuery(filter=row_filter, page=page, per_page=per_page)
