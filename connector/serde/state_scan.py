"""Reading state records' bodies without decoding them (restore reads one per record).

``read_state_key`` reads a ``StateKey`` body and ``read_created_and_rows`` the creation time
and participant count of a meeting ``StateValue`` body, by walking their varints; anything
they do not expect is None, and the caller decodes with fastavro then.
"""

from __future__ import annotations


def read_state_key(data: bytes, offset: int) -> tuple[int, int | None] | None:
    """The (event id, meeting id or None) of a StateKey body at ``offset`` (the mirror of
    :meth:`connector.serde.bodies.FastEncoder.state_key`), or None for anything else:
    fastavro decides then."""
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
    array block's count: both encoders (``connector.serde.fastpath``'s and fastavro) write
    one block."""
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
