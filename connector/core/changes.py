"""Classification of a meeting's new version against the last published one (pure).

``classify(before, after)`` decides whether a version is worth an event and which one:
SNAPSHOT or CREATED for a meeting seen for the first time, DELETED for one that vanished,
nothing for a version whose content equals the last published one, otherwise the first
applicable of CANCELLED, DECLINED, CONFIRMED, RESCHEDULED, PARTICIPANTS_CHANGED, UPDATED,
with every changed field listed. ``ChangeEvent`` is what the engine publishes: the change
plus its identity, version and provenance. No I/O and no clock here: time values come in
as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from connector.core.model import Meeting


class ChangeType(StrEnum):
    """What a change event says happened (the Avro enum ``meetings_cdc.ChangeType``)."""

    SNAPSHOT = "SNAPSHOT"
    CREATED = "CREATED"
    RESCHEDULED = "RESCHEDULED"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    DECLINED = "DECLINED"
    PARTICIPANTS_CHANGED = "PARTICIPANTS_CHANGED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


# The Meeting fields whose differences are reported in ``changed_fields``. ``modified_at``
# is reported only when nothing else differs; identity fields never differ by contract.
COMPARED_FIELDS: tuple[str, ...] = (
    "created_at",
    "end_at",
    "extra",
    "location",
    "participants",
    "start_at",
    "status",
)

# Status values that decide the change type when a version moves into them, in precedence.
_STATUS_TYPES: tuple[tuple[str, ChangeType], ...] = (
    ("cancelled", ChangeType.CANCELLED),
    ("declined", ChangeType.DECLINED),
    ("confirmed", ChangeType.CONFIRMED),
)


@dataclass(frozen=True, slots=True)
class Change:
    """A classified change of one meeting: ``before`` is None for SNAPSHOT/CREATED,
    ``after`` is None for DELETED."""

    change_type: ChangeType
    changed_fields: tuple[str, ...]
    before: Meeting | None
    after: Meeting | None


class ReadKind(StrEnum):
    """Which read saw a change: the Avro field ``source.window_kind``.

    A window of the snapshot, an incremental ``created`` or ``modified`` window, or a
    reconciliation pass (also the delete check's deletions), or a re-snapshot (a
    ``resnapshot`` signal).
    """

    SNAPSHOT = "snapshot"
    CREATED = "created"
    MODIFIED = "modified"
    RECONCILE = "reconcile"
    RESNAPSHOT = "resnapshot"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Provenance of an event: the connector and the read that saw it (bounds in epoch ms)."""

    connector: str
    connector_version: str
    window_kind: ReadKind
    window_start: int
    window_end: int
    #: the re-snapshot signal that published the event (None: any other read)
    signal_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change event as published (the Avro record ``meetings_cdc.MeetingChange``).

    ``modified_at`` and ``detected_at`` are epoch milliseconds; ``version`` counts the
    meeting's events (1 for the first).
    """

    event_id: int
    meeting_id: int
    change: Change
    modified_at: int
    detected_at: int
    version: int
    source: SourceInfo


def changed_fields(before: Meeting, after: Meeting) -> tuple[str, ...]:
    """Sorted names of the compared fields that differ; ``("modified_at",)`` if only it does,
    ``()`` if nothing does."""
    fields = tuple(f for f in COMPARED_FIELDS if getattr(before, f) != getattr(after, f))
    if not fields and before.modified_at != after.modified_at:
        return ("modified_at",)
    return fields


def classify(
    before: Meeting | None, after: Meeting | None, *, snapshot: bool = False
) -> Change | None:
    """Classify ``after`` (None: the meeting vanished) against the last published ``before``.

    Returns None when there is nothing to publish: both None, or the same content (only
    ``modified_at`` may differ, and only backwards). ``snapshot`` makes a first sighting
    SNAPSHOT instead of CREATED (the initial load).

    The API's timestamps do not order its versions (design 4.10: its clock steps back, a
    fall-back hour repeats local times): what it serves now is the current state, so a
    version whose content differs is published even when its ``modified_at`` is older
    than the last published one. Only a version that differs by nothing but an *older*
    ``modified_at`` is no change: the same content read again with another reading of its
    timestamp (an ambiguous local time, see ``connector.source.local_time``).
    """
    if before is None:
        if after is None:
            return None
        kind = ChangeType.SNAPSHOT if snapshot else ChangeType.CREATED
        return Change(kind, (), None, after)
    if after is None:
        return Change(ChangeType.DELETED, (), before, None)
    if before.key != after.key:
        raise ValueError(f"classify: versions of different meetings {before.key} != {after.key}")
    if before == after:
        return None
    fields = changed_fields(before, after)
    if not fields:  # defensive: every field that can differ is named by changed_fields
        return None
    if fields == ("modified_at",) and after.modified_at < before.modified_at:
        return None
    return Change(_change_type(before, after, fields), fields, before, after)


def _change_type(before: Meeting, after: Meeting, fields: tuple[str, ...]) -> ChangeType:
    if "status" in fields:
        new_status = after.status.lower()
        if new_status != before.status.lower():
            for status, change_type in _STATUS_TYPES:
                if new_status == status:
                    return change_type
    if "start_at" in fields or "end_at" in fields:
        return ChangeType.RESCHEDULED
    if "participants" in fields:
        return ChangeType.PARTICIPANTS_CHANGED
    return ChangeType.UPDATED
