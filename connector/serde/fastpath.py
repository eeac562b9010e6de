"""Hand-encoded Avro for the hot path: longs, strings and ``Meeting`` bodies.

``long_bytes`` and ``string_bytes`` write Avro scalars, and ``MeetingEncoder`` whole
``Meeting`` bodies for the values it knows exactly (plain ``int`` in the long range, ``str``,
``float``, ``bool``, ``None``); anything else (an int beyond the long range, a str
subclass...) goes to fastavro, so what fastavro writes or raises stays the behaviour.
``fastavro_bytes`` is the reference they must match. At start-up
``connector.serde.bodies.MeetingBodies`` checks the encoder against fastavro and ``Serdes``
the whole fast path (``connector.serde.bodies`` assembles the records' bodies around Meeting
bodies); tests check both over generated values.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from connector.core.model import Meeting
from connector.errors import SerializationError

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1
NULL_BRANCH = b"\x00"
SECOND_BRANCH = b"\x02"  # zigzag(1): the non-null branch of ["null", T]
EMPTY_ARRAY = b"\x00"  # an empty array or map, or the end of a non-empty one's block
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
            out.append(EMPTY_ARRAY)
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
        append(EMPTY_ARRAY)

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
            NULL_BRANCH
            if location is None
            else SECOND_BRANCH + (string_bytes(location) or miss(strings, location)),
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
        append(EMPTY_ARRAY)
        self._map(m.extra, out)
        return b"".join(out)


def fastavro_bytes(schema: Any, datum: dict[str, Any]) -> bytes:
    """The body fastavro writes for ``datum`` (the reference the fast path must match)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()
