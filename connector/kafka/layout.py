"""Where records go: a record to write, the state partition of an event, an event's
transactional id. Pure values and rules (no client), shared by the publisher, the restore
and the replicas."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    """One record to write inside a transaction. ``value=None`` is a tombstone."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


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
