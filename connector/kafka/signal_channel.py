"""The signals topic, read for one event; and the operators' topics created at start-up.

Every replica reads the signals topic, each for the events it owns, from the offsets the
event's progress holds (``EventProgress.signal_offsets``): a signal's effect and the offset
after it are committed in one of the event's transactions, so a signal acts once, after a
restart or on a new owner too. The consumer is assigned its partitions (no group, nothing
committed to Kafka) and reads read_committed. Calls block: the owner runs them in a thread
or polls without waiting (``poll``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connector.config.settings import KafkaSettings
from connector.errors import ConfigError, RetriablePublishError

log = logging.getLogger("connector.signals")

#: Retention of a created notifications or heartbeats topic: a week, like Kafka's default.
_RETENTION_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One record of the signals topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class SignalChannel:
    """A read_committed consumer of the signals topic at one event's offsets."""

    def __init__(self, settings: KafkaSettings, event_id: int, connector_name: str) -> None:
        self.topic = settings.signals_topic
        config: dict[str, Any] = {
            **settings.kafka_client_config(),
            "group.id": f"{connector_name}.signals.{event_id}",  # assigned: never joins
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "auto.offset.reset": "latest",
        }
        self._consumer = Consumer(config)
        self.positions: dict[int, int] = {}

    def start(
        self, offsets: Mapping[int, int] | None, since_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """Assign every partition at ``offsets``; a partition without one at its first
        record written at or after ``since_ms`` (epoch ms), else at its end. Return where
        each starts. Blocks."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise RetriablePublishError(f"signals topic {self.topic} not found")
            starts: dict[int, int] = {}
            for partition in sorted(topic.partitions):
                if offsets is not None and partition in offsets:
                    starts[partition] = offsets[partition]
                    continue
                (found,) = self._consumer.offsets_for_times(
                    [TopicPartition(self.topic, partition, since_ms)], timeout=timeout
                )
                if found.offset >= 0:
                    starts[partition] = found.offset
                else:  # nothing written since: the end
                    _, high = self._consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition), timeout=timeout
                    )
                    starts[partition] = high
            self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in starts.items()])
        except KafkaException as exc:
            raise RetriablePublishError(f"signals topic {self.topic}: {exc}") from exc
        self.positions = dict(starts)
        return starts

    def poll(self, limit: int = 100) -> list[SignalRecord]:
        """The records ready now (does not wait)."""
        found: list[SignalRecord] = []
        for message in self._consumer.consume(num_messages=limit, timeout=0):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("signals topic: %s", error.str())
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            found.append(SignalRecord(partition, offset, message.key(), message.value()))
        return found

    def rewind(self, offsets: Mapping[int, int]) -> None:
        """Read again from ``offsets`` (a transaction that would have marked them failed)."""
        for partition, offset in offsets.items():
            self._consumer.seek(TopicPartition(self.topic, partition, offset))

    def close(self) -> None:
        """Leave nothing behind (no group was joined, no offset committed)."""
        self._consumer.close()


def ensure_operation_topics(
    admin: AdminClient, settings: KafkaSettings, timeout: float = 30.0
) -> None:
    """Create the signals, notifications and heartbeats topics if missing (one partition
    each: a signal's order is its topic's, and they are few). Blocks."""
    replication = settings.topic_replication_factor or -1
    wanted = {
        settings.signals_topic: {},
        settings.notifications_topic: {"retention.ms": _RETENTION_MS},
        settings.heartbeats_topic: {"retention.ms": _RETENTION_MS},
    }
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise RetriablePublishError(f"cannot list topics: {exc}") from exc
    missing = [
        NewTopic(name, num_partitions=1, replication_factor=replication, config=config)
        for name, config in wanted.items()
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            log.info("created topic", extra={"topic": name})
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise ConfigError(f"cannot create topic {name}: {error.str()}") from exc


__all__ = ["SignalChannel", "SignalRecord", "ensure_operation_topics"]
