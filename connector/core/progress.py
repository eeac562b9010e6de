"""``EventProgress``: how far the sync of one event got (a value of the state topic).

Written in every transaction with the events it covers, so after a crash the connector
resumes exactly where its last committed cycle ended. Encoded by ``connector.serde``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Phase(StrEnum):
    """What an event is in: its initial load, or streaming changes."""

    SNAPSHOT = "snapshot"
    STREAMING = "streaming"


SNAPSHOT = Phase.SNAPSHOT
STREAMING = Phase.STREAMING


@dataclass(frozen=True, slots=True)
class Resnapshot:
    """A re-snapshot in progress (a ``resnapshot`` signal, ``connector.sync.resnapshot``).

    It re-reads the meetings created up to ``upper`` (unix s: the API's now minus the
    settle delay when the signal was accepted) as created windows after ``through``
    (every creation second up to it was re-read and committed; -1: none yet), part by
    part, each part committed with this record moved past it: a restart or a new owner
    goes on from ``through``.
    ``meeting_ids``: only these meetings (empty: all). ``counts``: what it published so
    far (``snapshot``, ``changed``, ``deleted``, ``not_found``, ``parts``).
    """

    signal_id: str
    upper: int
    through: int = -1
    meeting_ids: tuple[int, ...] = ()
    counts: tuple[tuple[str, int], ...] = ()

    def counted(self, more: dict[str, int]) -> Resnapshot:
        """This record with ``more`` added to its counts."""
        total = dict(self.counts)
        for name, n in more.items():
            total[name] = total.get(name, 0) + n
        return replace(self, counts=tuple(sorted(total.items())))


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
    #: The re-snapshot running for the event (None: none), set by a ``resnapshot`` signal
    #: and cleared by its last part or a ``cancel-resnapshot``.
    resnapshot: Resnapshot | None = None
