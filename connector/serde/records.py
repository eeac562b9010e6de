"""Model values <-> Avro datums (the dicts fastavro reads and writes), and JSON output.

Datums for writing use epoch-ms ints for timestamps and fastavro's ``(type name, value)``
notation for record branches of unions, which skips union resolution on the hot path.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from connector.core.changes import Change, ChangeEvent, ChangeType, ReadKind, SourceInfo
from connector.core.model import Meeting, Participant, freeze_extra
from connector.core.notifications import Heartbeat, Notification
from connector.core.progress import EventProgress, Phase, Resnapshot
from connector.core.timestamps import iso_utc
from connector.errors import SerializationError

MEETING = "meetings_cdc.Meeting"
MEETING_STATE = "meetings_cdc.MeetingState"
EVENT_PROGRESS = "meetings_cdc.EventProgress"
RESNAPSHOT = "meetings_cdc.Resnapshot"


def meeting_datum(m: Meeting) -> dict[str, Any]:
    """The ``meetings_cdc.Meeting`` datum of a meeting."""
    return {
        "meeting_id": m.meeting_id,
        "event_id": m.event_id,
        "status": m.status,
        "start_at": m.start_at,
        "end_at": m.end_at,
        "location": m.location,
        "created_at": m.created_at,
        "modified_at": m.modified_at,
        "participants": [
            {"account_id": p.account_id, "role": p.role, "status": p.status, "extra": dict(p.extra)}
            for p in m.participants
        ],
        "extra": dict(m.extra),
    }


def meeting_from_datum(d: Mapping[str, Any]) -> Meeting:
    """A ``Meeting`` from a datum read with the logical-types-free schema."""
    return Meeting(
        event_id=d["event_id"],
        meeting_id=d["meeting_id"],
        status=d["status"],
        start_at=d["start_at"],
        end_at=d["end_at"],
        location=d["location"],
        created_at=d["created_at"],
        modified_at=d["modified_at"],
        participants=tuple(
            Participant(p["account_id"], p["role"], p["status"], tuple(p["extra"].items()))
            for p in d["participants"]
        ),
        extra=tuple(d["extra"].items()),
    )


def _optional_meeting(m: Meeting | None) -> tuple[str, dict[str, Any]] | None:
    return None if m is None else (MEETING, meeting_datum(m))


def change_datum(event: ChangeEvent) -> dict[str, Any]:
    """The ``meetings_cdc.MeetingChange`` datum of an event."""
    change = event.change
    source = event.source
    return {
        "event_id": event.event_id,
        "meeting_id": event.meeting_id,
        "change_type": change.change_type.value,
        "changed_fields": list(change.changed_fields),
        "before": _optional_meeting(change.before),
        "after": _optional_meeting(change.after),
        "modified_at": event.modified_at,
        "detected_at": event.detected_at,
        "version": event.version,
        "source": {
            "connector": source.connector,
            "connector_version": source.connector_version,
            "window_kind": source.window_kind,
            "window_start": source.window_start,
            "window_end": source.window_end,
            "signal_id": source.signal_id,
        },
    }


def meeting_state_datum(meeting: Meeting, version: int) -> dict[str, Any]:
    """The ``meetings_cdc.StateValue`` datum of a meeting's state."""
    return {
        "meeting": (MEETING_STATE, {"meeting": meeting_datum(meeting), "version": version}),
        "progress": None,
    }


def progress_datum(progress: EventProgress) -> dict[str, Any]:
    """The ``meetings_cdc.StateValue`` datum of an event's progress."""
    return {
        "meeting": None,
        "progress": (
            EVENT_PROGRESS,
            {
                "event_id": progress.event_id,
                "phase": str(progress.phase),
                "snapshot_upper": progress.snapshot_upper,
                "created_through": progress.created_through,
                "modified_through": progress.modified_through,
                "last_reconcile_at": progress.last_reconcile_at,
                "updated_at": progress.updated_at,
                "paused": progress.paused,
                "paused_by": progress.paused_by,
                "signal_offsets": (
                    None
                    if progress.signal_offsets is None
                    else {str(p): o for p, o in progress.signal_offsets}
                ),
                "handled_signals": list(progress.handled_signals),
                "field_rules": progress.field_rules,
                "field_hash_key_check": progress.field_hash_key_check,
                "resnapshot": _resnapshot_datum(progress.resnapshot),
            },
        ),
    }


