"""Meeting and Participant values: what one upstream meeting version is.

Pure values (frozen, slotted): built by the source side from export rows, compared by the
classifier, encoded by serde. Times are UTC epoch milliseconds. ``extra`` keeps every
upstream field the mapping does not model, so no upstream data is dropped; its values are
scalars (nested upstream values are kept as their JSON text).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

Scalar = str | int | float | bool | None
Extra = tuple[tuple[str, Scalar], ...]


def freeze_extra(values: Mapping[str, object]) -> Extra:
    """Return ``values`` as a sorted tuple of (key, scalar) pairs, the form values keep."""
    frozen: list[tuple[str, Scalar]] = []
    for key in sorted(values):
        value = values[key]
        if value is None or isinstance(value, str | int | float | bool):
            frozen.append((key, value))
        else:
            frozen.append((key, json.dumps(value, sort_keys=True, separators=(",", ":"))))
    return tuple(frozen)


@dataclass(frozen=True, slots=True)
class Participant:
    """One participant of a meeting, from one export row."""

    account_id: int
    role: str
    status: str
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class Meeting:
    """One version of a meeting: the meeting fields plus all its participants."""

    event_id: int
    meeting_id: int
    status: str
    start_at: int
    end_at: int
    location: str | None
    created_at: int
    modified_at: int
    participants: tuple[Participant, ...]
    extra: Extra = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.participants, key=lambda p: p.account_id))
        if ordered != self.participants:
            object.__setattr__(self, "participants", ordered)

    @property
    def content_hash(self) -> int:
        """A stable 64-bit hash of every field, equal across processes for equal content.

        Computed on demand: comparing two versions uses plain equality, which is cheaper.
        """
        return _content_hash(self)

    @property
    def key(self) -> tuple[int, int]:
        """(event_id, meeting_id): identifies the meeting across versions."""
        return (self.event_id, self.meeting_id)


def _content_hash(meeting: Meeting) -> int:
    """A stable signed 64-bit hash of every field: equal content, equal hash, any process."""
    canonical = json.dumps(
        [
            meeting.event_id,
            meeting.meeting_id,
            meeting.status,
            meeting.start_at,
            meeting.end_at,
            meeting.location,
            meeting.created_at,
            meeting.modified_at,
            [
                [p.account_id, p.role, p.status, list(map(list, p.extra))]
                for p in meeting.participants
            ],
            list(map(list, meeting.extra)),
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
