"""Values the simulator stores: one meeting version and its participants.

A :class:`SimMeeting` is immutable; every change replaces it with a new version (the store
keeps each one for ``/admin/history``). Times are whole unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MEETING_STATUSES: Final = ("pending", "confirmed", "cancelled", "declined")
PARTICIPANT_ROLES: Final = ("requester", "invitee")
PARTICIPANT_STATUSES: Final = ("accepted", "pending", "declined")


@dataclass(frozen=True, slots=True)
class Person:
    """The profile behind an account id: what a participant row carries besides ids."""

    first_name: str
    last_name: str
    email: str
    company: str
    job_title: str


@dataclass(frozen=True, slots=True)
class SimParticipant:
    """One participant of a meeting: account, role and the participant's own status."""

    account_id: int
    role: str
    status: str


@dataclass(frozen=True, slots=True)
class SimMeeting:
    """One version of a meeting as the simulator holds it."""

    meeting_id: int
    event_id: int
    status: str
    start: int
    duration_minutes: int
    location: str | None
    created_at: int
    updated_at: int
    participants: tuple[SimParticipant, ...]
    title: str = ""
    meeting_type: str = "one-to-one"
    notes: str | None = None
    version: int = 1
    #: Created by an API that leaves the last-modified time unset at creation
    #: (``--no-modified-at-creation``): no ``last_modified_*`` filter matches this version
    #: (its rows still show ``updated_at``, equal to ``created_at``); the first change sets it.
    unstamped: bool = False

    @property
    def modified_key(self) -> int | None:
        """The second ``last_modified_*`` filters compare, None when unset."""
        return None if self.unstamped else self.updated_at

    @property
    def end(self) -> int:
        """Scheduled end, unix seconds."""
        return self.start + self.duration_minutes * 60

    @property
    def account_ids(self) -> tuple[int, ...]:
        """Account ids of the participants, in row order."""
        return tuple(p.account_id for p in self.participants)

    def same_content(self, other: SimMeeting) -> bool:
        """Whether ``other`` differs from this version only in bookkeeping fields."""
        return (
            self.status == other.status
            and self.start == other.start
            and self.duration_minutes == other.duration_minutes
            and self.location == other.location
            and self.participants == other.participants
            and self.title == other.title
            and self.meeting_type == other.meeting_type
            and self.notes == other.notes
        )


def participant_status_for(meeting_status: str, role: str) -> str:
    """The participant status that goes with a meeting status for a new participant."""
    if role == "requester":
        return "accepted"
    if meeting_status == "confirmed":
        return "accepted"
    if meeting_status == "declined":
        return "declined"
    return "pending"


def sorted_participants(
    participants: tuple[SimParticipant, ...],
) -> tuple[SimParticipant, ...]:
    """Participants in row order: by account id."""
    return tuple(sorted(participants, key=lambda p: p.account_id))
