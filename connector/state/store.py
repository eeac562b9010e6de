"""The state store: what the connector last published per meeting, its in-memory view.

The compacted state topic is the source of truth; this module holds its in-memory view per
event: for each meeting the encoded state record as it was written (decoded only when the
meeting shows up again, which keeps memory and restore time small; held compressed by
``connector.state.values``), and the event's progress record (phase, watermarks). Changes
of a cycle are staged in a ``Staging`` overlay and applied to the view only after their
transaction committed, so an aborted cycle leaves the view exactly as the topic is.
Reading the topic into this view is ``connector.state.restore``; this module does no I/O.

Beside the values, each event keeps a ``RowIndex`` (creation second and export rows of
every tracked meeting, 20 bytes each) for the delete check, kept by ``apply``. After a
restore it is built from the values in place by ``index_steps``, in slices between which
the caller yields to the event loop: a cheap read of each value (~11 us with its
decompression) would otherwise double the restore (~9 us a meeting, 1M meetings) or stall
polls for seconds. Commits made meanwhile are replayed onto it once it is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from connector.core.model import Meeting
from connector.core.progress import EventProgress
from connector.state.row_index import RowIndex
from connector.state.values import StateValues


class StateCodec(Protocol):
    """Decoding of state records (implemented by ``connector.serde.Serdes``)."""

    def decode_state_key(self, data: bytes) -> tuple[int, int | None]: ...  # noqa: D102

    def decode_meeting_state(self, data: bytes) -> tuple[Meeting, int]: ...  # noqa: D102

    def decode_progress(self, data: bytes) -> EventProgress: ...  # noqa: D102

    def meeting_state_rows(self, data: bytes) -> tuple[int, int]: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class Tracked:
    """A meeting as last published: its value and its version (events so far).

    ``encoded`` is its state record value when known: the next event's ``before`` is
    encoded from it rather than from the meeting again.
    """

    meeting: Meeting
    version: int
    encoded: bytes | None = None


@dataclass(slots=True)
class EventState:
    """The committed state of one event."""

    event_id: int
    meetings: StateValues = field(default_factory=StateValues)
    progress: EventProgress | None = None
    rows: RowIndex = field(default_factory=RowIndex)
    #: meeting id -> version of its DELETED, while that is not below the clock (ms): the
    #: floor of a reappearance (``connector.core.versions``) already exceeds the others
    deleted: dict[int, int] = field(default_factory=dict)
    #: whether ``rows`` covers every value (False after a restore until ``index_steps``)
    rows_ready: bool = True
    _index_log: list[tuple[int, int, int | None]] | None = field(default=None, repr=False)

    def get(self, meeting_id: int, codec: StateCodec) -> Tracked | None:
        """The committed version of a meeting, decoded, or None if not tracked."""
        raw = self.meetings.get(meeting_id)
        if raw is None:
            return None
        meeting, version = codec.decode_meeting_state(raw)
        return Tracked(meeting, version, raw)

    def apply(self, staging: Staging) -> None:
        """Make a committed cycle's staged changes part of the view (and of the index)."""
        index = self.rows_ready or self._index_log is not None
        self._remember_deletes(staging)
        for meeting_id, encoded in staging.encoded.items():
            if encoded is None:
                old = self.meetings.pop(meeting_id, None)
                if old is not None and index:
                    created_ms, _ = staging.codec.meeting_state_rows(old)
                    self._index(meeting_id, created_ms // 1000, None)
                continue
            self.meetings[meeting_id] = encoded
            if not index:
                continue
            tracked = staging.tracked.get(meeting_id)
            if tracked is not None:
                meeting = tracked.meeting
                created_ms, rows = meeting.created_at, len(meeting.participants)
            else:  # staged without its value (not done by Batch): read it back
                created_ms, rows = staging.codec.meeting_state_rows(encoded)
            self._index(meeting_id, created_ms // 1000, rows)
        if staging.progress is not None:
            self.progress = staging.progress

    def _remember_deletes(self, staging: Staging) -> None:
        if not (self.deleted or staging.deleted):
            return
        kept = {m: v for m, v in self.deleted.items() if v >= staging.floor_ms}
        for meeting_id in staging.encoded:
            kept.pop(meeting_id, None)
        kept.update(staging.deleted)
        self.deleted = kept

    def _index(self, meeting_id: int, created_s: int, rows: int | None) -> None:
        if self._index_log is not None:  # being built: replayed once it is
            self._index_log.append((meeting_id, created_s, rows))
        elif rows is None:
            self.rows.remove(meeting_id, created_s)
        else:
            self.rows.put(meeting_id, created_s, rows)

    def index_steps(self, codec: StateCodec, per_step: int = 2_000) -> Iterator[None]:
        """Build the row index from the values held, ``per_step`` meetings per step (a
        cheap read of each, no decoding); commits applied between steps are logged and
        replayed in order at the end. Nothing to do when the index is ready."""
        if self.rows_ready or self._index_log is not None:
            return
        self._index_log = []
        self.rows = RowIndex()
        ids = list(self.meetings)
        for start in range(0, len(ids), per_step):
            for meeting_id in ids[start : start + per_step]:
                raw = self.meetings.get(meeting_id)
                if raw is None:  # deleted since: its removal is in the log
                    continue
                created_ms, rows = codec.meeting_state_rows(raw)
                self.rows.bulk_add(meeting_id, created_ms // 1000, rows)
            yield
        self.rows.finish()
        logged, self._index_log = self._index_log, None
        for meeting_id, created_s, count in logged:
            self._index(meeting_id, created_s, count)
        self.rows_ready = True

    def index_rows(self, codec: StateCodec) -> None:
        """Build the row index at once (tests and tools; the engine uses ``index_steps``)."""
        for _ in self.index_steps(codec):
            pass


@dataclass(slots=True)
class Staging:
    """Changes of one cycle not yet committed: an overlay over ``EventState``."""

    base: EventState
    codec: StateCodec
    tracked: dict[int, Tracked | None] = field(default_factory=dict)
    encoded: dict[int, bytes | None] = field(default_factory=dict)
    progress: EventProgress | None = None
    #: meeting id -> version of the DELETED staged for it (``deleted_version``)
    deleted: dict[int, int] = field(default_factory=dict)
    #: the clock (epoch ms) when the cycle began: remembered deletes below it are dropped
    floor_ms: int = 0

    def get(self, meeting_id: int) -> Tracked | None:
        """The meeting as of this cycle so far (staged, else committed)."""
        if meeting_id in self.tracked:
            return self.tracked[meeting_id]
        return self.base.get(meeting_id, self.codec)

    def deleted_version(self, meeting_id: int) -> int | None:
        """The version a meeting not tracked now was deleted with, if still remembered."""
        staged = self.deleted.get(meeting_id)
        return staged if staged is not None else self.base.deleted.get(meeting_id)

    def put(
        self,
        meeting_id: int,
        tracked: Tracked | None,
        encoded: bytes | None,
        *,
        deleted: int | None = None,
    ) -> None:
        """Stage a new version (or a deletion with ``None``, ``deleted`` its version)."""
        self.tracked[meeting_id] = tracked
        self.encoded[meeting_id] = encoded
        if deleted is not None:
            self.deleted[meeting_id] = deleted
        else:
            self.deleted.pop(meeting_id, None)

    def tracked_ids(self) -> Iterator[int]:
        """Ids of every meeting tracked once this cycle commits."""
        for meeting_id in self.base.meetings:
            if self.tracked.get(meeting_id, True) is not None:
                yield meeting_id
        for meeting_id, tracked in self.tracked.items():
            if tracked is not None and meeting_id not in self.base.meetings:
                yield meeting_id
