"""Notification and heartbeat records (``schemas/Notification.avsc``, ``Heartbeat.avsc``).

Always in Avro single-object encoding (0xC3 0x01, the writer schema's fingerprint, the
body), with or without a schema registry: any Avro library decodes them with the ``.avsc``
files alone, and ``meetings-cdc tail`` prints them. Keys are UTF-8 text (the signal id or
the event id), so a console consumer shows them as they are.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from connector.core.notifications import Heartbeat, Notification
from connector.errors import SerializationError
from connector.serde import catalog, records


def _encode(name: str, datum: dict[str, Any]) -> bytes:
    schema = catalog.current(name)
    buffer = io.BytesIO()
    buffer.write(schema.single_object_header)
    try:
        fastavro.schemaless_writer(buffer, schema.plain, datum)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise SerializationError(f"cannot encode a {name} record: {exc!r}") from exc
    return buffer.getvalue()


def encode_notification(notification: Notification) -> bytes:
    """The value of a notification record."""
    return _encode(
        catalog.NOTIFICATION,
        {
            "kind": notification.kind,
            "status": str(notification.status),
            "event_id": notification.event_id,
            "signal_id": notification.signal_id,
            "reason": notification.reason,
            "counts": dict(notification.counts),
            "at": notification.at,
            "connector": notification.connector,
            "owner": notification.owner,
        },
    )


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    """The value of a heartbeat record."""
    return _encode(
        catalog.HEARTBEAT,
        {
            "event_id": heartbeat.event_id,
            "at": heartbeat.at,
            "phase": heartbeat.phase,
            "created_through": heartbeat.created_through,
            "modified_through": heartbeat.modified_through,
            "last_committed_at": heartbeat.last_committed_at,
            "paused": heartbeat.paused,
            "paused_by": heartbeat.paused_by,
            "connector": heartbeat.connector,
            "owner": heartbeat.owner,
        },
    )


def decode(name: str, data: bytes) -> dict[str, Any]:
    """A notification or heartbeat (``name``) as a JSON-ready dict, times as ISO 8601 texts;
    ``SerializationError`` when ``data`` is not one written with a schema we know."""
    writer = (
        catalog.known_writers().get(data[2:10]) if data[:2] == catalog.SINGLE_OBJECT_MAGIC else None
    )
    if writer is None or writer.name != name:
        raise SerializationError(f"not a {name} record in single-object encoding")
    buffer = io.BytesIO(data)
    buffer.seek(10)
    try:
        value = fastavro.schemaless_reader(buffer, writer.parsed, catalog.current(name).parsed)
    except Exception as exc:  # fastavro's errors have no common base
        raise SerializationError(f"cannot decode a {name} record: {exc!r}") from exc
    result: dict[str, Any] = records.jsonable(value)
    return result


__all__ = ["decode", "encode_heartbeat", "encode_notification"]
