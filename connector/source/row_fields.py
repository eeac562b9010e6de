"""One raw row field's value checks: identifiers and texts, and :class:`FieldError`.

The careful path of :class:`connector.source.rows.RowParser` converts each field with these
(date-times with :mod:`connector.source.row_times`); a :class:`FieldError` says what is wrong
with one field and becomes part of the row's :class:`connector.source.rows.RowError`.
"""

from __future__ import annotations

#: The largest identifier: ids are Avro longs, and positive.
MAX_ID = 2**63 - 1


class FieldError(ValueError):
    """One field's problem (becomes part of a :class:`connector.source.rows.RowError` reason)."""


def identifier(value: object) -> int:
    """A positive 64-bit integer, given as a JSON integer or a string of digits."""
    if isinstance(value, bool):
        raise FieldError(f"expected a positive integer, got {show(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise FieldError(f"expected a positive integer, got {show(value)}")
    if not 0 < number <= MAX_ID:
        raise FieldError(f"expected a positive 64-bit integer, got {number}")
    return number


def nonempty_text(value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise FieldError(f"expected a non-empty string, got {show(value)}")
    return value


def optional_text(value: object) -> str | None:
    """A string or null."""
    if value is None or isinstance(value, str):
        return value
    raise FieldError(f"expected a string or null, got {show(value)}")


def type_name(value: object) -> str:
    """The JSON name of ``value``'s type (Python's for anything JSON does not have)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def show(value: object) -> str:
    """``value`` as a reason quotes it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
