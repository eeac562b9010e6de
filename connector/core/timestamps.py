"""How every command prints an instant: ISO 8601 in UTC, ``2025-06-01T09:30:00Z``.

One format for ``export``'s JSON lines, ``tail``'s decoded records and the error messages
that show a window's bounds, so a script can compare or parse them with one rule: whole
seconds end in ``Z``; a fraction appears only when there is one (``.123Z``, or six digits
for a microsecond-precision value read with another producer's schema).
"""

from __future__ import annotations

import datetime as dt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso_utc(value: dt.datetime) -> str:
    """An aware or naive-UTC datetime as ``YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return f"{text}Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def iso_millis(millis: int) -> str:
    """Epoch milliseconds (an Avro ``timestamp-millis``) in the same format."""
    return iso_utc(_EPOCH + dt.timedelta(milliseconds=millis))


def iso_seconds(seconds: int) -> str:
    """Unix seconds (the API's bounds) in the same format."""
    return iso_utc(_EPOCH + dt.timedelta(seconds=seconds))
