"""Kafka writing: topic set-up and checks, and the transactional producer of one event.

Every poll cycle of an event is one Kafka transaction holding its change events, its state
updates, its dead letters and its watermark record, so a read_committed consumer sees all
of a cycle or none of it. Each event has its own transactional id (``<connector>.<event>``):
events commit independently, and a new owner of an event (another replica the group assigned
it, see ``connector.replicas``) fences the previous one, event by event.

librdkafka calls block; they run in a worker thread so the event loop keeps serving
health checks and other events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from connector.config.settings import KafkaSettings
from connector.errors import (
    ConfigError,
    FatalPublishError,
    ProducerFencedError,
    RetriablePublishError,
)
from connector.kafka.layout import Record

log = logging.getLogger("connector.publisher")

_FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
_COMMIT_ATTEMPTS = 5


# --- topics ---------------------------------------------------------------------------


def ensure_topics(
    admin: AdminClient, settings: KafkaSettings, timeout: float = 30.0
) -> dict[str, int]:
    """Create missing topics with the right configs; check the state topic is compacted.

    Returns the partition count of each topic. Raises ``ConfigError`` when the state topic
    exists but is not compacted (restoring from it would lose state silently).
    """
    replication = settings.topic_replication_factor or -1  # -1: the broker's default
    retention = settings.changes_topic_retention_ms
    wanted = {
        settings.changes_topic: NewTopic(
            settings.changes_topic,
            num_partitions=settings.changes_topic_partitions,
            replication_factor=replication,
            config={} if retention is None else {"retention.ms": str(retention)},
        ),
        settings.state_topic: NewTopic(
            settings.state_topic,
            num_partitions=settings.state_topic_partitions,
            replication_factor=replication,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
        settings.dlq_topic: NewTopic(
            settings.dlq_topic,
            num_partitions=1,
            replication_factor=replication,
        ),
    }
    existing = _describe_topics(admin, timeout)
    missing = [topic for name, topic in wanted.items() if name not in existing]
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                log.info("created topic", extra={"topic": name})
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise FatalPublishError(
                        f"cannot create topic {name}: {exc.args[0].str()}",
                        code=exc.args[0].code(),
                    ) from exc
        existing = _describe_topics(admin, timeout)
        # A created topic can take a moment to show in the metadata a broker answers with.
        deadline = time.monotonic() + timeout
        while not set(wanted) <= set(existing) and time.monotonic() < deadline:
            time.sleep(0.1)
            existing = _describe_topics(admin, timeout)
        absent = sorted(set(wanted) - set(existing))
        if absent:
            raise RetriablePublishError(f"created topics not in the metadata yet: {absent}")
    _check_compacted(admin, settings.state_topic, timeout)
    return {name: existing[name] for name in wanted}


def _describe_topics(admin: AdminClient, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise RetriablePublishError(
            f"Kafka metadata request failed: {exc.args[0].str()}", code=exc.args[0].code()
        ) from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def changes_topic_retention_ms(
    admin: AdminClient, settings: KafkaSettings, timeout: float = 30.0
) -> int:
    """The ``retention.ms`` the changes topic has (-1: forever), for ``/status``.

    An existing topic is never altered: when ``MEETINGS_CDC_CHANGES_TOPIC_RETENTION_MS``
    asks for another retention, a warning says how to change it.
    """
    topic = settings.changes_topic
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise RetriablePublishError(
            f"cannot describe topic {topic}: {exc.args[0].str()}", code=exc.args[0].code()
        ) from exc
    retention = int(configs["retention.ms"].value)
    wanted = settings.changes_topic_retention_ms
    if wanted is not None and wanted != retention:
        log.warning(
            "the changes topic exists with another retention, left as it is",
            extra={
                "topic": topic,
                "retention_ms": retention,
                "MEETINGS_CDC_CHANGES_TOPIC_RETENTION_MS": wanted,
                "to_change": f"kafka-configs --bootstrap-server BROKER --alter --entity-type "
                f"topics --entity-name {topic} --add-config retention.ms={wanted}",
            },
        )
    return retention


def _check_compacted(admin: AdminClient, topic: str, timeout: float) -> None:
    """Refuse a state topic whose policy is not ``compact`` alone.

    ``compact,delete`` is refused too: retention would remove the state of meetings that did
    not change for ``retention.ms``, which would come back as ``CREATED`` (a new life of
    versions), and whose deletes no reconciliation could see any more.
    """
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    policy = configs["cleanup.policy"].value
    if {part.strip().lower() for part in policy.split(",")} != {"compact"}:
        raise ConfigError(
            f"MEETINGS_CDC_STATE_TOPIC: topic {topic} has cleanup.policy={policy}, and "
            "retention would delete meetings' state; the state topic must be "
            "cleanup.policy=compact only: run kafka-configs --bootstrap-server BROKER --alter "
            f"--entity-type topics --entity-name {topic} --add-config cleanup.policy=compact "
            "(or name another topic)"
        )


# --- producing ------------------------------------------------------------------------


def producer_config(settings: KafkaSettings, txn_id: str) -> dict[str, Any]:
    """librdkafka properties of a transactional producer."""
    return {
        **settings.kafka_client_config(),
        "transactional.id": txn_id,
        "enable.idempotence": True,
        "acks": "all",
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        "linger.ms": 5,
        "compression.type": "zstd",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
    }


ProducerFactory = Callable[[dict[str, Any]], Producer]

#: Metadata requests :func:`_connect` makes at most (each within the timeout below).
_CONNECT_ATTEMPTS = 5
_CONNECT_TIMEOUT_S = 5.0


def _connect(producer: Producer, topic: str) -> None:
    """Have a broker connection up before ``init_transactions()`` (only a warm-up).

    A new producer's ``init_transactions()`` looks for the transaction coordinator at once;
    while only the bootstrap connection exists (librdkafka drops it once metadata names the
    brokers) it finds no broker up and retries after a fixed 500 ms: 5 of 12 fences after a
    SIGKILL took 0.51 s instead of 0.06 s (issue 30 item 3). A metadata answer from a broker
    by its id (the bootstrap connection answers as -1) means a connection to it is up.
    """
    for _ in range(_CONNECT_ATTEMPTS):
        try:
            metadata = producer.list_topics(topic, timeout=_CONNECT_TIMEOUT_S)
        except KafkaException:
            return  # init_transactions() reports what is wrong
        if metadata.orig_broker_id >= 0:
            return


class TransactionalPublisher:
    """Writes one cycle of one event as one Kafka transaction."""

    def __init__(
        self,
        settings: KafkaSettings,
        txn_id: str,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._config = producer_config(settings, txn_id)
        self._factory = producer_factory
        self._producer: Producer | None = None
        self.txn_id = txn_id
        self._timeout = settings.transaction_timeout_ms / 1000
        self._metadata_topic = settings.state_topic

    async def start(self) -> None:
        """Create the producer and ``init_transactions()``: fences any predecessor with
        the same transactional id and aborts its open transaction."""
        producer = self._producer = self._factory(self._config)
        await asyncio.to_thread(self._start_blocking, producer)

    def _start_blocking(self, producer: Producer) -> None:
        _connect(producer, self._metadata_topic)
        self._call(producer.init_transactions, self._timeout)

    async def publish(self, records: Sequence[Record]) -> None:
        """Write ``records`` in one transaction and commit it.

        Raises ``RetriablePublishError`` when the transaction was aborted (nothing of it is
        visible; redo the cycle from the last committed state) and ``FatalPublishError``
        when this producer can no longer be used (fenced by another instance).
        """
        await asyncio.to_thread(self._publish_blocking, records)

    async def close(self) -> None:
        """Deliver what is queued and release the producer.

        A transaction still open here (a cycle cut short by shutdown) is not committed: the
        broker aborts it after ``transaction.timeout.ms``, or the next start fences it.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, 5.0)

    # The blocking half, run in a worker thread.
    def _publish_blocking(self, records: Sequence[Record]) -> None:
        producer = self._require()
        self._call(producer.begin_transaction)
        try:
            for record in records:
                self._produce(producer, record)
            self._commit(producer)
        except RetriablePublishError:
            self._abort(producer)
            raise

    def _produce(self, producer: Producer, record: Record) -> None:
        kwargs: dict[str, Any] = {"key": record.key, "value": record.value}
        if record.partition is not None:
            kwargs["partition"] = record.partition
        if record.headers:
            kwargs["headers"] = list(record.headers)
        while True:
            try:
                producer.produce(record.topic, **kwargs)
                return
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as exc:
                raise self._translate(exc) from exc

    def _commit(self, producer: Producer) -> None:
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                producer.commit_transaction(self._timeout)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.retriable() and attempt < _COMMIT_ATTEMPTS:
                    log.warning(
                        "commit failed, retrying",
                        extra={"txn_id": self.txn_id, "error": error.str(), "attempt": attempt},
                    )
                    continue
                raise self._translate(exc) from exc

    def _abort(self, producer: Producer) -> None:
        try:
            producer.abort_transaction(self._timeout)
        except KafkaException as exc:
            raise self._translate(exc) from exc

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except KafkaException as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: KafkaException) -> RetriablePublishError | FatalPublishError:
        error: KafkaError = exc.args[0]
        code = error.code()
        if code in _FENCED_CODES:
            return ProducerFencedError(
                f"producer {self.txn_id!r} was fenced: another replica with the same "
                "MEETINGS_CDC_CONNECTOR_NAME runs this event now",
                code=code,
            )
        if error.fatal():
            return FatalPublishError(
                f"fatal Kafka producer error ({self.txn_id}): {error.str()}", code=code
            )
        return RetriablePublishError(f"Kafka transaction failed: {error.str()}", code=code)

    def _require(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("TransactionalPublisher.start() was not called")
        return self._producer
