"""Where records go: a record to write, the partition of a change event and the state
partition of an event, an event's transactional id. Pure values and rules (no client),
shared by the publisher, the restore and the replicas."""

from __future__ import annotations

from dataclasses import dataclass

#: Kafka record headers, in order: (name, value) pairs.
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One record to write inside a transaction. ``value=None`` is a tombstone;
    ``partition=None`` leaves the partition to the producer."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers = ()


_MURMUR_SEED = 0x9747B28C
_MURMUR_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` as an unsigned 32-bit int: the bits of Java's
    ``org.apache.kafka.common.utils.Utils.murmur2`` (which returns them as a signed int)."""
    length = len(data)
    h = (_MURMUR_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _MURMUR_M) & _MASK
        k ^= k >> 24
        k = (k * _MURMUR_M) & _MASK
        h = ((h * _MURMUR_M) & _MASK) ^ k
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _MURMUR_M) & _MASK
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK
    h ^= h >> 15
    return h


def change_partition(canonical_key: bytes, partitions: int) -> int:
    """The changes-topic partition of a meeting: Java's default partitioner for keyed
    records, ``toPositive(murmur2(key)) % partitions``, over the *canonical* key (the Avro
    binary body of ``MeetingKey``, without framing).

    The framed key carries the schema fingerprint or the registry's schema id; hashing it
    would move every meeting when the registry is turned on or off or ``MeetingKey``
    evolves. Hashing the body alone ties a meeting's partition to its logical key only.
    Adding partitions to the changes topic moves meetings, as with any Kafka producer.
    """
    return (murmur2(canonical_key) & 0x7FFFFFFF) % partitions


def state_partition(event_id: int, partitions: int) -> int:
    """The state-topic partition that holds every record of ``event_id``.

    All of an event's state lives in one partition, so the replicas' consumer group hands
    whole events to replicas (``connector.replicas``). Never change the partition
    count of an existing state topic: this mapping would move events.
    """
    return event_id % partitions


def transactional_id(connector_name: str, event_id: int) -> str:
    """The transactional id of one event of one connector."""
    return f"{connector_name}.{event_id}"
