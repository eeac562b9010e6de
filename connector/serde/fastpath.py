"""Hand-assembled Avro bodies for the hot path: change events and meeting state.

An Avro record body is the concatenation of its fields' encodings, so a ``Meeting`` body,
encoded once by fastavro, can be reused wherever the meeting appears: the ``after`` of an
event, the state record written with it, the ``before`` of the next event (taken from the
state record it was decoded from). Only the few scalars around it are encoded here.
``Serdes`` checks at start-up that this produces exactly fastavro's bytes for the current
schemas and falls back to fastavro otherwise; tests check it over generated events.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro

from connector.changes import ChangeEvent
from connector.errors import SerializationError
from connector.model import Meeting
from connector.serde import catalog, records

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1
_NULL_BRANCH = b"\x00"
_SECOND_BRANCH = b"\x02"  # zigzag(1): the non-null branch of ["null", T]
_EMPTY_ARRAY = b"\x00"
_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def long_bytes(value: int) -> bytes:
    """Avro ``long``: zigzag varint."""
    if -64 <= value < 64:  # one byte: versions, small ids
        return _ONE_BYTE[(value << 1) ^ (value >> 63)]
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise SerializationError(f"cannot encode {value}: out of the Avro long range")
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string_bytes(value: str) -> bytes:
    """Avro ``string``: length, then UTF-8."""
    data = value.encode()
    return long_bytes(len(data)) + data


class MeetingBodies:
    """Avro bodies of ``Meeting`` values, by object identity (a bounded cache).

    Holding the meeting keeps its id from being reused while the entry lives.
    """

    def __init__(self, capacity: int = 16_384) -> None:
        """Keep up to ``capacity`` bodies (then start over)."""
        self._schema = catalog.load_file(catalog.schemas_dir() / "meetings_cdc.Meeting.avsc").plain
        self._capacity = capacity
        self._cache: dict[int, tuple[Meeting, bytes]] = {}

    def body(self, meeting: Meeting) -> bytes:
        """The Avro body of ``meeting`` (encoded once per meeting object)."""
        entry = self._cache.get(id(meeting))
        if entry is not None and entry[0] is meeting:
            return entry[1]
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self._schema, records.meeting_datum(meeting))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerializationError(f"cannot encode a Meeting record: {exc!r}") from exc
        data = buffer.getvalue()
        self.remember(meeting, data)
        return data

    def remember(self, meeting: Meeting, body: bytes) -> None:
        """Record that ``body`` is the encoding of ``meeting`` (e.g. just decoded from it)."""
        if len(self._cache) >= self._capacity:
            self._cache.clear()
        self._cache[id(meeting)] = (meeting, body)


class FastEncoder:
    """Encodes MeetingChange and meeting StateValue bodies around cached Meeting bodies."""

    def __init__(self, bodies: MeetingBodies) -> None:
        """Use ``bodies`` for every Meeting."""
        self.bodies = bodies
        change = json.loads(catalog.current(catalog.MEETING_CHANGE).text)
        enum = next(f for f in change["fields"] if f["name"] == "change_type")["type"]
        self._symbols = {s: long_bytes(i) for i, s in enumerate(enum["symbols"])}

    @staticmethod
    def change_key(event_id: int, meeting_id: int) -> bytes:
        """The MeetingKey body: two longs."""
        return long_bytes(event_id) + long_bytes(meeting_id)

    @staticmethod
    def state_key(event_id: int, meeting_id: int | None) -> bytes:
        """The StateKey body: a long and an optional long (null for an event's progress)."""
        if meeting_id is None:
            return long_bytes(event_id) + _NULL_BRANCH
        return long_bytes(event_id) + _SECOND_BRANCH + long_bytes(meeting_id)

    def _optional(self, meeting: Meeting | None) -> bytes:
        return _NULL_BRANCH if meeting is None else _SECOND_BRANCH + self.bodies.body(meeting)

    def change(self, event: ChangeEvent) -> bytes:
        """The MeetingChange body of ``event``."""
        change = event.change
        source = event.source
        fields = change.changed_fields
        if fields:
            array = long_bytes(len(fields)) + b"".join(map(string_bytes, fields)) + _EMPTY_ARRAY
        else:
            array = _EMPTY_ARRAY
        return b"".join(
            (
                long_bytes(event.event_id),
                long_bytes(event.meeting_id),
                self._symbols[change.change_type.value],
                array,
                self._optional(change.before),
                self._optional(change.after),
                long_bytes(event.modified_at),
                long_bytes(event.detected_at),
                long_bytes(event.version),
                string_bytes(source.connector),
                string_bytes(source.connector_version),
                string_bytes(source.window_kind),
                long_bytes(source.window_start),
                long_bytes(source.window_end),
            )
        )

    def meeting_state(self, meeting: Meeting, version: int) -> bytes:
        """The StateValue body of a meeting's state."""
        return _SECOND_BRANCH + self.bodies.body(meeting) + long_bytes(version) + _NULL_BRANCH

    def meeting_body_in_state(self, body: bytes, version: int) -> bytes:
        """The Meeting body inside a meeting StateValue ``body`` whose version is ``version``."""
        return body[1 : len(body) - 1 - len(long_bytes(version))]


def fastavro_bytes(schema: Any, datum: dict[str, Any]) -> bytes:
    """The body fastavro writes for ``datum`` (the reference the fast path must match)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()
