"""The state store: what the connector last published per meeting, kept in a compacted topic.

The compacted state topic is the source of truth; this module holds its in-memory view per
event: for each meeting the encoded state record as it was written (decoded only when the
meeting shows up again, which keeps memory and restore time small; held compressed by
``connector.state_values``), and the event's progress record (phase, watermarks). Changes
of a cycle are staged in a ``Staging`` overlay and applied to the view only after their
transaction committed, so an aborted cycle leaves the view exactly as the topic is.

Restore (at start-up, after every producer's ``init_transactions()``): assign the state
partitions of our events, read them from the beginning with ``isolation.level =
read_committed`` until the consumer's *position* reaches the end offset (transaction
markers occupy offsets, so the last record's offset is not the end).

Beside the values, each event keeps a ``RowIndex`` (creation second and export rows of
every tracked meeting, 20 bytes each) for the delete check, kept by ``apply``. After a
restore it is built from the values in place by ``index_steps``, in slices between which
the caller yields to the event loop: a cheap read of each value (~11 us with its
decompression) would otherwise double the restore (~9 us a meeting, 1M meetings) or stall
polls for seconds. Commits made meanwhile are replayed onto it once it is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connector.errors import FatalPublishError, SerializationError
from connector.model import Meeting
from connector.progress import EventProgress
from connector.row_index import RowIndex
from connector.state_values import StateValues

log = logging.getLogger(__name__)

_OFFSET_ATTEMPTS = 10
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


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

    def get(self, meeting_id: int) -> Tracked | None:
        """The meeting as of this cycle so far (staged, else committed)."""
        if meeting_id in self.tracked:
            return self.tracked[meeting_id]
        return self.base.get(meeting_id, self.codec)

    def put(self, meeting_id: int, tracked: Tracked | None, encoded: bytes | None) -> None:
        """Stage a new version (or a deletion with ``None``)."""
        self.tracked[meeting_id] = tracked
        self.encoded[meeting_id] = encoded

    def tracked_ids(self) -> Iterator[int]:
        """Ids of every meeting tracked once this cycle commits."""
        for meeting_id in self.base.meetings:
            if self.tracked.get(meeting_id, True) is not None:
                yield meeting_id
        for meeting_id, tracked in self.tracked.items():
            if tracked is not None and meeting_id not in self.base.meetings:
                yield meeting_id


ConsumerFactory = Callable[[dict[str, Any]], Consumer]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore read."""

    records: int
    seconds: float


def restore(
    client_config: dict[str, str | int | float | bool],
    topic: str,
    partitions: Iterable[int],
    event_ids: Iterable[int],
    codec: StateCodec,
    *,
    consumer_factory: ConsumerFactory = Consumer,
    timeout: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[int, EventState], RestoreReport]:
    """Read the state partitions of ``event_ids`` to their end (blocking).

    Call only after every producer of these events ran ``init_transactions()``: an open
    transaction of a crashed predecessor would otherwise pin the last stable offset.
    """
    started = clock()
    states = {event_id: EventState(event_id, rows_ready=False) for event_id in event_ids}
    consumer = consumer_factory(
        {
            **client_config,
            "group.id": f"meetings-cdc-restore-{topic}",  # never subscribes nor commits
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    records = 0
    try:
        pending = end_offsets(consumer, topic, partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = clock() + timeout
        last_log = clock()
        while pending:
            if clock() > deadline:
                raise FatalPublishError(
                    f"state restore from {topic} did not reach the end within {timeout:.0f} s; "
                    "check the broker, or a hanging transaction of another producer"
                )
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    partition = msg.partition()
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        pending.pop(partition, None)
                        continue
                    raise FatalPublishError(
                        f"state restore failed: {error.str()}", code=error.code()
                    )
                records += 1
                _apply_record(states, codec, msg.key(), msg.value())
            drop_read_to_end(consumer, topic, pending)
            if clock() - last_log > 5:
                last_log = clock()
                log.info("restoring state", extra={"records": records, "topic": topic})
    finally:
        consumer.close()
    report = RestoreReport(records=records, seconds=clock() - started)
    log.info(
        "state restored",
        extra={
            "records": report.records,
            "seconds": round(report.seconds, 3),
            "meetings": sum(len(s.meetings) for s in states.values()),
        },
    )
    return states, report


def end_offsets(consumer: Consumer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """End offset (the last stable offset, for read_committed) of each non-empty partition;
    ``FatalPublishError`` when the offsets cannot be read (after retries: a topic created a
    moment ago may not have a partition leader yet)."""
    ends: dict[int, int] = {}
    for partition in set(partitions):
        for attempt in range(1, _OFFSET_ATTEMPTS + 1):
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30, cached=False
                )
                break
            except KafkaException as exc:
                # A topic created a moment ago may not have a partition leader yet.
                error = exc.args[0]
                transient = error.retriable() or error.code() in _NO_LEADER_YET
                if transient and attempt < _OFFSET_ATTEMPTS:
                    time.sleep(0.5)
                    continue
                raise FatalPublishError(
                    f"cannot read offsets of {topic}[{partition}]: {error.str()}"
                ) from exc
        if high > low:
            ends[partition] = high
    return ends


def drop_read_to_end(consumer: Consumer, topic: str, pending: dict[int, int]) -> None:
    """Forget the partitions of ``pending`` (partition -> end offset) whose consumer
    position reached their end. By position, not by the last record's offset: markers of
    committed or aborted transactions occupy the last offsets."""
    if not pending:
        return
    positions = consumer.position([TopicPartition(topic, p) for p in pending])
    for tp in positions:
        end = pending.get(tp.partition)
        if end is not None and tp.offset >= end:
            del pending[tp.partition]


def _apply_record(
    states: dict[int, EventState], codec: StateCodec, key: bytes | None, value: bytes | None
) -> None:
    if key is None:
        return
    try:
        event_id, meeting_id = codec.decode_state_key(key)
    except SerializationError:
        log.warning("skipping a state record with an undecodable key")
        return
    state = states.get(event_id)
    if state is None:  # another event sharing the partition
        return
    if meeting_id is None:
        if value is not None:
            state.progress = codec.decode_progress(value)
    elif value is None:
        state.meetings.pop(meeting_id, None)
    else:
        state.meetings[meeting_id] = value
