"""The local broker does what the connector relies on: transactions and compaction."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import ConfigResource, ResourceType


def _read_committed(
    bootstrap: str, topic: str, expect_at_least: int, polls: int = 20
) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"smoke-{topic}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        for _ in range(polls):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
            if len(seen) >= expect_at_least and msg is None:
                break
    finally:
        consumer.close()
    return seen


def _producer(bootstrap: str, txn_id: str) -> Producer:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "enable.idempotence": True}
    )
    producer.init_transactions(30)
    return producer


def test_committed_transaction_is_visible_to_read_committed(kafka_bootstrap, topic_factory):
    topic = topic_factory("smoke.commit")
    producer = _producer(kafka_bootstrap, f"txn-{topic}")
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"v{i}".encode())
    producer.commit_transaction(30)

    assert _read_committed(kafka_bootstrap, topic, 3) == [b"v0", b"v1", b"v2"]


def test_aborted_transaction_is_invisible_to_read_committed(kafka_bootstrap, topic_factory):
    topic = topic_factory("smoke.abort")
    producer = _producer(kafka_bootstrap, f"txn-{topic}")
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(10)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)

    assert _read_committed(kafka_bootstrap, topic, 1) == [b"committed"]


def test_compacted_topic_reports_its_cleanup_policy(admin, topic_factory):
    topic = topic_factory("smoke.compact", config={"cleanup.policy": "compact"})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)

    assert configs["cleanup.policy"].value == "compact"
