"""One transaction's worth of an event's records, and the state staged with them.

A ``Batch`` classifies each meeting it is given against a staging overlay of the event's
committed state, and turns every change into its records: the change event, the state
upsert (or tombstone), dead letters and, last, the progress record. Nothing of it touches
the committed state: the engine applies ``batch.staging`` only after the transaction
committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connector import __version__
from connector.core.changes import Change, ChangeEvent, ChangeType, ReadKind, SourceInfo, classify
from connector.core.model import Meeting
from connector.core.progress import EventProgress
from connector.core.versions import next_version
from connector.kafka.cloudevents import cloudevent_headers
from connector.kafka.layout import Record, change_partition
from connector.source.leaf_parts import WindowPart
from connector.source.windows import Window
from connector.state.store import EventState, Staging, Tracked

if TYPE_CHECKING:  # a Serdes is handed in: the registry client stays out of this pure module
    from connector.serde import Serdes


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one event's records go."""

    event_id: int
    state_partition: int
    changes_topic: str
    state_topic: str
    dlq_topic: str
    connector_name: str
    #: partitions of the changes topic: a meeting's partition is computed from its key
    #: (``connector.kafka.layout.change_partition``), not left to the producer
    changes_partitions: int
    #: a null-value record after each DELETED (``MEETINGS_CDC_TOMBSTONES_ON_DELETE``)
    tombstones_on_delete: bool = False
    #: CloudEvents headers on change events (``MEETINGS_CDC_CLOUDEVENTS_HEADERS``)
    cloudevents_headers: bool = True


