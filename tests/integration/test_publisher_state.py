"""Transactions and state restore against the real broker (DESIGN.md section 4, problem 5)."""

from __future__ import annotations

import asyncio
import json

import pytest
from confluent_kafka import Producer

from connector.config.settings import KafkaSettings
from connector.core.model import Meeting
from connector.core.progress import EventProgress
from connector.errors import ConfigError, ProducerFencedError
from connector.kafka.layout import Record, state_partition
from connector.kafka.publisher import TransactionalPublisher, ensure_topics
from connector.state.restore import Fencing, RestoreAbandoned, restore


class JsonStateCodec:
    """A readable stand-in for the Avro state codec: these tests are about Kafka semantics."""

    def decode_state_key(self, data: bytes) -> tuple[int, int | None]:
        event_id, meeting_id = json.loads(data)
        return event_id, meeting_id

    def decode_meeting_state(self, data: bytes) -> tuple[Meeting, int]:
        raise NotImplementedError

    def decode_progress(self, data: bytes) -> EventProgress:
        return EventProgress(**json.loads(data))


def _key(event_id: int, meeting_id: int | None) -> bytes:
    return json.dumps([event_id, meeting_id]).encode()


def _settings(bootstrap: str, **topics: str) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        state_topic_partitions=3,
        changes_topic_partitions=2,
        transaction_timeout_ms=60_000,
        **topics,
    )


@pytest.fixture
def topics(unique_name):
    return {
        "changes_topic": unique_name("changes"),
        "state_topic": unique_name("state"),
        "dlq_topic": unique_name("dlq"),
    }


def test_ensure_topics_creates_a_compacted_state_topic(admin, kafka_bootstrap, topics):
    settings = _settings(kafka_bootstrap, **topics)

    partitions = ensure_topics(admin, settings)

    assert partitions == {
        topics["changes_topic"]: 2,
        topics["state_topic"]: 3,
        topics["dlq_topic"]: 1,
    }
    # Idempotent: a second start finds everything in place.
    assert ensure_topics(admin, settings) == partitions


@pytest.mark.parametrize("policy", ["delete", "compact,delete", "delete,compact"])
def test_refuses_a_state_topic_that_is_not_only_compacted(
    admin, kafka_bootstrap, topic_factory, topics, policy
):
    # With "delete" in the policy, retention removes meetings' state: they would come back
    # as CREATED with version 1, and their deletes would go unseen.
    state = topic_factory("state.delete", config={"cleanup.policy": policy})
    settings = _settings(kafka_bootstrap, **{**topics, "state_topic": state})

    with pytest.raises(ConfigError) as raised:
        ensure_topics(admin, settings)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("MEETINGS_CDC_STATE_TOPIC: ")
    assert state in message
    assert f"cleanup.policy={policy}" in message
    assert f"--entity-name {state} --add-config cleanup.policy=compact" in message


async def test_second_instance_fences_the_first(kafka_bootstrap, topic_factory):
    topic = topic_factory("fence")
    settings = _settings(kafka_bootstrap)
    first = TransactionalPublisher(settings, f"fence-{topic}")
    second = TransactionalPublisher(settings, f"fence-{topic}")
    await first.start()
    await first.publish([Record(topic, b"k", b"from-first")])

    await second.start()

    with pytest.raises(ProducerFencedError, match="MEETINGS_CDC_CONNECTOR_NAME"):
        await first.publish([Record(topic, b"k", b"zombie")])
    await second.publish([Record(topic, b"k", b"from-second")])


async def test_restore_reads_to_the_end_past_transaction_markers(admin, kafka_bootstrap, topics):
    settings = _settings(kafka_bootstrap, **topics)
    ensure_topics(admin, settings)
    state_topic = topics["state_topic"]
    event_id = 7
    partition = state_partition(event_id, 3)
    publisher = TransactionalPublisher(settings, f"restore-{state_topic}")
    await publisher.start()
    progress = {
        "event_id": event_id,
        "phase": "streaming",
        "snapshot_upper": 100,
        "created_through": 100,
        "modified_through": 123,
        "last_reconcile_at": 100,
        "updated_at": 0,
    }
    # Every transaction ends with a commit marker: the partition's last offset is a
    # marker, never a record, so stopping at "last record offset" would never finish.
    for cycle in range(3):
        await publisher.publish(
            [
                Record(state_topic, _key(event_id, cycle * 10 + i), b"state", partition)
                for i in range(5)
            ]
            + [Record(state_topic, _key(event_id, None), json.dumps(progress).encode(), partition)]
        )
    await publisher.publish([Record(state_topic, _key(event_id, 0), None, partition)])

    states, report = restore(
        settings.kafka_client_config(),
        state_topic,
        [partition],
        [event_id],
        JsonStateCodec(),
        timeout=30,
    )

    assert report.records == 19
    state = states[event_id]
    assert sorted(state.meetings) == [1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
    assert state.progress is not None
    assert state.progress.modified_through == 123


async def _crash_mid_transaction(
    settings: KafkaSettings, txn_id: str, event_id: int, neighbour: int
) -> None:
    """A predecessor ``txn_id`` that crashed mid-transaction (a state record of ``event_id``
    written, never committed), and another event's producer that commits a record of
    ``neighbour`` behind it in the same partition."""
    topic = settings.state_topic
    partition = state_partition(event_id, settings.state_topic_partitions)
    assert state_partition(neighbour, settings.state_topic_partitions) == partition
    crashed = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "transactional.id": txn_id}
    )
    crashed.init_transactions(30)
    crashed.begin_transaction()
    crashed.produce(topic, key=_key(event_id, 2), value=b"uncommitted", partition=partition)
    crashed.flush(10)
    other = TransactionalPublisher(settings, f"other-{topic}")
    await other.start()
    await other.publish([Record(topic, _key(neighbour, 9), b"other", partition)])


