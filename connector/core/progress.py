"""``EventProgress``: how far the sync of one event got (a value of the state topic).

Written in every transaction with the events it covers, so after a crash the connector
resumes exactly where its last committed cycle ended. Encoded by ``connector.serde``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """What an event is in: its initial load, or streaming changes."""

    SNAPSHOT = "snapshot"
    STREAMING = "streaming"


SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING


@dataclass(frozen=True, slots=True)
class EventProgress:
    """Sync progress of one event.

    ``phase`` is ``snapshot`` (initial load not finished) or ``streaming``. Bounds and
    watermarks are unix seconds: every row created (modified) at or before
    ``created_through`` (``modified_through``) has been read and committed; -1 means
    nothing yet. ``updated_at`` is epoch milliseconds.
    """

    event_id: int
    phase: Phase
    snapshot_upper: int | None
    created_through: int
    modified_through: int
    last_reconcile_at: int | None
    updated_at: int
    #: Paused by a ``pause`` signal (``connector.core.signals``): the event makes no API
    #: request until a ``resume``; kept here so it stays paused across restarts and moves.
    paused: bool = False
    #: The id of the signal that paused it (None when not paused).
    paused_by: str | None = None
    #: The signals topic read so far for this event: partition -> next offset, committed
    #: with each signal's effect (so a signal acts once); None: none read yet (it starts at
    #: the signals written since the snapshot began).
    signal_offsets: tuple[tuple[int, int], ...] | None = None
    #: Ids of the last signals acted on (newest last, at most ``signals.REMEMBERED``): a
    #: signal id written twice acts once.
    handled_signals: tuple[str, ...] = ()
    #: The field rules the event's state and events were written under (their canonical
    #: text, ``connector.core.masking.FieldRules.text``; None: no rules), set when the event
    #: begins and kept: a start under other rules is refused (``masking.rules_problem``).
    field_rules: str | None = None
    #: ``masking.key_check`` of the hash key then (None: no hash rule): never the key.
    field_hash_key_check: str | None = None
