"""Hand-assembled Avro bodies for the hot path: change events and meeting state.

An Avro record body is the concatenation of its fields' encodings, so a ``Meeting`` body,
encoded once, can be reused wherever the meeting appears: the ``after`` of an event, the
state record written with it, the ``before`` of the next event (taken from the state record
it was decoded from). Only the few scalars around it are encoded here.

The ``Meeting`` body itself is hand-encoded too (``MeetingEncoder``) for the values it
knows exactly (plain ``int`` in the long range, ``str``, ``float``, ``bool``, ``None``);
anything else (an int beyond the long range, a str subclass...) goes to fastavro, so what
fastavro writes or raises stays the behaviour. ``MeetingBodies`` checks the hand encoder
against fastavro for the current schema at start-up and uses fastavro alone if they differ;
``Serdes`` checks the whole fast path likewise; tests check both over generated values.
"""

from __future__ import annotations

import io
import json
import logging
import math
import struct
from collections.abc import Callable
from typing import Any

import fastavro

from connector.changes import ChangeEvent, SourceInfo
from connector.errors import SerializationError
from connector.model import Meeting, Participant, freeze_extra
from connector.serde import catalog, records

log = logging.getLogger(__name__)
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
    return _varint((value << 1) ^ (value >> 63))


def string_bytes(value: str) -> bytes:
    """Avro ``string``: length, then UTF-8."""
    data = value.encode()
    return long_bytes(len(data)) + data


class _Unsupported(Exception):
    """A value the hand encoder leaves to fastavro."""


_pack_double = struct.Struct("<d").pack
# Branches of the extra maps' union ["null", "string", "long", "double", "boolean"], as
# zigzag longs; a schema that differs fails the start-up check.
_NULL_VALUE = b"\x00"
_STRING_BRANCH = b"\x02"
_LONG_BRANCH = b"\x04"
_DOUBLE_BRANCH = b"\x06"
_TRUE_VALUE = b"\x08\x01"
_FALSE_VALUE = b"\x08\x00"
_UNION_STRINGS = tuple(_STRING_BRANCH + _ONE_BYTE[size << 1] for size in range(64))


# The first two bytes of a varint of at least three, by its low 14 bits (32 KiB).
_LOW_PAIRS = b"".join(bytes(((c & 0x7F) | 0x80, (c >> 7) | 0x80)) for c in range(1 << 14))
# The rest of such a varint, by its high bits: timestamps near each other share them.
_HIGH_CAPACITY = 4096
_high_varints: dict[int, bytes] = {}


def _strict_long(value: object) -> bytes:
    """``long_bytes`` of a plain ``int`` in the long range; anything else is unsupported
    (fastavro decides: a bool, a float, an out-of-range int)."""
    if type(value) is not int:
        raise _Unsupported
    if -64 <= value < 64:
        return _ONE_BYTE[(value << 1) ^ (value >> 63)]
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise _Unsupported
    return _varint((value << 1) ^ (value >> 63))


def _varint(n: int) -> bytes:
    """The varint of ``n``, a zigzagged long of at least two bytes."""
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x200000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    high = n >> 14
    rest = _high_varints.get(high)
    if rest is None:
        out = []
        while high > 0x7F:
            out.append((high & 0x7F) | 0x80)
            high >>= 7
        out.append(high)
        rest = bytes(out)
        if len(_high_varints) >= _HIGH_CAPACITY:
            _high_varints.clear()
        _high_varints[n >> 14] = rest
    low = (n & 0x3FFF) << 1
    return _LOW_PAIRS[low : low + 2] + rest


_PLAIN_TYPES = frozenset({str, int, type(None)})


def _plain_pairs(extra: tuple[Any, ...]) -> bool:
    """Whether ``extra`` is (str, str | int | None) pairs: values that only an equal value
    of the same exact type equals (unlike True == 1 == 1.0)."""
    plain = _PLAIN_TYPES
    return all(
        type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) in plain
        for pair in extra
    )


