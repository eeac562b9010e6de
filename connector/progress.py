"""Sync progress of one event: the value behind its watermark record in the state topic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventProgress:
    """Where one event's sync stands.

    ``phase`` is ``snapshot`` until the initial load completed, then ``streaming``.
    Watermarks are unix seconds of the API's clock: every row created (modified) at or
    before ``created_through`` (``modified_through``) has been read and committed; -1 means
    nothing yet. ``snapshot_upper`` is the fixed upper bound of the initial load.
    """

    event_id: int
    phase: str
    snapshot_upper: int | None
    created_through: int
    modified_through: int
    last_reconcile_at: int | None
    updated_at: int
