"""Serde: round-trips, the single-object framing byte for byte, independent decoders."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from pathlib import Path

import avro.io
import avro.schema
import fastavro
import fastavro.schema
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config.settings import KafkaSettings
from connector.core.changes import Change, ChangeEvent, ChangeType, SourceInfo, classify
from connector.core.kinds import WindowKind
from connector.core.model import Meeting, Participant, freeze_extra
from connector.core.notifications import Heartbeat, Notification, NotificationStatus
from connector.core.progress import EventProgress
from connector.errors import SerializationError
from connector.serde import (
    RegistryFraming,
    Serdes,
    SingleObjectFraming,
    WriterSchemas,
    fastpath,
    make_serdes,
    rabin_fingerprint,
    records,
    subjects,
)
from connector.serde import bodies as serde_bodies
from connector.serde.catalog import TOP_LEVEL, current
from connector.serde.records import jsonable
from connector.source.rows import DeadLetter
from connector.source.windows import Window

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
LONG = st.integers(-(2**63), 2**63 - 1)
MS = st.integers(-(10**12), 10**14)  # epoch ms within datetime's range
SOURCE = SourceInfo("c", "0.1.0", "reconcile", 1, 2)

LONG_TEXT = st.text(min_size=64, max_size=90)  # over 63 bytes: a multi-byte length


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(max_size=max_size) | LONG_TEXT


scalars = st.one_of(st.none(), st.booleans(), LONG, st.floats(allow_nan=False), texts(20))


def meetings_of(
    scalar: st.SearchStrategy[object], long: st.SearchStrategy[int] = LONG
) -> st.SearchStrategy[Meeting]:
    extras = st.dictionaries(texts(10), scalar, max_size=5).map(freeze_extra)
    participants = st.lists(
        st.builds(Participant, account_id=long, role=texts(10), status=texts(10), extra=extras),
        max_size=5,
        unique_by=lambda p: p.account_id,
    ).map(tuple)
    return st.builds(
        Meeting,
        event_id=long,
        meeting_id=long,
        status=texts(12),
        start_at=MS,
        end_at=MS,
        location=st.none() | texts(30),
        created_at=MS,
        modified_at=MS,
        participants=participants,
        extra=extras,
    )


meetings = meetings_of(scalars)


@pytest.fixture(scope="module")
def serdes() -> Serdes:
    return make_serdes(KafkaSettings(), "changes", "state", "dlq", "notes", "beats")


def sample_meeting(**kw: object) -> Meeting:
    fields: dict[str, object] = {
        "event_id": 10,
        "meeting_id": 812,
        "status": "pending",
        "start_at": 1_767_261_600_000,
        "end_at": 1_767_263_400_000,
        "location": "Salle Été 2",
        "created_at": 1_767_000_000_000,
        "modified_at": 1_767_100_000_000,
        "participants": (
            Participant(5, "requester", "accepted", freeze_extra({"email": "a@x.io"})),
            Participant(3, "invitee", "pending", freeze_extra({"vip": True, "n": 1})),
        ),
        "extra": freeze_extra({"title": "Intro ☕", "duration": 30, "score": 0.5, "notes": None}),
    }
    fields.update(kw)
    return Meeting(**fields)


def sample_event(change: Change | None = None) -> ChangeEvent:
    before = sample_meeting()
    after = sample_meeting(status="confirmed", modified_at=1_767_100_005_000)
    change = change or classify(before, after)
    assert change is not None
    return ChangeEvent(
        event_id=10,
        meeting_id=812,
        change=change,
        modified_at=1_767_100_005_000,
        detected_at=1_767_100_007_123,
        version=2,
        source=SourceInfo("mc-test", "0.1.0", "modified", 1_767_100_000_000, 1_767_100_006_000),
    )


# --- the single-object framing ---------------------------------------------------------------


def test_rabin_fingerprint_matches_the_spec_test_vectors() -> None:
    # Fingerprints of primitive schemas' canonical forms, from Avro's own test suite
    # (share/test/data/schema-tests.txt), as signed 64-bit longs.
    vectors = {'"int"': 8247732601305521295, '"null"': 7195948357588979594}
    for canonical, expected in vectors.items():
        assert int.from_bytes(rabin_fingerprint(canonical.encode()), "little", signed=True) == (
            expected
        )


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_fingerprint_agrees_with_fastavro_and_avro(name: str) -> None:
    schema = current(name)
    loaded = fastavro.schema.load_schema(str(SCHEMAS / f"{name}.avsc"))
    canonical = fastavro.schema.to_parsing_canonical_form(loaded)

    assert schema.canonical == canonical
    assert schema.fingerprint.hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
    # avro's Schema.canonical_form keeps {"type": "long"} for logical types (unlike the spec
    # and Java), so compare its CRC-64-AVRO over the spec's canonical form.
    assert schema.fingerprint == avro.schema._crc_64_fingerprint(canonical.encode())


def test_single_object_header(serdes: Serdes) -> None:
    data = serdes.encode_change(sample_event())
    expected = current("MeetingChange").fingerprint
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == expected
    assert len(expected) == 8


def test_decodes_with_the_avsc_files_alone(serdes: Serdes) -> None:
    """What a consumer outside the repo does: load_schema + schemaless_reader."""
    data = serdes.encode_change(sample_event())
    schema = fastavro.schema.load_schema(str(SCHEMAS / "MeetingChange.avsc"))
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    assert data[2:10].hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")

    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)

    assert record["change_type"] == "CONFIRMED"
    assert record["changed_fields"] == ["status"]
    assert record["before"]["status"] == "pending"
    assert record["after"]["location"] == "Salle Été 2"
    assert record["after"]["extra"]["title"] == "Intro ☕"
    assert record["after"]["start_at"].isoformat() == "2026-01-01T10:00:00+00:00"
    assert [p["account_id"] for p in record["after"]["participants"]] == [3, 5]

    key = serdes.encode_change_key(10, 812)
    key_schema = fastavro.schema.load_schema(str(SCHEMAS / "MeetingKey.avsc"))
    assert fastavro.schemaless_reader(io.BytesIO(key[10:]), key_schema) == {
        "event_id": 10,
        "meeting_id": 812,
    }


def test_avro_package_decodes_our_bytes(serdes: Serdes) -> None:
    """An independent implementation (Apache avro) reads the body with the inlined schema."""
    data = serdes.encode_change(sample_event())
    text = json.dumps(fastavro.schema.load_schema(str(SCHEMAS / "MeetingChange.avsc")))
    reader = avro.io.DatumReader(avro.schema.parse(text))

    record = reader.read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))

    assert record["after"]["status"] == "confirmed"
    assert record["version"] == 2
    assert record["source"]["connector"] == "mc-test"


def test_registry_text_is_fully_inlined_and_parses_alone() -> None:
    for name in TOP_LEVEL:
        schema = current(name)
        standalone = fastavro.parse_schema(json.loads(schema.text))  # no named_schemas given
        assert fastavro.schema.to_parsing_canonical_form(standalone) == schema.canonical
        avro.schema.parse(schema.text)  # no redefinition of a named type


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(meetings, st.integers(1, 2**40))
def test_meeting_state_round_trip(serdes: Serdes, meeting: Meeting, version: int) -> None:
    decoded, decoded_version = serdes.decode_meeting_state(
        serdes.encode_meeting_state(meeting, version)
    )
    assert decoded == meeting
    assert decoded.content_hash == meeting.content_hash
    assert decoded_version == version
    for value_before, value_after in zip(meeting.extra, decoded.extra, strict=True):
        assert type(value_before[1]) is type(value_after[1])  # bool stays bool, not 1


@settings(max_examples=200)
@given(meetings, meetings, st.integers(1, 2**40))
def test_state_holds_exactly_the_meeting_it_was_encoded_from(
    serdes: Serdes, stored: Meeting, read: Meeting, version: int
) -> None:
    """Reconciliation skips decoding a state whose body is the read meeting's bytes: it
    must never call a different meeting the same (a change would be lost)."""
    state = serdes.encode_meeting_state(stored, version)
    assert serdes.state_holds(state, stored)
    assert serdes.state_holds(state, serdes.decode_meeting_state(state)[0])
    if serdes.state_holds(state, read):
        assert read == stored
    changed = dataclasses.replace(stored, status=stored.status + "x")
    assert not serdes.state_holds(state, changed)
    moved = dataclasses.replace(stored, modified_at=stored.modified_at + 1)
    assert not serdes.state_holds(state, moved)


def test_state_of_another_schema_is_decoded_not_trusted(serdes: Serdes) -> None:
    meeting = sample_meeting()
    current_state = serdes.encode_meeting_state(meeting, 3)
    header = current("StateValue").single_object_header
    other = b"\xc3\x01" + bytes(8) + current_state[len(header) :]  # an unknown fingerprint
    assert not serdes.state_holds(other, meeting)


@given(meetings, meetings, st.sampled_from(ChangeType))
def test_change_round_trip(
    serdes: Serdes, before: Meeting, after: Meeting, kind: ChangeType
) -> None:
    change = Change(kind, ("location", "status"), before, after)
    event = ChangeEvent(1, 2, change, 3, 4, 5, SourceInfo("c", "v", "created", 6, 7))

    decoded = serdes.decode_change(serdes.encode_change(event))

    assert decoded["change_type"] == kind.value
    assert decoded["changed_fields"] == ["location", "status"]
    assert decoded["before"]["meeting_id"] == before.meeting_id
    assert decoded["after"]["participants"] == jsonable(
        [
            {"account_id": p.account_id, "role": p.role, "status": p.status, "extra": dict(p.extra)}
            for p in after.participants
        ]
    )
    assert decoded["modified_at"] == "1970-01-01T00:00:00.003Z"
    assert decoded["source"]["window_end"] == "1970-01-01T00:00:00.007Z"
    json.dumps(decoded, allow_nan=False)


def test_decode_change_is_json_ready(serdes: Serdes) -> None:
    deleted = Change(ChangeType.DELETED, (), sample_meeting(), None)
    decoded = serdes.decode_change(serdes.encode_change(sample_event(deleted)))

    assert decoded["after"] is None
    assert decoded["before"]["start_at"] == "2026-01-01T10:00:00Z"
    assert decoded["detected_at"] == "2025-12-30T13:06:47.123Z"
    assert decoded["before"]["extra"] == {
        "duration": 30,
        "notes": None,
        "score": 0.5,
        "title": "Intro ☕",
    }


@given(LONG, st.none() | LONG)
def test_state_key_round_trip(serdes: Serdes, event_id: int, meeting_id: int | None) -> None:
    assert serdes.decode_state_key(serdes.encode_state_key(event_id, meeting_id)) == (
        event_id,
        meeting_id,
    )


@given(
    st.builds(
        EventProgress,
        event_id=LONG,
        phase=st.sampled_from(["snapshot", "streaming"]),
        snapshot_upper=st.none() | LONG,
        created_through=LONG,
        modified_through=LONG,
        last_reconcile_at=st.none() | LONG,
        updated_at=MS,
    )
)
def test_progress_round_trip(serdes: Serdes, progress: EventProgress) -> None:
    assert serdes.decode_progress(serdes.encode_progress(progress)) == progress


def test_meeting_state_and_progress_are_not_confused(serdes: Serdes) -> None:
    progress = EventProgress(1, "streaming", None, 5, 6, None, 7)
    with pytest.raises(SerializationError, match="not a meeting"):
        serdes.decode_meeting_state(serdes.encode_progress(progress))
    with pytest.raises(SerializationError, match="not a progress"):
        serdes.decode_progress(serdes.encode_meeting_state(sample_meeting(), 1))


def test_dead_letter_round_trip(serdes: Serdes) -> None:
    letter = DeadLetter(
        event_id=10,
        raw='{"meeting_id": "x"}',
        reason="meeting_id: not an integer",
        window=Window(WindowKind.MODIFIED, 5, 9),
    )
    data = serdes.encode_dead_letter(letter, detected_at=1_767_100_007_123, connector="mc")
    assert serdes.decode_dead_letter(data) == {
        "event_id": 10,
        "raw": '{"meeting_id": "x"}',
        "reason": "meeting_id: not an integer",
        "window_kind": "modified",
        "window_start": 5,
        "window_end": 9,
        "detected_at": "2025-12-30T13:06:47.123Z",
        "connector": "mc",
    }


def test_unencodable_value_is_a_serialization_error(serdes: Serdes) -> None:
    with pytest.raises(SerializationError, match="cannot encode"):
        serdes.encode_meeting_state(sample_meeting(meeting_id=2**63), 1)


def test_extra_int_beyond_long_is_kept_as_a_double(serdes: Serdes) -> None:
    decoded, _ = serdes.decode_meeting_state(
        serdes.encode_meeting_state(sample_meeting(extra=(("n", 2**64),)), 1)
    )
    assert decoded.extra == (("n", float(2**64)),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an Avro record"),
        (b"\x01\x02", "not an Avro record"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "unknown schema"),
        (b"\x00\x00\x00\x00\x07\x02", "no schema registry is configured"),
    ],
)
def test_undecodable_bytes_are_serialization_errors(
    serdes: Serdes, data: bytes, message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        serdes.decode_change(data)


def test_truncated_body_is_a_serialization_error(serdes: Serdes) -> None:
    data = serdes.encode_meeting_state(sample_meeting(), 1)
    with pytest.raises(SerializationError, match="cannot decode"):
        serdes.decode_meeting_state(data[:20])


def test_make_serdes_without_registry_uses_single_object_encoding() -> None:
    serdes = make_serdes(KafkaSettings(), "a", "b", "c", "d", "e")
    assert isinstance(serdes.framing, SingleObjectFraming)


# --- notifications and heartbeats -------------------------------------------------------------

NOTE = Notification(
    "pause", NotificationStatus.COMPLETED, 10, "s-1", 1_767_261_600_000, "c", "r", "ok", {"n": 2}
)
BEAT = Heartbeat(10, "c", "r", 1_767_261_600_000, "streaming", 5, 6, None, True, "s-1")


def _operations_in_either_framing() -> list[tuple[Serdes, Serdes, bytes | None]]:
    """(writer, reader, Notification header expected) without and with a registry."""
    client = SchemaRegistryClient.new_client({"url": "mock://operations"})
    named = subjects("c", "s", "d", "n", "h")
    registry = Serdes(RegistryFraming(client, "mock://operations", named), WriterSchemas(client))
    schema_id = client.get_latest_version("n-value").schema_id
    return [
        (Serdes(SingleObjectFraming()), Serdes(SingleObjectFraming()), None),
        (
            registry,
            Serdes(SingleObjectFraming(), WriterSchemas(client)),
            b"\x00" + schema_id.to_bytes(4, "big"),
        ),
    ]


def test_notifications_and_heartbeats_round_trip_in_either_framing() -> None:
    for writer, reader, header in _operations_in_either_framing():
        note = writer.encode_notification(NOTE)
        beat = writer.encode_heartbeat(BEAT)
        if header is None:
            assert note[:10] == current("Notification").single_object_header
        else:
            assert note[:5] == header
        assert reader.decode_as("Notification", note) == {
            "kind": "pause",
            "status": "COMPLETED",
            "event_id": 10,
            "signal_id": "s-1",
            "reason": "ok",
            "counts": {"n": 2},
            "at": "2026-01-01T10:00:00Z",
            "connector": "c",
            "owner": "r",
        }
        decoded = reader.decode_as("Heartbeat", beat)
        assert (decoded["event_id"], decoded["paused_by"], decoded["last_committed_at"]) == (
            10,
            "s-1",
            None,
        )


def test_decode_as_refuses_a_record_of_another_schema(serdes: Serdes) -> None:
    with pytest.raises(SerializationError, match="not a Notification record"):
        serdes.decode_as("Notification", serdes.encode_heartbeat(BEAT))
    with pytest.raises(SerializationError, match="not a Heartbeat record"):
        serdes.decode_as("Heartbeat", serdes.encode_change_key(1, 2))


# --- the fast path writes exactly fastavro's bytes ---------------------------------------------


def _fastavro_value(name: str, header: bytes, datum: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, current(name).plain, datum)
    return header + buffer.getvalue()


@settings(max_examples=200)
@given(
    st.none() | meetings,
    st.none() | meetings,
    st.sampled_from(ChangeType),
    st.lists(st.text(max_size=12), max_size=4).map(tuple),
    LONG,
    LONG,
    LONG,
    st.text(max_size=10),
)
def test_fast_encoder_matches_fastavro(
    serdes: Serdes,
    before: Meeting | None,
    after: Meeting | None,
    kind: ChangeType,
    fields: tuple[str, ...],
    modified_at: int,
    detected_at: int,
    version: int,
    window_kind: str,
) -> None:
    assert serdes._fast is not None
    event = ChangeEvent(
        -1,
        2**63 - 1,
        Change(kind, fields, before, after),
        modified_at,
        detected_at,
        version,
        SourceInfo("ç", "0.1.0", window_kind, -(2**63), version),
    )
    header = current("MeetingChange").single_object_header
    assert serdes.encode_change(event) == _fastavro_value(
        "MeetingChange", header, records.change_datum(event)
    )
    if after is not None:
        state_header = current("StateValue").single_object_header
        assert serdes.encode_meeting_state(after, version) == _fastavro_value(
            "StateValue", state_header, records.meeting_state_datum(after, version)
        )


@given(meetings, st.integers(0, 2**62))
def test_change_reusing_state_records_bodies_is_fastavros(
    serdes: Serdes, meeting: Meeting, version: int
) -> None:
    """An event encoded from the state records of its ``before`` and ``after`` (each
    meeting encoded once, any version's varint length) is byte for byte fastavro's."""
    state = serdes.encode_meeting_state(meeting, version)
    decoded, _ = serdes.decode_meeting_state(state)
    header = current("MeetingChange").single_object_header
    for change, states in (
        (Change(ChangeType.DELETED, (), decoded, None), (state, None)),
        (Change(ChangeType.SNAPSHOT, (), None, meeting), (None, state)),
        (Change(ChangeType.UPDATED, ("status",), decoded, meeting), (state, state)),
    ):
        event = ChangeEvent(1, 2, change, 3, 4, 5, SOURCE)
        expected = _fastavro_value("MeetingChange", header, records.change_datum(event))
        assert serdes.encode_change(event, states) == expected
        assert serdes.encode_change(event) == expected


def test_fast_encoder_turns_itself_off_when_it_disagrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serde_bodies.FastEncoder, "change", lambda self, event: b"wrong")
    serdes = Serdes(SingleObjectFraming())
    assert serdes._fast is None
    decoded = serdes.decode_change(serdes.encode_change(sample_event()))
    assert decoded["change_type"] == "CONFIRMED"


def test_fast_encoder_refuses_out_of_range_longs(serdes: Serdes) -> None:
    event = dataclasses.replace(sample_event(), version=2**63)
    with pytest.raises(SerializationError, match="long range"):
        serdes.encode_change(event)


# --- the hand-encoded Meeting body -------------------------------------------------------------


class Label(str):
    """A str subclass: left to fastavro."""


BEYOND_LONG = st.integers(2**63, 2**1100) | st.integers(-(2**1100), -(2**63) - 1)
edge_scalars = st.one_of(
    scalars,
    BEYOND_LONG,  # a double for fastavro, or its OverflowError beyond the double range
    st.floats(),  # nan, inf, -0.0, subnormals
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, 1, True, 0, False, 2**63 - 1, -(2**63)]),
    st.text(max_size=5).map(Label),
)
edge_meetings = meetings_of(edge_scalars) | meetings_of(scalars, LONG | BEYOND_LONG)
MEETING_SCHEMA = serde_bodies.MeetingBodies()._schema
ENCODER = fastpath.MeetingEncoder(string_capacity=64, map_capacity=64)  # small: clears often


def _hand_encodable(m: Meeting) -> bool:
    """No value the hand encoder leaves to fastavro (beyond-long ints, str subclasses)."""

    def plain(value: object) -> bool:
        if type(value) is int:
            return -(2**63) <= value < 2**63
        return type(value) in (str, float, bool, type(None))

    longs = (m.meeting_id, m.event_id, m.start_at, m.end_at, m.created_at, m.modified_at)
    return (
        all(map(plain, longs))
        and all(plain(p.account_id) for p in m.participants)
        and all(plain(v) for p in m.participants for _, v in p.extra)
        and all(plain(v) for _, v in m.extra)
    )


def _as_decoded(m: Meeting) -> Meeting:
    """``m`` as it reads back: ints beyond the long range are written as doubles."""

    def value(v: object) -> object:
        return float(v) if type(v) is int and not -(2**63) <= v < 2**63 else v

    def extra(e: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
        return tuple((k, value(v)) for k, v in e)

    people = tuple(dataclasses.replace(p, extra=extra(p.extra)) for p in m.participants)
    return dataclasses.replace(m, participants=people, extra=extra(m.extra))


@settings(max_examples=400)
@given(edge_meetings)
def test_hand_encoded_meeting_body_is_fastavros(meeting: Meeting) -> None:
    """Byte for byte what fastavro writes for the datum, or the same SerializationError;
    the hand encoder itself writes every meeting it does not leave to fastavro."""
    bodies = serde_bodies.MeetingBodies()
    assert bodies.hand_encoding
    hand = ENCODER.encode(meeting)
    try:
        expected = fastpath.fastavro_bytes(MEETING_SCHEMA, records.meeting_datum(meeting))
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        assert hand is None
        with pytest.raises(SerializationError, match=re.escape(repr(exc))):
            bodies.body(meeting)
        return
    if _hand_encodable(meeting):
        assert hand == expected
    else:
        assert hand is None  # left to fastavro
    body = bodies.body(meeting)
    assert body == expected

    datum = fastavro.schemaless_reader(io.BytesIO(body), MEETING_SCHEMA)
    decoded = records.meeting_from_datum(datum)
    assert ENCODER.encode(decoded) == body  # what it decodes to encodes to the same bytes
    values = [v for p in meeting.participants for _, v in p.extra] + [v for _, v in meeting.extra]
    if not any(isinstance(v, float) and math.isnan(v) for v in values):
        assert decoded == _as_decoded(meeting)
        for before, after in zip(
            values,
            [v for p in decoded.participants for _, v in p.extra] + [v for _, v in decoded.extra],
            strict=True,
        ):
            assert isinstance(after, bool) == isinstance(before, bool)  # bool stays bool


def test_hand_encoder_covers_the_start_up_check_meetings() -> None:
    for meeting in serde_bodies.self_check_meetings():
        assert ENCODER.encode(meeting) == fastpath.fastavro_bytes(
            MEETING_SCHEMA, records.meeting_datum(meeting)
        )


def test_hand_encoder_leaves_odd_values_to_fastavro() -> None:
    odd = (
        sample_meeting(location=Label("Hall")),
        sample_meeting(extra=(("n", 2**64),)),
        sample_meeting(extra=((Label("k"), 1),)),
        sample_meeting(start_at=True),
        sample_meeting(extra=(("a", 1), ("b", 2), ("a", 3))),  # dict(extra): a=3, b=2
    )
    for meeting in odd:
        body = serde_bodies.MeetingBodies().body(meeting)
        assert body == fastpath.fastavro_bytes(MEETING_SCHEMA, records.meeting_datum(meeting))
    assert ENCODER.encode(odd[-1]) is not None  # duplicate keys: dict order, last value


def test_hand_encoder_turns_itself_off_when_it_disagrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath.MeetingEncoder, "encode", lambda self, m: b"wrong")
    bodies = serde_bodies.MeetingBodies()
    assert not bodies.hand_encoding
    meeting = sample_meeting()
    assert bodies.body(meeting) == fastpath.fastavro_bytes(
        MEETING_SCHEMA, records.meeting_datum(meeting)
    )
    serdes = Serdes(SingleObjectFraming())
    assert serdes._fast is not None  # the rest of the fast path stays on
    decoded, version = serdes.decode_meeting_state(serdes.encode_meeting_state(meeting, 3))
    assert (decoded, version) == (meeting, 3)


def test_cached_extra_maps_are_never_another_values() -> None:
    """Map encodings are cached by value: an equal extra whose values have other types
    (True == 1 == 1.0, 0.0 == -0.0) is encoded afresh, never given another's bytes."""
    encoder = fastpath.MeetingEncoder(map_capacity=8)
    shared = (("email", "a@x.io"), ("first_name", "Ada"))
    values: list[object] = [1, True, 1.0, 0.0, -0.0, "1", None, 2**63, 2**62]
    for i in range(200):
        value = values[i % len(values)]
        people = (
            Participant(7, "invitee", "accepted", shared),
            Participant(8, "requester", "pending", (("email", f"b{i}@x.io"), ("n", value))),
        )
        meeting = sample_meeting(participants=people, extra=(("duration", value),))
        expected = fastpath.fastavro_bytes(MEETING_SCHEMA, records.meeting_datum(meeting))
        hand = encoder.encode(meeting)
        assert hand in (expected, None)
        assert serde_bodies.MeetingBodies().body(meeting) == expected
        if type(value) is not int or -(2**63) <= value < 2**63:  # type: ignore[operator]
            assert hand == expected
        # cached longs (event id, slot times, account ids) are plain ints only
        odd = sample_meeting(start_at=value, participants=people[:1])
        try:
            expected = fastpath.fastavro_bytes(MEETING_SCHEMA, records.meeting_datum(odd))
        except (ValueError, TypeError, OverflowError):
            assert encoder.encode(odd) is None
        else:
            assert encoder.encode(odd) in (expected, None)


def test_equal_extras_share_one_cached_encoding_whoever_built_them() -> None:
    """The map cache does not depend on the row parser sharing tuples: an equal extra
    built apart (another tuple) finds the encoding of the first."""
    encoder = fastpath.MeetingEncoder()
    first = (("email", "a@x.io"), ("seat", 4), ("team", None))
    again = tuple((key, value) for key, value in first)  # equal, not the same object
    assert again == first
    assert again is not first
    meetings = [
        sample_meeting(participants=(Participant(7, "invitee", "accepted", extra),))
        for extra in (first, again)
    ]
    bodies = [encoder.encode(meeting) for meeting in meetings]
    assert (
        bodies[0]
        == bodies[1]
        == fastpath.fastavro_bytes(MEETING_SCHEMA, records.meeting_datum(meetings[1]))
    )
    assert encoder._maps[again][0] is first  # the second found the first's entry


def test_events_of_one_window_share_its_source_encoding(serdes: Serdes) -> None:
    """The encoder keeps the last source's encoding by value: the same or an equal source
    reuses it, a different one is encoded afresh."""
    header = current("MeetingChange").single_object_header
    shared = SourceInfo("mc", "0.1.0", "snapshot", 1_000, 2_000)
    sources = [shared, shared, SourceInfo("mc", "0.1.0", "snapshot", 1_000, 2_000)]
    sources += [SourceInfo("mc", "0.1.0", "snapshot", 2_001, 3_000), shared]
    for i, source in enumerate(sources):
        event = dataclasses.replace(sample_event(), meeting_id=i + 1, source=source)
        assert serdes.encode_change(event) == _fastavro_value(
            "MeetingChange", header, records.change_datum(event)
        )


@given(LONG | st.integers(-(2**22), 2**22))
def test_long_bytes_is_fastavros(value: int) -> None:
    assert fastpath.long_bytes(value) == fastpath.fastavro_bytes("long", value)  # type: ignore[arg-type]
    assert fastpath._strict_long(value) == fastpath.long_bytes(value)
