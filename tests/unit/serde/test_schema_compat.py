"""The current schemas can read everything every release wrote, and the change-event
schemas are readable by every release (a real compatibility check).

Change events (``MeetingKey``, ``MeetingChange``) are FULL_TRANSITIVE: the current schema
reads what every release wrote (backward) and every release reads what the current schema
writes (forward: consumers upgrade when they like). State records are BACKWARD_TRANSITIVE
(only the connector reads them). docs/schemas.md. Two independent checks: Apache avro's
ReaderWriterCompatibilityChecker (the rules Java and the Confluent registry implement),
and fastavro schema resolution over real records written with one schema and read with
the other.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse

from connector.core.changes import Change, ChangeEvent, ChangeType, SourceInfo
from connector.core.model import Meeting, Participant
from connector.core.progress import EventProgress
from connector.serde import records
from connector.serde.catalog import TOP_LEVEL, current, released, released_versions

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
#: The schemas of the changes topic: what consumers outside read (FULL_TRANSITIVE).
CHANGE_EVENT_SCHEMAS = ("MeetingKey", "MeetingChange")


def is_compatible(reader: dict[str, Any] | str, writer: dict[str, Any] | str) -> bool:
    as_text = [s if isinstance(s, str) else json.dumps(s) for s in (reader, writer)]
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        parse(as_text[0]), parse(as_text[1])
    )
    return result.compatibility is SchemaCompatibilityType.compatible


def test_there_is_a_released_baseline() -> None:
    assert "0.1.0" in released_versions()
    for name in TOP_LEVEL:
        assert (SCHEMAS / "released" / "0.1.0" / f"{name}.avsc").is_file()


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_current_schema_reads_every_release(name: str) -> None:
    releases = list(released(name))
    assert releases, f"{name} has no released version"
    for version, old in releases:
        assert is_compatible(current(name).text, old.text), f"{name} cannot read {version}"


def _meeting() -> Meeting:
    return Meeting(
        event_id=1,
        meeting_id=2,
        status="confirmed",
        start_at=1_767_261_600_000,
        end_at=1_767_263_400_000,
        location=None,
        created_at=1_767_000_000_000,
        modified_at=1_767_100_000_000,
        participants=(Participant(3, "invitee", "accepted", (("email", "a@x.io"),)),),
        extra=(("duration", 30), ("vip", True)),
    )


SAMPLES: dict[str, list[dict[str, Any]]] = {
    "MeetingKey": [{"event_id": 1, "meeting_id": 2}],
    "MeetingChange": [
        records.change_datum(
            ChangeEvent(
                1,
                2,
                Change(ChangeType.RESCHEDULED, ("start_at",), _meeting(), _meeting()),
                3,
                4,
                5,
                SourceInfo("c", "0.1.0", "modified", 6, 7),
            )
        )
    ],
    "StateKey": [{"event_id": 1, "meeting_id": None}, {"event_id": 1, "meeting_id": 2}],
    "StateValue": [
        records.meeting_state_datum(_meeting(), 4),
        records.progress_datum(EventProgress(1, "streaming", 10, 11, 12, None, 13)),
    ],
    "DeadLetter": [
        {
            "event_id": 1,
            "raw": "{}",
            "reason": "r",
            "window_kind": "created",
            "window_start": 1,
            "window_end": 2,
            "detected_at": 3,
            "connector": "c",
        }
    ],
}


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_records_written_by_every_release_resolve_to_the_current_schema(name: str) -> None:
    for _version, old in released(name):
        for sample in SAMPLES[name]:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, old.plain, sample)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, old.plain, current(name).plain)


@pytest.mark.parametrize("name", CHANGE_EVENT_SCHEMAS)
def test_every_release_reads_the_current_change_events(name: str) -> None:
    """Forward, to every release: a consumer on an old schema reads new records."""
    for version, old in released(name):
        assert is_compatible(old.text, current(name).text), f"{version} cannot read {name}"


@pytest.mark.parametrize("name", CHANGE_EVENT_SCHEMAS)
def test_records_of_the_current_schema_resolve_to_every_release(name: str) -> None:
    for _version, old in released(name):
        for sample in SAMPLES[name]:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, current(name).plain, sample)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, current(name).plain, old.plain)


# --- the checks do catch incompatible changes ---------------------------------------------


def test_a_removed_field_without_default_is_rejected_for_old_readers() -> None:
    """What a backward-only check lets through: the new schema still reads old records
    (the field is ignored), old readers cannot read new ones (the field has no default)."""
    evolved = _inlined("MeetingChange")
    evolved["fields"] = [f for f in evolved["fields"] if f["name"] != "detected_at"]
    assert is_compatible(evolved, current("MeetingChange").text)  # backward: fine
    for _version, old in released("MeetingChange"):
        assert not is_compatible(old.text, evolved)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(evolved), SAMPLES["MeetingChange"][0])
    buffer.seek(0)
    _, old = next(iter(released("MeetingChange")))
    with pytest.raises(fastavro.read.SchemaResolutionError):
        fastavro.schemaless_reader(buffer, fastavro.parse_schema(evolved), old.plain)


def _inlined(name: str) -> dict[str, Any]:
    return json.loads(current(name).text)  # type: ignore[no-any-return]


def test_a_new_field_without_default_is_rejected() -> None:
    evolved = _inlined("MeetingChange")
    evolved["fields"].append({"name": "tenant", "type": "string", "doc": "x"})
    assert not is_compatible(evolved, current("MeetingChange").text)


def test_a_new_field_with_default_is_accepted() -> None:
    evolved = _inlined("MeetingChange")
    evolved["fields"].append(
        {"name": "tenant", "type": ["null", "string"], "default": None, "doc": "x"}
    )
    assert is_compatible(evolved, current("MeetingChange").text)


def test_a_changed_field_type_is_rejected() -> None:
    evolved = _inlined("StateValue")
    progress = evolved["fields"][1]["type"][1]
    field = next(f for f in progress["fields"] if f["name"] == "created_through")
    field["type"] = "string"
    assert not is_compatible(evolved, current("StateValue").text)


def test_a_removed_enum_symbol_without_default_is_rejected() -> None:
    evolved = _inlined("MeetingChange")
    enum = next(f for f in evolved["fields"] if f["name"] == "change_type")["type"]
    enum["symbols"].remove("DECLINED")
    enum.pop("default")
    assert not is_compatible(evolved, current("MeetingChange").text)


def test_fastavro_resolution_also_rejects_a_field_without_default() -> None:
    evolved = copy.deepcopy(_inlined("MeetingKey"))
    evolved["fields"].append({"name": "tenant", "type": "string"})
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, current("MeetingKey").plain, SAMPLES["MeetingKey"][0])
    buffer.seek(0)
    with pytest.raises(fastavro.read.SchemaResolutionError):
        fastavro.schemaless_reader(
            buffer, current("MeetingKey").plain, fastavro.parse_schema(evolved)
        )


def test_load_schema_resolves_named_types_from_files_beside() -> None:
    """What DESIGN.md promises consumers: standard loaders need no code of ours."""
    for name in TOP_LEVEL:
        loaded = fastavro.schema.load_schema(str(SCHEMAS / f"{name}.avsc"))
        assert fastavro.schema.to_parsing_canonical_form(loaded) == current(name).canonical
