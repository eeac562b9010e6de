"""CloudEvents headers (Kafka binding, binary mode) and tombstones after DELETED (issue 34),
as ``Batch`` writes them."""

from __future__ import annotations

import dataclasses

from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.core.kinds import WindowKind
from connector.core.model import Meeting, Participant
from connector.kafka.layout import Record
from connector.serde import RegistryFraming, Serdes, SingleObjectFraming, subjects
from connector.source.windows import Window
from connector.state.store import EventState
from connector.sync.batch import Batch, Destination

EVENT = 12
NOW_MS = 1_800_000_000_250
SERDES = Serdes(SingleObjectFraming())
TO = Destination(EVENT, 0, "changes", "state", "dlq", "ce-test", 6)
WINDOW = Window(WindowKind.MODIFIED, 0, 10)


def meeting(meeting_id: int, status: str = "pending") -> Meeting:
    return Meeting(
        event_id=EVENT,
        meeting_id=meeting_id,
        status=status,
        start_at=1_900_000_000_000,
        end_at=1_900_001_800_000,
        location="Hall A",
        created_at=1_799_999_000_000,
        modified_at=1_799_999_990_000,
        participants=(Participant(1, "requester", "accepted"),),
    )


def _life(to: Destination, serdes: Serdes = SERDES) -> list[Record]:
    """A meeting created, confirmed and deleted, in three transactions."""
    state = EventState(EVENT)
    records: list[Record] = []
    for step in ("create", "confirm", "delete"):
        batch = Batch.start(to, state, serdes, lambda: NOW_MS / 1000)
        if step == "create":
            batch.stage(meeting(7), WINDOW, kind="modified")
        elif step == "confirm":
            batch.stage(meeting(7, "confirmed"), WINDOW, kind="modified")
        else:
            tracked = batch.staging.get(7)
            assert tracked is not None
            batch.stage_delete(tracked, WINDOW, NOW_MS + 5)
        records += [r for r in batch.records if r.topic == "changes"]
        state.apply(batch.staging)
    return records


def test_every_change_event_carries_cloudevents_headers() -> None:
    created, confirmed, deleted = _life(TO)
    assert dict(confirmed.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": f"{EVENT}-7-{NOW_MS + 1}".encode(),
        "ce_source": b"/meetings-cdc/ce-test/events/12",
        "ce_type": b"com.expoplatform.meeting.confirmed",
        "ce_time": b"2027-01-15T07:59:50Z",
        "ce_subject": b"meetings/7",
        "content-type": b"application/avro; encoding=single-object",
    }
    assert [name for name, _ in created.headers] == [name for name, _ in confirmed.headers]
    assert dict(created.headers)["ce_type"] == b"com.expoplatform.meeting.created"
    assert dict(deleted.headers)["ce_type"] == b"com.expoplatform.meeting.deleted"
    assert dict(deleted.headers)["ce_time"] == b"2027-01-15T08:00:00.255Z"
    ids = [dict(r.headers)["ce_id"] for r in (created, confirmed, deleted)]
    assert len(set(ids)) == 3
    assert ids == [dict(r.headers)["ce_id"] for r in _life(TO)]  # deterministic


def test_the_registry_framing_says_application_avro() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://cloudevents"})
    registry = Serdes(
        RegistryFraming(
            client,
            "mock://cloudevents",
            subjects("changes", "state", "dlq", "notifications", "heartbeats"),
        )
    )
    created, _, _ = _life(TO, registry)
    assert dict(created.headers)["content-type"] == b"application/avro"


def test_headers_can_be_turned_off() -> None:
    records = _life(dataclasses.replace(TO, cloudevents_headers=False))
    assert [r.headers for r in records] == [(), (), ()]


def test_no_tombstone_by_default() -> None:
    assert [r.value is None for r in _life(TO)] == [False, False, False]


def test_a_tombstone_follows_each_deleted_with_its_key_and_partition() -> None:
    records = _life(dataclasses.replace(TO, tombstones_on_delete=True))
    assert [r.value is None for r in records] == [False, False, False, True]
    deleted, tombstone = records[-2:]
    assert SERDES.decode_change(deleted.value or b"")["change_type"] == "DELETED"
    assert (tombstone.key, tombstone.partition) == (deleted.key, deleted.partition)
    assert tombstone.partition is not None
    assert tombstone.headers == ()
