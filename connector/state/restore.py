"""Restore: read an event's state partitions from the compacted topic into its ``EventState``.

At start-up and on every assignment: assign the state partitions of our events, read them
from the beginning with ``isolation.level = read_committed`` until the consumer's *position*
reaches the end offset (transaction markers occupy offsets, so the last record's offset is
not the end). The end offsets are taken only once every producer of these events ran
``init_transactions()`` (a crashed predecessor's open transaction pins the last stable
offset until then); the reading may begin before, while the producers fence
(:class:`Fencing`): what it reads meanwhile is committed either way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connector.errors import FatalPublishError, SchemaMismatchError, SerializationError
from connector.state.store import EventState, StateCodec
from connector.state.values import RESTORE_DEFER_BYTES, StateValues

log = logging.getLogger("connector.state")

_OFFSET_ATTEMPTS = 10
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


ConsumerFactory = Callable[[dict[str, Any]], Consumer]

#: How long one ``consume()`` waits. librdkafka returns a batch only once it holds
#: ``num_messages`` or the timeout passed, so the last batch of every restore (the tail of a
#: partition, then its end-of-partition event) waited the whole timeout: at 0.5 s that was
#: 0.50 of a 0.66 s restore of 20,000 meetings (issue 30 item 3).
_CONSUME_TIMEOUT_S = 0.02
_BATCH = 10_000
_WARM_UP_TIMEOUT_S = 10.0
_FETCH_WAIT_MS = 10


class Fencing:
    """Whether the producers of the events being restored fenced their predecessors yet.

    Given to :func:`restore` started beside those producers' ``init_transactions()``: the
    caller says :meth:`done` once every one returned, or :meth:`abandon` if one failed (the
    restore then stops with :class:`RestoreAbandoned`). Thread-safe.
    """

    __slots__ = ("_abandoned", "_set")

    def __init__(self) -> None:
        self._set = threading.Event()
        self._abandoned = False

    def done(self) -> None:
        """Every producer ran ``init_transactions()``: the end offsets can be taken."""
        self._set.set()

    def abandon(self) -> None:
        """The producers did not all start: the restore is not needed any more."""
        self._abandoned = True
        self._set.set()

    @property
    def settled(self) -> bool:
        """Whether :meth:`done` or :meth:`abandon` was called."""
        return self._set.is_set()

    @property
    def abandoned(self) -> bool:
        """Whether :meth:`abandon` was called."""
        return self._abandoned


class RestoreAbandoned(Exception):
    """The restore stopped because its :class:`Fencing` was abandoned."""


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
    fencing: Fencing | None = None,
    consumer_factory: ConsumerFactory = Consumer,
    timeout: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[int, EventState], RestoreReport]:
    """Read the state partitions of ``event_ids`` to their end (blocking).

    Without ``fencing``, call only after every producer of these events ran
    ``init_transactions()``: an open transaction of a crashed predecessor would otherwise
    pin the last stable offset. With it, the reading starts at once and the end offsets are
    taken once ``fencing`` is done (``RestoreAbandoned`` if it is abandoned instead).
    The states' values are held raw up to ``RESTORE_DEFER_BYTES``: the caller runs each
    one's ``meetings.compress_steps()`` once the event started.
    """
    started = clock()
    events = list(event_ids)
    # Their dictionaries trained once the events run (StateValues.compress_steps), up to a
    # bound on the raw bytes held meanwhile, shared by the events.
    defer = RESTORE_DEFER_BYTES // max(1, len(events))
    states = {
        event_id: EventState(event_id, StateValues(defer_bytes=defer), rows_ready=False)
        for event_id in events
    }
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
            # A broker answers one connection's requests in order: the end offsets asked
            # for after the fencing waited behind a fetch parked at the end of the data for
            # up to fetch.wait.max.ms (500 ms by default; 0.39-0.40 s in 2 of 4 restarts).
            "fetch.wait.max.ms": _FETCH_WAIT_MS,
        }
    )
    records = 0
    try:
        # None until the producers fenced: before, no end is known, and ends seen are not ends.
        pending: dict[int, int] | None = None
        if fencing is None:
            pending = end_offsets(consumer, topic, partitions)
            assigned = list(pending)
        else:
            assigned = sorted(set(partitions))
            # The partitions' leader known first: assigned before, a partition waits ~0.5 s
            # (librdkafka's offset query timer) before its first fetch. Only a warm-up.
            with contextlib.suppress(KafkaException):
                consumer.list_topics(topic, timeout=_WARM_UP_TIMEOUT_S)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in assigned])
        deadline = clock() + timeout
        last_log = clock()
        while pending is None or pending:
            if clock() > deadline:
                raise FatalPublishError(
                    f"state restore from {topic} did not reach the end within {timeout:.0f} s; "
                    "check the broker, or a hanging transaction of another producer"
                )
            if pending is None and fencing is not None and fencing.settled:
                if fencing.abandoned:
                    raise RestoreAbandoned
                pending = end_offsets(consumer, topic, assigned)
                drop_read_to_end(consumer, topic, pending)  # what was read meanwhile may be all
                continue
            for msg in consumer.consume(num_messages=_BATCH, timeout=_CONSUME_TIMEOUT_S):
                error = msg.error()
                if error is not None:
                    partition = msg.partition()
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        # An end reached before the fencing may be an end the fencing moves.
                        end = msg.offset()
                        if (
                            pending is not None
                            and end is not None
                            and end >= pending.get(partition, 0)
                        ):
                            pending.pop(partition, None)
                        continue
                    raise FatalPublishError(
                        f"state restore failed: {error.str()}", code=error.code()
                    )
                records += 1
                _apply_record(states, codec, msg.key(), msg.value())
            if pending is not None:
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
    except SchemaMismatchError as exc:
        # Skipped, every meeting's state would be lost: a second snapshot, versions anew.
        raise FatalPublishError(f"cannot restore the state: {exc}") from exc
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
