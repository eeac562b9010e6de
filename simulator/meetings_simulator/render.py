"""Rendering meetings as export rows (one per participant), cached as JSON text.

The export row format is a contract with the connector's source side
(``docs/architecture.md``, ``docs/simulator-api.md``): date-times are
``YYYY-MM-DD HH:MM:SS`` in the event's time zone, everything else plain JSON scalars.
Rendering is the expensive part of serving a page, so each meeting version's rows are
rendered once, as JSON fragments a page body is joined from.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from meetings_simulator.model import SimMeeting, SimParticipant
from meetings_simulator.people import person_for

ROW_KEYS = (
    "meeting_id",
    "event_id",
    "status",
    "start_time",
    "end_time",
    "location",
    "created_at",
    "updated_at",
    "title",
    "meeting_type",
    "notes",
    "duration",
    "account_id",
    "participant_role",
    "participant_status",
    "first_name",
    "last_name",
    "email",
    "company",
    "job_title",
)


class TimeFormatter:
    """Unix seconds -> ``YYYY-MM-DD HH:MM:SS`` local to one time zone, cached per minute."""

    __slots__ = ("_minutes", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._minutes: dict[int, str] = {}

    def format(self, unix: int) -> str:
        """Format ``unix`` (zone offsets are whole minutes, so seconds carry over)."""
        minute, second = divmod(unix, 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            prefix = datetime.fromtimestamp(minute * 60, self.tz).strftime("%Y-%m-%d %H:%M")
            if len(self._minutes) > 500_000:
                self._minutes.clear()
            self._minutes[minute] = prefix
        return f"{prefix}:{second:02d}"


def meeting_fields(meeting: SimMeeting, fmt: TimeFormatter) -> dict[str, Any]:
    """The meeting-level keys of a row, in row order."""
    return {
        "meeting_id": meeting.meeting_id,
        "event_id": meeting.event_id,
        "status": meeting.status,
        "start_time": fmt.format(meeting.start),
        "end_time": fmt.format(meeting.end),
        "location": meeting.location,
        "created_at": fmt.format(meeting.created_at),
        "updated_at": fmt.format(meeting.updated_at),
        "title": meeting.title,
        "meeting_type": meeting.meeting_type,
        "notes": meeting.notes,
        "duration": meeting.duration_minutes,
    }


def participant_fields(participant: SimParticipant) -> dict[str, Any]:
    """The participant-level keys of a row, in row order."""
    person = person_for(participant.account_id)
    return {
        "account_id": participant.account_id,
        "participant_role": participant.role,
        "participant_status": participant.status,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "email": person.email,
        "company": person.company,
        "job_title": person.job_title,
    }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_json(value: dict[str, Any]) -> str:
    """``value`` as compact JSON text (non-ASCII kept as is)."""
    return _ENCODER.encode(value)