async def test_init_transactions_releases_a_crashed_predecessors_open_transaction(
    admin, kafka_bootstrap, topics
):
    settings = _settings(kafka_bootstrap, **topics)
    ensure_topics(admin, settings)
    state_topic = topics["state_topic"]
    txn_id = f"crash-{state_topic}"
    event_id, neighbour = 3, 6  # both live in partition 0 of 3
    partition = state_partition(event_id, 3)
    assert state_partition(neighbour, 3) == partition
    first = TransactionalPublisher(settings, txn_id)
    await first.start()
    await first.publish([Record(state_topic, _key(event_id, 1), b"kept", partition)])
    await first.close()

    await _crash_mid_transaction(settings, txn_id, event_id, neighbour)

    # The open transaction pins the last stable offset: a restore now silently misses
    # the neighbour's committed record. This is why producers initialise first.
    states, _ = restore(
        settings.kafka_client_config(),
        state_topic,
        [partition],
        [event_id, neighbour],
        JsonStateCodec(),
        timeout=30,
    )
    assert sorted(states[neighbour].meetings) == []

    # The successor's init_transactions() aborts the open transaction; the restore that
    # follows sees everything committed and nothing of the aborted transaction.
    successor = TransactionalPublisher(settings, txn_id)
    await successor.start()
    states, _ = restore(
        settings.kafka_client_config(),
        state_topic,
        [partition],
        [event_id, neighbour],
        JsonStateCodec(),
        timeout=30,
    )

    assert sorted(states[event_id].meetings) == [1]
    assert sorted(states[neighbour].meetings) == [9]


async def test_a_restore_read_beside_the_fencing_ends_at_what_the_fencing_released(
    admin, kafka_bootstrap, topics
):
    # The restore of a restart starts while its producers fence (issue 30 item 3): the end
    # offsets it stops at must be the ones after the fencing, or a neighbour's commit behind
    # the crashed predecessor's open transaction is missed as above.
    settings = _settings(kafka_bootstrap, **topics)
    ensure_topics(admin, settings)
    state_topic = topics["state_topic"]
    txn_id = f"overlap-{state_topic}"
    event_id, neighbour = 3, 6  # both in partition 0 of 3
    partition = state_partition(event_id, 3)
    await _crash_mid_transaction(settings, txn_id, event_id, neighbour)

    fencing = Fencing()
    restoring = asyncio.ensure_future(
        asyncio.to_thread(
            restore,
            settings.kafka_client_config(),
            state_topic,
            [partition],
            [event_id, neighbour],
            JsonStateCodec(),
            fencing=fencing,
            timeout=30,
        )
    )
    await asyncio.sleep(1.0)  # the restore reads (up to the open transaction) meanwhile
    assert not restoring.done()
    successor = TransactionalPublisher(settings, txn_id)
    await successor.start()
    fencing.done()
    states, _ = await asyncio.wait_for(restoring, 30)

    assert sorted(states[event_id].meetings) == []  # the open transaction was aborted
    assert sorted(states[neighbour].meetings) == [9]


async def test_a_restore_whose_fencing_failed_stops_at_once(admin, kafka_bootstrap, topics):
    settings = _settings(kafka_bootstrap, **topics)
    ensure_topics(admin, settings)
    fencing = Fencing()
    restoring = asyncio.ensure_future(
        asyncio.to_thread(
            restore,
            settings.kafka_client_config(),
            topics["state_topic"],
            [0],
            [3],
            JsonStateCodec(),
            fencing=fencing,
            timeout=30,
        )
    )
    await asyncio.sleep(0.5)
    fencing.abandon()
    with pytest.raises(RestoreAbandoned):
        await asyncio.wait_for(restoring, 5)
