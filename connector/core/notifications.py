"""Notifications and heartbeats: what the connector tells its operators through Kafka (pure).

A :class:`Notification` is one step of something an operator may follow: a signal's outcome
(pause, resume, rewind, a rejected signal), later the steps of a snapshot or a pass. A
:class:`Heartbeat` is one event's "alive, and this far" record, written after everything
committed before it. Both are encoded by ``connector.serde`` (``schemas/Notification.avsc``,
``schemas/Heartbeat.avsc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class NotificationStatus(StrEnum):
    """Where the step a notification reports stands; the last three are final."""

    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


FINAL = frozenset(
    {NotificationStatus.COMPLETED, NotificationStatus.FAILED, NotificationStatus.REJECTED}
)

#: The kind of a notification about a signal that could not be read (no type).
SIGNAL = "signal"


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification record. ``at``: epoch ms; ``owner``: the replica that wrote it."""

    kind: str
    status: NotificationStatus
    event_id: int | None
    signal_id: str | None
    at: int
    connector: str
    owner: str
    reason: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """The record's key: the signal id, else the event id (UTF-8 text)."""
        return (self.signal_id or str(self.event_id)).encode()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One event's heartbeat. Times are epoch ms; watermarks unix seconds (-1: none)."""

    event_id: int
    connector: str
    owner: str
    at: int
    phase: str
    created_through: int
    modified_through: int
    last_committed_at: int | None
    paused: bool
    paused_by: str | None

    @property
    def key(self) -> bytes:
        """The record's key: the event id (UTF-8 text)."""
        return str(self.event_id).encode()


__all__ = ["FINAL", "SIGNAL", "Heartbeat", "Notification", "NotificationStatus"]