class MeetingEncoder:
    """Hand encoder of ``meetings_cdc.Meeting`` bodies, byte for byte what fastavro writes
    for ``records.meeting_datum`` (fields in schema order, arrays and maps in one block,
    map entries in the datum's dict order).

    ``encode`` returns None for a meeting holding a value it leaves to fastavro. Map keys,
    statuses, roles and locations repeat: their encodings are kept in a bounded cache.
    """

    def __init__(self, string_capacity: int = 16_384, map_capacity: int = 65_536) -> None:
        """Cache up to ``string_capacity`` string encodings, and ``map_capacity`` extra map
        encodings and as many long encodings (each cache starts over when full)."""
        self._capacity = string_capacity
        self._strings: dict[str, bytes] = {}  # length + UTF-8
        self._map_capacity = map_capacity
        # extra -> (the extra cached, its map encoding), by value: a participant's extra
        # repeats across meetings. Only extras of exact str, int and None values are kept:
        # among those, equal values encode alike (True == 1 == 1.0 do not).
        self._maps: dict[Any, tuple[Any, bytes]] = {}
        # Longs that repeat across meetings (event id, slot times, account ids); exact
        # ints only (True == 1 but is not a long).
        self._longs: dict[int, bytes] = {}

    def _long(self, value: object) -> bytes:
        """``_strict_long(value)``, cached for a plain ``int``."""
        if type(value) is not int:
            raise _Unsupported
        data = self._longs.get(value)
        if data is None:
            data = _strict_long(value)
            if len(self._longs) >= self._map_capacity:
                self._longs.clear()
            self._longs[value] = data
        return data

    def _miss(self, cache: dict[str, bytes], value: str) -> bytes:
        """Encode ``value`` (an exact ``str``: checked by the caller) into ``cache``."""
        raw = value.encode()  # a lone surrogate raises: fastavro decides
        size = len(raw)
        data = (_ONE_BYTE[size << 1] if size < 64 else _strict_long(size)) + raw
        if len(cache) >= self._capacity:
            cache.clear()
        cache[value] = data
        return data

    def _map(self, extra: Any, out: list[bytes]) -> None:
        """An ``extra`` map (pairs, as ``dict(extra)`` sees them) appended to ``out``."""
        plain = type(extra) is tuple
        if plain:
            entry = self._maps.get(extra)
            # an equal extra is the same only if its values are of the same exact types
            if entry is not None and (entry[0] is extra or _plain_pairs(extra)):
                out.append(entry[1])
                return
        start = len(out)
        self._encode_map(extra, out)
        if plain and _plain_pairs(extra):
            data = b"".join(out[start:])
            del out[start:]
            out.append(data)
            if len(self._maps) >= self._map_capacity:
                self._maps.clear()
            self._maps[extra] = (extra, data)

    def _encode_map(self, extra: Any, out: list[bytes]) -> None:
        values = dict(extra)
        if not values:
            out.append(_EMPTY_ARRAY)
            return
        append = out.append
        long = _strict_long
        miss = self._miss
        keys = self._strings
        key_bytes = keys.get
        append(long(len(values)))
        for key, value in values.items():
            if type(key) is not str:
                raise _Unsupported
            append(key_bytes(key) or miss(keys, key))  # encodings are never empty
            kind = type(value)
            if kind is str:  # values are often unique (emails, titles): not cached
                raw = value.encode()  # a lone surrogate raises: fastavro decides
                size = len(raw)
                append(_UNION_STRINGS[size] if size < 64 else _STRING_BRANCH + long(size))
                append(raw)
            elif value is None:
                append(_NULL_VALUE)
            elif kind is int:
                append(_LONG_BRANCH)
                append(long(value))  # beyond the long range: fastavro's double, or error
            elif kind is float:
                append(_DOUBLE_BRANCH + _pack_double(value))
            elif kind is bool:
                append(_TRUE_VALUE if value else _FALSE_VALUE)
            else:
                raise _Unsupported
        append(_EMPTY_ARRAY)

    def encode(self, meeting: Meeting) -> bytes | None:
        """The Avro body of ``meeting``, or None to leave it to fastavro."""
        try:
            return self._encode(meeting)
        except Exception:  # _Unsupported, a lone surrogate, not a Participant...
            return None  # fastavro writes it or raises its own error, as it always did

    def _encode(self, m: Meeting) -> bytes:
        long = _strict_long
        miss = self._miss
        strings = self._strings
        string_bytes = strings.get
        status = m.status
        location = m.location
        if type(status) is not str or not (location is None or type(location) is str):
            raise _Unsupported
        longs = self._longs.get
        cached = self._long
        created_at = m.created_at
        modified_at = m.modified_at
        created = long(created_at)
        out = [
            long(m.meeting_id),
            (type(m.event_id) is int and longs(m.event_id)) or cached(m.event_id),
            string_bytes(status) or miss(strings, status),
            (type(m.start_at) is int and longs(m.start_at)) or cached(m.start_at),
            (type(m.end_at) is int and longs(m.end_at)) or cached(m.end_at),
            _NULL_BRANCH
            if location is None
            else _SECOND_BRANCH + (string_bytes(location) or miss(strings, location)),
            created,
            # unmodified meetings: the same long (a plain int equal to a plain int)
            created
            if modified_at == created_at and type(modified_at) is int
            else long(modified_at),
        ]
        append = out.append
        participants = m.participants
        if participants:
            append(long(len(participants)))
            for p in participants:
                role = p.role
                state = p.status
                if type(role) is not str or type(state) is not str:
                    raise _Unsupported
                account_id = p.account_id
                append((type(account_id) is int and longs(account_id)) or cached(account_id))
                append(string_bytes(role) or miss(strings, role))
                append(string_bytes(state) or miss(strings, state))
                self._map(p.extra, out)
        append(_EMPTY_ARRAY)
        self._map(m.extra, out)
        return b"".join(out)


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
            return long_bytes(event_id) + _NULL_BRANCH
        return long_bytes(event_id) + _SECOND_BRANCH + long_bytes(meeting_id)

    def _optional(self, meeting: Meeting | None, body: bytes | None) -> bytes:
        if meeting is None:
            return _NULL_BRANCH
        return _SECOND_BRANCH + (body if body is not None else self.bodies.body(meeting))

    def change(
        self, event: ChangeEvent, before: bytes | None = None, after: bytes | None = None
    ) -> bytes:
        """The MeetingChange body of ``event``; ``before`` / ``after``: the Meeting bodies
        of its change's meetings when the caller has them (else they are encoded)."""
        change = event.change
        source = event.source
        fields = change.changed_fields
        if fields:
            array = long_bytes(len(fields)) + b"".join(map(string_bytes, fields)) + _EMPTY_ARRAY
        else:
            array = _EMPTY_ARRAY
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
        return _SECOND_BRANCH + self.bodies.body(meeting) + long_bytes(version) + _NULL_BRANCH

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