@dataclass(slots=True)
class Batch:
    """Records and staged state of one transaction being assembled."""

    to: Destination
    serdes: Serdes
    staging: Staging
    wall_clock: Callable[[], float]
    records: list[Record] = field(default_factory=list)
    published: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    modified_at: list[int] = field(default_factory=list)
    dead_letters: int = 0
    # One SourceInfo per window read (the encoder keeps the last one's encoding).
    _source: tuple[Window, str, SourceInfo] | None = field(default=None, init=False, repr=False)

    @classmethod
    def start(
        cls,
        to: Destination,
        state: EventState,
        serdes: Serdes,
        wall_clock: Callable[[], float],
        after: Batch | None = None,
    ) -> Batch:
        """An empty batch over ``state``; ``after``: a batch that may still be committing,
        whose versions this one must see until the state has them."""
        staging = Staging(state, serdes, floor_ms=int(wall_clock() * 1000))
        if after is not None:
            # only ``after``'s own versions: what it carried was committed before it began
            staging.tracked.update((m, after.staging.tracked[m]) for m in after.staging.encoded)
            staging.deleted.update(after.staging.deleted)
        return cls(to, serdes, staging, wall_clock)

    def __len__(self) -> int:
        return len(self.records)

    def stage(
        self,
        meeting: Meeting,
        window: Window,
        *,
        kind: ReadKind,
        snapshot: bool = False,
        emit: bool = True,
        signal_id: str | None = None,
    ) -> Change | None:
        """Classify ``meeting`` against the staged state; add its records if it changed.

        ``emit=False`` (snapshot mode ``no_data``) builds state without change events;
        ``signal_id``: the re-snapshot signal that read it (``source.signal_id``).
        """
        tracked = self.staging.get(meeting.meeting_id)
        change = classify(tracked.meeting if tracked else None, meeting, snapshot=snapshot)
        if change is None:
            return None
        meeting_id = meeting.meeting_id
        now = self._now_ms()
        if tracked is not None and not emit:
            version = tracked.version  # not published: the next event is still its + 1
        else:  # a new life (not tracked) starts at the clock: connector.core.versions
            version = next_version(
                tracked.version if tracked is not None else None,
                now,
                self.staging.deleted_version(meeting_id),
            )
        encoded = self.serdes.encode_meeting_state(meeting, version)
        self.staging.put(meeting_id, Tracked(meeting, version, encoded), encoded)
        self._state_record(meeting_id, encoded)
        if emit:
            before = tracked.encoded if tracked is not None else None
            self._emit(
                change,
                meeting_id,
                (meeting.modified_at, now),
                version,
                window,
                kind,
                (before, encoded),
                signal_id,
            )
        return change

    def re_emit(self, tracked: Tracked, window: Window, signal_id: str) -> None:
        """A re-snapshot's ``SNAPSHOT`` of a meeting as its state holds it: the same
        version (a consumer that deduplicates by (meeting, version) drops it, one that
        rebuilds keeps it), no state record (nothing changed)."""
        meeting = tracked.meeting
        self._emit(
            Change(ChangeType.SNAPSHOT, (), None, meeting),
            meeting.meeting_id,
            (meeting.modified_at, self._now_ms()),
            tracked.version,
            window,
            ReadKind.RESNAPSHOT,
            (None, tracked.encoded),
            signal_id,
        )

    def stage_delete(
        self,
        tracked: Tracked,
        window: Window,
        detected_at: int,
        *,
        kind: ReadKind = ReadKind.RECONCILE,
        signal_id: str | None = None,
    ) -> None:
        """A meeting that vanished upstream: DELETED event and a state tombstone."""
        change = classify(tracked.meeting, None)
        assert change is not None  # noqa: S101 - a deletion always classifies
        meeting_id = tracked.meeting.meeting_id
        version = next_version(tracked.version, detected_at)
        self.staging.put(meeting_id, None, None, deleted=version)
        self._state_record(meeting_id, None)
        self._emit(
            change,
            meeting_id,
            (detected_at, self._now_ms()),
            version,
            window,
            kind,
            (tracked.encoded, None),
            signal_id,
        )
        if self.to.tombstones_on_delete:  # for consumers that compact: same key, partition
            deleted = self.records[-1]
            self.records.append(Record(deleted.topic, deleted.key, None, deleted.partition))

    def add_dead_letters(self, part: WindowPart) -> None:
        """Every malformed row of ``part``, for the dead-letter topic."""
        for letter in part.dead_letters:
            value = self.serdes.encode_dead_letter(
                letter, detected_at=self._now_ms(), connector=self.to.connector_name
            )
            self.records.append(Record(self.to.dlq_topic, None, value))
            self.dead_letters += 1

    def close(self, progress: EventProgress) -> None:
        """Add the progress record (the watermarks this transaction commits), last."""
        key = self.serdes.encode_state_key(self.to.event_id, None)
        value = self.serdes.encode_progress(progress)
        self.records.append(Record(self.to.state_topic, key, value, self.to.state_partition))
        self.staging.progress = progress

    def _state_record(self, meeting_id: int, encoded: bytes | None) -> None:
        key = self.serdes.encode_state_key(self.to.event_id, meeting_id)
        self.records.append(Record(self.to.state_topic, key, encoded, self.to.state_partition))

    def _emit(
        self,
        change: Change,
        meeting_id: int,
        times: tuple[int, int],
        version: int,
        window: Window,
        kind: ReadKind,
        states: tuple[bytes | None, bytes | None],
        signal_id: str | None = None,
    ) -> None:
        """``times``: (modified_at, detected_at) in epoch ms; ``states``: the state record
        values of ``before`` and ``after``, when known (each meeting is encoded once: the
        event reuses its state record's body)."""
        modified_at, detected_at = times
        event = ChangeEvent(
            event_id=self.to.event_id,
            meeting_id=meeting_id,
            change=change,
            modified_at=modified_at,
            detected_at=detected_at,
            version=version,
            source=self._source_of(window, kind, signal_id),
        )
        canonical = self.serdes.change_key_body(self.to.event_id, meeting_id)
        headers = (
            cloudevent_headers(event, self.to.connector_name, self.serdes.content_type)
            if self.to.cloudevents_headers
            else ()
        )
        self.records.append(
            Record(
                self.to.changes_topic,
                self.serdes.frame_change_key(canonical),
                self.serdes.encode_change(event, states),
                change_partition(canonical, self.to.changes_partitions),
                headers,
            )
        )
        self.published[change.change_type.value] += 1
        if change.change_type is not ChangeType.SNAPSHOT:
            self.modified_at.append(modified_at)

    def _source_of(self, window: Window, kind: ReadKind, signal_id: str | None) -> SourceInfo:
        cached = self._source
        if (
            cached is not None
            and cached[0] == window
            and cached[1] == kind
            and cached[2].signal_id == signal_id
        ):
            return cached[2]
        source = SourceInfo(
            connector=self.to.connector_name,
            connector_version=__version__,
            window_kind=kind,
            window_start=window.start * 1000,
            window_end=window.end * 1000,
            signal_id=signal_id,
        )
        self._source = (window, kind, source)
        return source

    def _now_ms(self) -> int:
        return int(self.wall_clock() * 1000)
