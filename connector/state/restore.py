"""Restore: read an event's state partitions from the compacted topic into its ``EventState``.

At start-up and on every assignment, after every producer's ``init_transactions()``: assign
the state partitions of our events, read them from the beginning with ``isolation.level =
read_committed`` until the consumer's *position* reaches the end offset (transaction markers
occupy offsets, so the last record's offset is not the end).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connector.errors import FatalPublishError, SchemaMismatchError, SerializationError
from connector.state.store import EventState, StateCodec

log = logging.getLogger("connector.state")

_OFFSET_ATTEMPTS = 10
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


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