def fastavro_bytes(schema: Any, datum: dict[str, Any]) -> bytes:
    """The body fastavro writes for ``datum`` (the reference the fast path must match)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


def read_state_key(data: bytes, offset: int) -> tuple[int, int | None] | None:
    """The (event id, meeting id or None) of a StateKey body at ``offset`` (the mirror of
    :meth:`FastEncoder.state_key`), or None for anything else: fastavro decides then."""
    try:
        event_id, offset = _read_long(data, offset)
        branch = data[offset]
        meeting_id: int | None = None
        if branch == 2:  # zig-zag 1: the long branch
            meeting_id, offset = _read_long(data, offset + 1)
        elif branch == 0:
            offset += 1
        else:
            return None
    except (IndexError, ValueError):  # cut short, or a varint beyond 64 bits
        return None
    return (event_id, meeting_id) if offset == len(data) else None


def read_created_and_rows(data: bytes, offset: int) -> tuple[int, int] | None:
    """(created_at ms, participants) of a meeting StateValue body at ``offset``, read
    without decoding the meeting (the state's row index reads one per restored meeting), or
    None for anything else (the caller decodes then). The participants are the first
    array block's count: both encoders (this module's and fastavro) write one block."""
    try:
        if data[offset] != 2:  # not the meeting branch
            return None
        offset += 1
        for _ in range(2):  # meeting_id, event_id
            _, offset = _read_long(data, offset)
        size, offset = _read_long(data, offset)  # status
        offset += size
        for _ in range(2):  # start_at, end_at
            _, offset = _read_long(data, offset)
        branch, offset = _read_long(data, offset)  # location: null or string
        if branch == 1:
            size, offset = _read_long(data, offset)
            offset += size
        elif branch != 0:
            return None
        created_at, offset = _read_long(data, offset)
        _, offset = _read_long(data, offset)  # modified_at
        count, offset = _read_long(data, offset)
    except (IndexError, ValueError):
        return None
    return created_at, abs(count)


def _read_long(data: bytes, offset: int) -> tuple[int, int]:
    """A zig-zag varint long at ``offset`` and the offset after it; ValueError beyond 64
    bits, IndexError when cut short."""
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than ten bytes")
    if value >= 1 << 64:
        raise ValueError("a varint beyond 64 bits")
    return (value >> 1) ^ -(value & 1), offset