def progress_from_datum(d: Mapping[str, Any]) -> EventProgress:
    """An ``EventProgress`` from the ``progress`` branch of a StateValue datum."""
    return EventProgress(
        event_id=d["event_id"],
        phase=Phase(d["phase"]),
        snapshot_upper=d["snapshot_upper"],
        created_through=d["created_through"],
        modified_through=d["modified_through"],
        last_reconcile_at=d["last_reconcile_at"],
        updated_at=d["updated_at"],
        paused=d.get("paused", False),
        paused_by=d.get("paused_by"),
        signal_offsets=(
            None
            if d.get("signal_offsets") is None
            else tuple(sorted((int(p), o) for p, o in d["signal_offsets"].items()))
        ),
        handled_signals=tuple(d.get("handled_signals") or ()),
        field_rules=d.get("field_rules"),
        field_hash_key_check=d.get("field_hash_key_check"),
        resnapshot=_resnapshot_from_datum(d.get("resnapshot")),
    )


def _resnapshot_datum(running: Resnapshot | None) -> tuple[str, dict[str, Any]] | None:
    if running is None:
        return None
    return (
        RESNAPSHOT,
        {
            "signal_id": running.signal_id,
            "upper": running.upper,
            "through": running.through,
            "meeting_ids": list(running.meeting_ids),
            "counts": dict(running.counts),
        },
    )


def _resnapshot_from_datum(d: Mapping[str, Any] | None) -> Resnapshot | None:
    if d is None:
        return None
    return Resnapshot(
        signal_id=d["signal_id"],
        upper=d["upper"],
        through=d["through"],
        meeting_ids=tuple(d.get("meeting_ids") or ()),
        counts=tuple(sorted((d.get("counts") or {}).items())),
    )


def notification_datum(notification: Notification) -> dict[str, Any]:
    """The ``meetings_cdc.Notification`` datum of a notification."""
    return {
        "kind": notification.kind,
        "status": str(notification.status),
        "event_id": notification.event_id,
        "signal_id": notification.signal_id,
        "reason": notification.reason,
        "counts": dict(notification.counts),
        "at": notification.at,
        "connector": notification.connector,
        "owner": notification.owner,
    }


def heartbeat_datum(heartbeat: Heartbeat) -> dict[str, Any]:
    """The ``meetings_cdc.Heartbeat`` datum of a heartbeat (its fields are the schema's)."""
    return dataclasses.asdict(heartbeat)


def jsonable(value: Any) -> Any:
    """A decoded datum made JSON-ready: timestamps as ``export`` prints them
    (``connector.timestamps``: "2025-06-01T09:30:00Z"), bytes as base64, non-finite floats
    as strings."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def expect(datum: Any, field: str, what: str) -> Any:
    """``datum[field]``, or a SerializationError saying the record is not ``what``."""
    value = datum.get(field) if isinstance(datum, dict) else None
    if value is None:
        raise SerializationError(f"state record is not {what}: its '{field}' is null")
    return value


def self_check_events() -> list[ChangeEvent]:
    """Events covering every branch of MeetingChange and StateValue: the reference data of
    the fast encoder's start-up check."""
    before = Meeting(
        event_id=1,
        meeting_id=-2,
        status="pending",
        start_at=1_767_261_600_000,
        end_at=-1,
        location=None,
        created_at=0,
        modified_at=2**62,
        participants=(
            Participant(7, "requester", "accepted", freeze_extra({"e": "é", "b": True})),
            Participant(-9, "invitee", "declined", ()),
        ),
        extra=freeze_extra({"n": None, "i": -5, "f": 0.25, "s": "x", "t": False}),
    )
    after = Meeting(
        event_id=1,
        meeting_id=-2,
        status="confirmed",
        start_at=1,
        end_at=2,
        location="Hall Ω",
        created_at=3,
        modified_at=2**62 + 1,
        participants=(),
    )
    source = SourceInfo("c", "0.1.0", ReadKind.MODIFIED, -1, 2**40)
    return [
        ChangeEvent(1, -2, Change(kind, fields, b, a), 5, 6, version, source)
        for kind, fields, b, a, version in (
            (ChangeType.CONFIRMED, ("start_at", "status"), before, after, 300),
            (ChangeType.CREATED, (), None, before, 1),
            (ChangeType.DELETED, (), after, None, 2**40),
        )
    ]
