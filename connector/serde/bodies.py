"""The bodies of the records written for a meeting, assembled around ``Meeting`` bodies.

An Avro record body is the concatenation of its fields' encodings, so a ``Meeting`` body,
encoded once, can be reused wherever the meeting appears: the ``after`` of an event, the
state record written with it, the ``before`` of the next event (taken from the state record
it was decoded from). ``FastEncoder`` encodes only the few scalars around it (and the keys).

``MeetingBodies`` writes ``Meeting`` bodies with the hand encoder
(``connector.serde.fastpath.MeetingEncoder``) once a start-up check over
``self_check_meetings`` found it writes fastavro's bytes for the current schema, and with
fastavro alone otherwise; ``Serdes`` checks the whole fast path likewise.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable

import fastavro

from connector.core.changes import ChangeEvent, SourceInfo
from connector.core.model import Meeting, Participant, freeze_extra
from connector.errors import SerializationError
from connector.serde import catalog, records
from connector.serde.fastpath import (
    EMPTY_ARRAY,
    NULL_BRANCH,
    SECOND_BRANCH,
    MeetingEncoder,
    long_bytes,
    string_bytes,
)

log = logging.getLogger(__name__)


def self_check_meetings() -> list[Meeting]:
    """Meetings covering every branch of the Meeting body and multi-byte lengths and longs:
    the reference data of ``MeetingBodies``' start-up check."""
    text = "Ünïcode ☕ " * 8  # > 63 bytes: a two-byte length
    extra = freeze_extra(
        {
            "n": None,
            "t": True,
            "f": False,
            "i": -(2**63),
            "j": 2**63 - 1,
            "k": 300,
            "d": -0.0,
            "e": math.inf,
            "g": 1.5e-300,
            "s": text,
            "": "",
        }
    )
    people = (
        Participant(-(2**40), text, "", extra),
        Participant(0, "invitee", "accepted", ()),
        Participant(2**62, "requester", "declined", freeze_extra({"email": "a@x.io"})),
    )
    return [
        Meeting(1, -2, "pending", 1_767_261_600_000, -1, None, 0, 2**62, people, extra),
        Meeting(-(2**63), 2**63 - 1, text, 0, 1, text, -64, 63, (), ()),
        Meeting(7, 8, "", 64, -65, "", 2**20, -(2**21), people[1:2], (("x", "y"),)),
    ]


class MeetingBodies:
    """Avro bodies of ``Meeting`` values: hand-encoded where that is checked to write
    fastavro's bytes, else by fastavro. No cache: a meeting is encoded once for its state
    record, and its event's ``after`` and the next event's ``before`` take the body out of
    that record (``Batch`` hands the records on; see ``Serdes.encode_change``).
    """

    def __init__(self) -> None:
        self._schema = catalog.load_file(catalog.schemas_dir() / "meetings_cdc.Meeting.avsc").plain
        self._hand = self._checked_hand_encoder(MeetingEncoder())

    @property
    def hand_encoding(self) -> bool:
        """Whether Meeting bodies are hand-encoded (the start-up check passed)."""
        return self._hand is not None

    def _checked_hand_encoder(
        self, encoder: MeetingEncoder
    ) -> Callable[[Meeting], bytes | None] | None:
        """``encoder.encode`` if it writes exactly fastavro's bytes for the current Meeting
        schema, else None (fastavro alone, rather than corrupting data)."""
        try:
            for meeting in self_check_meetings():
                if encoder.encode(meeting) != self._fastavro_body(meeting):
                    raise ValueError("bytes differ")
        except (ValueError, SerializationError) as exc:
            log.warning("hand-encoded Meeting bodies disabled, using fastavro: %s", exc)
            return None
        return encoder.encode

    def _fastavro_body(self, meeting: Meeting) -> bytes:
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self._schema, records.meeting_datum(meeting))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerializationError(f"cannot encode a Meeting record: {exc!r}") from exc
        return buffer.getvalue()

    def body(self, meeting: Meeting) -> bytes:
        """The Avro body of ``meeting``."""
        hand = self._hand
        data = hand(meeting) if hand is not None else None
        if data is None:
            data = self._fastavro_body(meeting)
        return data


class FastEncoder:
    """Encodes MeetingChange and meeting StateValue bodies around Meeting bodies."""

    def __init__(self, bodies: MeetingBodies) -> None:
        """Use ``bodies`` for every Meeting."""
        self.bodies = bodies
        change = json.loads(catalog.current(catalog.MEETING_CHANGE).text)
        enum = next(f for f in change["fields"] if f["name"] == "change_type")["type"]
        self._symbols = {s: long_bytes(i) for i, s in enumerate(enum["symbols"])}
        # The last source encoded: the events of one window share it (by value).
        self._source: tuple[SourceInfo, bytes] | None = None

    @staticmethod
    def change_key(event_id: int, meeting_id: int) -> bytes:
        """The MeetingKey body: two longs."""
        return long_bytes(event_id) + long_bytes(meeting_id)

    @staticmethod
    def state_key(event_id: int, meeting_id: int | None) -> bytes:
        """The StateKey body: a long and an optional long (null for an event's progress)."""
        if meeting_id is None:
            return long_bytes(event_id) + NULL_BRANCH
        return long_bytes(event_id) + SECOND_BRANCH + long_bytes(meeting_id)

    def _optional(self, meeting: Meeting | None, body: bytes | None) -> bytes:
        if meeting is None:
            return NULL_BRANCH
        return SECOND_BRANCH + (body if body is not None else self.bodies.body(meeting))

    def change(
        self, event: ChangeEvent, before: bytes | None = None, after: bytes | None = None
    ) -> bytes:
        """The MeetingChange body of ``event``; ``before`` / ``after``: the Meeting bodies
        of its change's meetings when the caller has them (else they are encoded)."""
        change = event.change
        source = event.source
        fields = change.changed_fields
        if fields:
            array = long_bytes(len(fields)) + b"".join(map(string_bytes, fields)) + EMPTY_ARRAY
        else:
            array = EMPTY_ARRAY
        cached = self._source
        if cached is not None and (cached[0] is source or cached[0] == source):
            tail = cached[1]
        else:
            tail = b"".join(
                (
                    string_bytes(source.connector),
                    string_bytes(source.connector_version),
                    string_bytes(source.window_kind),
                    long_bytes(source.window_start),
                    long_bytes(source.window_end),
                    NULL_BRANCH
                    if source.signal_id is None
                    else SECOND_BRANCH + string_bytes(source.signal_id),
                )
            )
            self._source = (source, tail)
        return b"".join(
            (
                long_bytes(event.event_id),
                long_bytes(event.meeting_id),
                self._symbols[change.change_type.value],
                array,
                self._optional(change.before, before),
                self._optional(change.after, after),
                long_bytes(event.modified_at),
                long_bytes(event.detected_at),
                long_bytes(event.version),
                tail,
            )
        )

    def meeting_state(self, meeting: Meeting, version: int) -> bytes:
        """The StateValue body of a meeting's state."""
        return SECOND_BRANCH + self.bodies.body(meeting) + long_bytes(version) + NULL_BRANCH

    @staticmethod
    def meeting_body_in_state(body: bytes) -> bytes:
        """The Meeting body inside a meeting StateValue ``body``: the meeting branch, the
        body, the version (a varint: its bytes before the last have the high bit set) and
        the null progress. A Meeting body ends with its extra map's 0 terminator, so the
        varint is the run of bytes before the last that the scan below walks back over."""
        end = len(body) - 2  # the version's last byte
        while body[end - 1] & 0x80:
            end -= 1
        return body[1:end]
