"""Where change events go (issue 34): Kafka's murmur2 over the canonical key only."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given
from hypothesis import strategies as st

from connector.core.kinds import WindowKind
from connector.core.model import Meeting, Participant
from connector.kafka.layout import change_partition, murmur2
from connector.serde import RegistryFraming, Serdes, SingleObjectFraming, WriterSchemas, subjects
from connector.source.windows import Window
from connector.state.store import EventState
from connector.sync.batch import Batch, Destination

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed, as Java returns them);
# tests/integration/test_consumer_contract.py checks the connector's records against the
# real kafka-clients jar.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_is_kafkas() -> None:
    for data, expected in KAFKA_VECTORS.items():
        assert murmur2(data) == expected & 0xFFFFFFFF, data


@given(st.binary(max_size=64), st.integers(1, 200))
def test_a_partition_is_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= change_partition(key, partitions) < partitions


def _records(serdes: Serdes, meeting_ids: range) -> list[tuple[bytes | None, int | None]]:
    to = Destination(9, 0, "changes", "state", "dlq", "layout-test", 12)
    batch = Batch.start(to, EventState(9), serdes, lambda: 1_800_000_000.0)
    window = Window(WindowKind.MODIFIED, 0, 10)
    for meeting_id in meeting_ids:
        people = (Participant(1, "requester", "accepted"),)
        meeting = Meeting(9, meeting_id, "pending", 0, 60_000, None, 0, 0, people)
        batch.stage(meeting, window, kind="modified")
    return [(r.key, r.partition) for r in batch.records if r.topic == "changes"]


def test_partitions_are_the_same_with_and_without_a_registry() -> None:
    """Fails with the producer's partitioner over the framed key: the fingerprint or the
    schema id is part of those bytes."""
    plain = Serdes(SingleObjectFraming())
    client = SchemaRegistryClient.new_client({"url": "mock://layout-partitions"})
    registry = Serdes(
        RegistryFraming(
            client,
            "mock://layout-partitions",
            subjects("changes", "state", "dlq", "notifications", "heartbeats"),
        ),
        WriterSchemas(client),
    )
    meetings = range(1, 200)
    without, with_registry = _records(plain, meetings), _records(registry, meetings)
    assert [key for key, _ in without] != [key for key, _ in with_registry]  # framed apart
    assert [p for _, p in without] == [p for _, p in with_registry]
    assert all(p is not None for _, p in without)
    assert len({p for _, p in without}) == 12  # spread over every partition
    for (key, partition), meeting_id in zip(without, meetings, strict=True):
        assert partition == change_partition(plain.change_key_body(9, meeting_id), 12)
        assert key == plain.encode_change_key(9, meeting_id)
