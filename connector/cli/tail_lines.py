"""What ``meetings-cdc tail`` prints of one record: its JSON object, or a summary line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a Serdes is handed in: the registry client stays out of this pure module
    from connector.serde import Serdes


def render(
    serdes: Serdes, key: bytes | None, value: bytes | None, event_id: int | None
) -> dict[str, Any] | None:
    """The JSON object of one record, or None when ``event_id`` filters it out."""
    decoded_key = serdes.decode_json(key) if key else None
    if value is None:
        line: dict[str, Any] = {"key": decoded_key, "tombstone": True}
    else:
        line = {"key": decoded_key, **serdes.decode_json(value)}
    if event_id is not None:
        owner = line.get("event_id")
        if owner is None and isinstance(decoded_key, dict):
            owner = decoded_key.get("event_id")
        if owner != event_id:
            return None
    return line


def summary(line: dict[str, Any]) -> str:
    """One human line of a decoded change event (falls back to JSON for other records)."""
    if "change_type" not in line:
        return json.dumps(line, ensure_ascii=False)
    after = line.get("after") or line.get("before") or {}
    fields = ",".join(line.get("changed_fields") or []) or "-"
    start = str(after.get("start_at", ""))[:16].replace("T", " ")
    return (
        f"{line['change_type']:<20} event {line['event_id']} meeting {line['meeting_id']:<7} "
        f"v{line['version']:<3} {after.get('status', ''):<9} {start}  "
        f"{after.get('location') or ''}  changed: {fields}"
    )


__all__ = ["render", "summary"]
