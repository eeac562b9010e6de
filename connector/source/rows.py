"""Field mapping: one raw export row -> :class:`ParsedRow`, or a precise :class:`RowError` (pure).

A row is one participant of a meeting (``docs/architecture.md``, "The export row format").
:class:`FieldMapping` names the keys; its defaults match the simulator. Date-times are
accepted as ``YYYY-MM-DD HH:MM:SS`` in the API's time zone, as ISO 8601 (with or without an
offset; without one it is local to the API's zone) or as integer unix seconds, and become
UTC epoch milliseconds. A local time that a daylight-saving fall-back repeats is resolved by
the window the row was read for and the order of the row's times
(:mod:`connector.source.local_time`). Keys the mapping does not model are kept: the
configured meeting-level ones in the meeting's ``extra``, every other one in the
participant's.

Parsing never raises anything but :class:`RowError` (a :class:`MalformedRowError`),
whatever JSON value it is given; the reader turns those into :class:`DeadLetter` records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from operator import itemgetter
from typing import Any

from connector.errors import MalformedRowError
from connector.model import Extra, Participant, freeze_extra
from connector.source.local_time import Bounds, instants, resolve_interval, within
from connector.source.windows import Window, WindowKind

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_ID = 2**63 - 1
_DATE_TIME_HINT = "a date-time 'YYYY-MM-DD HH:MM:SS', ISO 8601 or integer unix seconds"
_CACHE_LIMIT = 200_000
#: Distinct extra value tuples kept per row shape (an event's accounts, with room to spare).
_INTERN_LIMIT = 65_536
#: Distinct row shapes (key sets in key order) kept; real exports have one or a few.
_SHAPE_LIMIT = 16
#: Distinct days kept for date-time parsing.
_DAY_LIMIT = 4_096
#: Distinct repeated local times kept (one fall-back hour is 3,600 texts).
_FOLD_LIMIT = 16_384


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which row key holds which field; the defaults match the simulator."""

    meeting_id: str = "meeting_id"
    event_id: str = "event_id"
    status: str = "status"
    start_at: str = "start_time"
    end_at: str = "end_time"
    location: str = "location"
    created_at: str = "created_at"
    modified_at: str = "updated_at"
    account_id: str = "account_id"
    role: str = "participant_role"
    participant_status: str = "participant_status"
    meeting_extra_keys: frozenset[str] = field(
        default_factory=lambda: frozenset({"title", "meeting_type", "notes", "duration"})
    )

    def modelled(self) -> frozenset[str]:
        """Every key mapped to a modelled field."""
        return frozenset(
            (
                self.meeting_id,
                self.event_id,
                self.status,
                self.start_at,
                self.end_at,
                self.location,
                self.created_at,
                self.modified_at,
                self.account_id,
                self.role,
                self.participant_status,
            )
        )

    def time_key(self, kind: WindowKind) -> str:
        """The key a window of ``kind`` filters on."""
        return self.created_at if kind is WindowKind.CREATED else self.modified_at


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One valid row: the meeting-level fields it carries plus its participant."""

    meeting_id: int
    event_id: int
    status: str
    start_at: int
    end_at: int
    location: str | None
    created_at: int
    modified_at: int
    meeting_extra: Extra
    participant: Participant

    def meeting_fields(self) -> tuple[object, ...]:
        """Every meeting-level value: all rows of one meeting version agree on these."""
        return (
            self.event_id,
            self.status,
            self.start_at,
            self.end_at,
            self.location,
            self.created_at,
            self.modified_at,
            self.meeting_extra,
        )


class RowError(MalformedRowError):
    """A row that cannot be mapped; ``reason`` names every bad field and what was wrong.

    ``meeting_id`` is the row's meeting when that much could be read, and ``known`` holds
    the meeting-level fields that did parse (by :class:`ParsedRow` attribute name), so that
    a row without a readable meeting id can still be matched to the meetings it may
    belong to.
    """

    def __init__(self, reason: str, meeting_id: int | None, known: Mapping[str, object]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.meeting_id = meeting_id
        self.known = dict(known)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row that could not be parsed: its JSON text, why, and the window it came from."""

    event_id: int
    raw: str
    reason: str
    window: Window
    meeting_id: int | None = None  # when the row still named its meeting readably


def raw_text(raw: object) -> str:
    """The row as JSON text, for a dead letter (never fails)."""
    try:
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(raw)


class RowParser:
    """Maps raw rows with one :class:`FieldMapping` and time zone (caches parsed times).

    Texts that name one instant are cached with it; texts of a repeated local hour are
    cached with both of their instants (``_folds``) and resolved per row, from the window
    the row was read for: the same text is a different instant in another context.
    """

    def __init__(self, mapping: FieldMapping | None = None, zone: tzinfo = UTC) -> None:
        self.mapping = mapping or FieldMapping()
        self.zone = zone
        self._utc = zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC")
        self._times: dict[str, int] = {}  # texts of one instant only
        self._folds: dict[str, tuple[int, int]] = {}  # texts of a repeated local time
        self._days: dict[str, int] = {}  # "YYYY-MM-DD" -> its first second (UTC zone only)
        self._modelled = self.mapping.modelled()
        self._shapes: dict[tuple[object, ...], _Shape] = {}
        m = self.mapping
        self._modelled_values = itemgetter(
            m.meeting_id,
            m.event_id,
            m.account_id,
            m.status,
            m.role,
            m.participant_status,
            m.location,
            m.start_at,
            m.end_at,
            m.created_at,
            m.modified_at,
        )

    # --- rows ------------------------------------------------------------------------------

    def parse(
        self, raw: object, expected_event_id: int | None = None, window: Window | None = None
    ) -> ParsedRow:
        """Map ``raw``; raise :class:`RowError` naming every bad field.

        ``window``: the window the row was returned for; its bounds decide which instant a
        repeated local time of its kind is.
        """
        if type(raw) is dict:
            try:
                return self._parse_fast(raw, expected_event_id, window)
            except (_NotFast, KeyError, TypeError, ValueError):
                pass  # the careful path below says what exactly is wrong
        return self._parse_careful(raw, expected_event_id, window)

    def _parse_fast(
        self, raw: dict[str, Any], expected_event_id: int | None, window: Window | None
    ) -> ParsedRow:
        """The common case, a valid row, with few checks per field; raises on anything else."""
        (
            meeting_id,
            event_id,
            account_id,
            status,
            role,
            participant_status,
            location,
            start_text,
            end_text,
            created_text,
            modified_text,
        ) = self._modelled_values(raw)
        if (
            type(meeting_id) is not int
            or type(event_id) is not int
            or type(account_id) is not int
            or not (0 < meeting_id <= _MAX_ID and 0 < event_id <= _MAX_ID)
            or not 0 < account_id <= _MAX_ID
            or (expected_event_id is not None and event_id != expected_event_id)
            or type(status) is not str
            or type(role) is not str
            or type(participant_status) is not str
            or not (status and role and participant_status)
            or (location is not None and type(location) is not str)
        ):
            raise _NotFast
        times = self._times
        start_at = times.get(start_text)
        if start_at is None:
            start_at = self._millis(start_text)
        end_at = times.get(end_text)
        if end_at is None:
            end_at = self._millis(end_text)
        created_at = times.get(created_text)
        if created_at is None:
            created_at = self._millis(created_text)
        modified_at = times.get(modified_text)
        if modified_at is None:
            modified_at = self._millis(modified_text)
        if self._folds:  # never in UTC: its fast path stays as it was
            start_at, end_at, created_at, modified_at = self._resolve(
                (start_text, end_text, created_text, modified_text),
                (start_at, end_at, created_at, modified_at),
                window,
            )
        keys = tuple(raw)
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._shape(keys)
        return ParsedRow(
            meeting_id,
            event_id,
            status,
            start_at,
            end_at,
            location,
            created_at,
            modified_at,
            shape.meeting.take(raw),
            Participant(account_id, role, participant_status, shape.participant.take(raw)),
        )

    def _shape(self, keys: tuple[object, ...]) -> _Shape:
        """How rows with exactly ``keys`` (in this order) split into extras."""
        meeting: list[str] = []
        participant: list[str] = []
        modelled, meeting_keys = self._modelled, self.mapping.meeting_extra_keys
        for key in keys:
            if key in modelled:
                continue
            if type(key) is not str:
                raise _NotFast
            (meeting if key in meeting_keys else participant).append(key)
        shape = _Shape(_Extras(sorted(meeting)), _Extras(sorted(participant)))
        if len(self._shapes) >= _SHAPE_LIMIT:
            self._shapes.clear()
        self._shapes[keys] = shape
        return shape

    def _parse_careful(
        self, raw: object, expected_event_id: int | None, window: Window | None = None
    ) -> ParsedRow:
        """Every field checked, every problem collected into one :class:`RowError`."""
        if not isinstance(raw, dict):
            raise RowError(f"row is not a JSON object (got {_type_name(raw)})", None, {})
        m = self.mapping
        errors: list[str] = []
        known: dict[str, object] = {}

        def take(name: str, key: str, convert: Any, *args: object) -> Any:
            if key not in raw:
                errors.append(f"{key}: missing")
                return None
            try:
                value = convert(raw[key], *args)
            except _FieldError as exc:
                errors.append(f"{key}: {exc}")
                return None
            known[name] = value
            return value

        meeting_id = take("meeting_id", m.meeting_id, _identifier)
        event_id = take("event_id", m.event_id, _identifier)
        status = take("status", m.status, _text)
        start_at = take("start_at", m.start_at, self._millis)
        end_at = take("end_at", m.end_at, self._millis)
        location = take("location", m.location, _optional_text)
        created_at = take("created_at", m.created_at, self._millis)
        modified_at = take("modified_at", m.modified_at, self._millis)
        account_id = take("account_id", m.account_id, _identifier)
        role = take("role", m.role, _text)
        participant_status = take("participant_status", m.participant_status, _text)
        if expected_event_id is not None and event_id is not None and event_id != expected_event_id:
            errors.append(f"{m.event_id}: {event_id} is not the requested {expected_event_id}")
            known.pop("event_id", None)
        meeting_extra: dict[str, object] = {}
        participant_extra: dict[str, object] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                errors.append(f"row has a non-string key {key!r}")
            elif key in m.meeting_extra_keys:
                meeting_extra[key] = value
            elif key not in self._modelled:
                participant_extra[key] = value
        frozen_meeting: Extra = ()
        frozen_participant: Extra = ()
        if not errors:
            try:
                frozen_meeting = freeze_extra(meeting_extra)
                frozen_participant = freeze_extra(participant_extra)
            except (TypeError, ValueError, RecursionError) as exc:
                errors.append(f"extra fields cannot be kept as JSON: {type(exc).__name__}")
        if errors:
            raise RowError("; ".join(errors), meeting_id, known)
        if self._folds:
            start_at, end_at, created_at, modified_at = self._resolve(
                (raw[m.start_at], raw[m.end_at], raw[m.created_at], raw[m.modified_at]),
                (start_at, end_at, created_at, modified_at),
                window,
            )
        return ParsedRow(
            meeting_id=meeting_id,
            event_id=event_id,
            status=status,
            start_at=start_at,
            end_at=end_at,
            location=location,
            created_at=created_at,
            modified_at=modified_at,
            meeting_extra=frozen_meeting,
            participant=Participant(account_id, role, participant_status, frozen_participant),
        )

    def second_of(self, raw: object, kind: WindowKind, window: Window | None = None) -> int | None:
        """The row's created or modified unix second (inside ``window`` when one of its
        instants is), or None when it cannot be read."""
        if not isinstance(raw, dict):
            return None
        value = raw.get(self.mapping.time_key(kind))
        try:
            millis = self._millis(value)
        except _FieldError:
            return None
        folds = self._folds.get(value) if isinstance(value, str) else None
        if folds is not None and window is not None:
            millis = within(folds, _bounds(window))[0]
        return millis // 1000

    # --- date-times ------------------------------------------------------------------------

    def _resolve(
        self,
        texts: tuple[object, object, object, object],
        values: tuple[int, int, int, int],
        window: Window | None,
    ) -> tuple[int, int, int, int]:
        """``values`` (start, end, created, modified) with repeated local times resolved."""
        start_text, end_text, created_text, modified_text = texts
        start_at, end_at, created_at, modified_at = values
        candidates = self._candidates
        if self._repeats(start_text) or self._repeats(end_text):
            start_at, end_at = resolve_interval(
                candidates(start_text, start_at), candidates(end_text, end_at)
            )
        if self._repeats(created_text) or self._repeats(modified_text):
            created_bounds = modified_bounds = None
            if window is not None:
                if window.kind is WindowKind.CREATED:
                    created_bounds = _bounds(window)
                else:
                    modified_bounds = _bounds(window)
            created_at, modified_at = resolve_interval(
                candidates(created_text, created_at),
                candidates(modified_text, modified_at),
                created_bounds,
                modified_bounds,
            )
        return start_at, end_at, created_at, modified_at

    def _repeats(self, text: object) -> bool:
        """Whether ``text`` is a local time that a fall-back repeats (seen before)."""
        return isinstance(text, str) and text in self._folds

    def _candidates(self, text: object, value: int) -> tuple[int, ...]:
        """Both instants of a repeated local time, else ``value`` alone."""
        folds = self._folds.get(text) if isinstance(text, str) else None
        return (value,) if folds is None else folds

    def _millis(self, value: object) -> int:
        """Epoch ms of a date-time; the first occurrence for a repeated local time (whose
        both instants are then in ``_folds``, for :meth:`_resolve`)."""
        if isinstance(value, str):
            cached = self._times.get(value)
            if cached is None:
                folds = self._folds.get(value)
                if folds is not None:
                    return folds[0]
                parsed = self._parse_text_time(value)
                if isinstance(parsed, tuple):
                    if len(self._folds) >= _FOLD_LIMIT:
                        self._folds.clear()
                    self._folds[value] = parsed
                    return parsed[0]
                cached = parsed
                if len(self._times) >= _CACHE_LIMIT:
                    self._times.clear()
                self._times[value] = cached
            return cached
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= _MAX_SECONDS:
                raise _FieldError(f"unix seconds {value} out of range")
            return value * 1000
        raise _FieldError(f"expected {_DATE_TIME_HINT}, got {_show(value)}")

    def _parse_text_time(self, text: str) -> int | tuple[int, int]:
        if self._utc and len(text) == 19 and text[10] == " " and text[16] == ":":
            # Days repeat far more than whole date-times: cached (only days of date-times
            # that parsed); hours:minutes and seconds are looked up in fixed tables.
            day = self._days.get(text[:10])
            minutes = _HOURS_MINUTES.get(text[11:16])
            seconds = _SECONDS.get(text[17:19])
            if day is not None and minutes is not None and seconds is not None:
                return (day + minutes + seconds) * 1000
        if (
            len(text) == 19
            and text[4] == "-"
            and text[7] == "-"
            and text[10] == " "
            and text[13] == ":"
            and text[16] == ":"
            and text.isascii()
        ):
            y, mo, d = text[0:4], text[5:7], text[8:10]
            h, mi, s = text[11:13], text[14:16], text[17:19]
            if (
                y.isdigit()
                and mo.isdigit()
                and d.isdigit()
                and h.isdigit()
                and mi.isdigit()
                and s.isdigit()
            ):
                try:
                    if self._utc:
                        return self._utc_millis(
                            text, int(y), int(mo), int(d), int(h), int(mi), int(s)
                        )
                    local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
                    return _one_or_folds(instants(local, self.zone))
                except (ValueError, OverflowError):
                    raise _FieldError(f"not a valid date-time: {_show(text)}") from None
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise _FieldError(f"expected {_DATE_TIME_HINT}, got {_show(text)}") from None
        try:
            if parsed.tzinfo is None:
                found = instants(parsed, self.zone)
            else:
                found = (int(parsed.timestamp() * 1000),)
        except (OverflowError, ValueError):
            raise _FieldError(f"date-time out of range: {_show(text)}") from None
        if not all(0 <= millis <= _MAX_SECONDS * 1000 for millis in found):
            raise _FieldError(f"date-time out of range: {_show(text)}")
        return _one_or_folds(found)

    def _utc_millis(self, text: str, y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
        """``text``, 'YYYY-MM-DD HH:MM:SS' in UTC with these parts; caches its day."""
        day = (date(y, mo, d).toordinal() - _EPOCH_ORDINAL) * 86_400
        if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 60):
            raise ValueError("time out of range")
        clock = h * 3_600 + mi * 60 + s
        if len(self._days) >= _DAY_LIMIT:
            self._days.clear()
        self._days[text[:10]] = day
        return (day + clock) * 1000


def _one_or_folds(found: tuple[int] | tuple[int, int]) -> int | tuple[int, int]:
    return found[0] if len(found) == 1 else found


def _bounds(window: Window) -> Bounds:
    """A window's unix-second bounds as the epoch ms its rows' instants lie in."""
    return (window.start * 1000, window.end * 1000 + 999)


# 'HH:MM' -> seconds and 'SS' -> seconds, for every valid time of day.
_HOURS_MINUTES = {f"{h:02d}:{m:02d}": h * 3_600 + m * 60 for h in range(24) for m in range(60)}
_SECONDS = {f"{s:02d}": s for s in range(60)}
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
# Equal values of these exact types are the same value (unlike 1 == 1.0 == True, or
# 0.0 == -0.0), so equal tuples of them can share one object.
_INTERNABLE = frozenset({str, int, type(None)})


class _Extras:
    """The extra fields of one row shape: keys in sorted order; equal value tuples of
    internable types share one frozen tuple (participants repeat across meetings, and so
    do their encodings, which the encoder caches by value)."""

    __slots__ = ("_interned", "_values", "keys")

    def __init__(self, keys: list[str]) -> None:
        self.keys = tuple(keys)
        self._values = _getter(self.keys)
        self._interned: dict[tuple[Any, ...], Extra] = {}

    def take(self, raw: dict[str, Any]) -> Extra:
        """The frozen extra of ``raw``; raises :class:`_NotFast` for a nested value."""
        values = self._values(raw)
        if _INTERNABLE.issuperset(map(type, values)):
            extra = self._interned.get(values)
            if extra is None:
                extra = tuple(zip(self.keys, values, strict=True))
                if len(self._interned) >= _INTERN_LIMIT:
                    self._interned.clear()
                self._interned[values] = extra
            return extra
        if _SCALAR_TYPES.issuperset(map(type, values)):
            return tuple(zip(self.keys, values, strict=True))
        raise _NotFast  # nested values are kept as JSON text by the careful path


@dataclass(frozen=True, slots=True)
class _Shape:
    """A row shape's meeting-level and participant-level extras."""

    meeting: _Extras
    participant: _Extras


def _getter(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of ``keys`` in a row, always as a tuple."""
    if not keys:
        return lambda raw: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda raw: (raw[key],)
    return itemgetter(*keys)


class _NotFast(Exception):
    """The fast path does not handle this row (it may still be valid)."""


class _FieldError(ValueError):
    """One field's problem (becomes part of a :class:`RowError` reason)."""


def _identifier(value: object) -> int:
    if isinstance(value, bool):
        raise _FieldError(f"expected a positive integer, got {_show(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise _FieldError(f"expected a positive integer, got {_show(value)}")
    if not 0 < number <= _MAX_ID:
        raise _FieldError(f"expected a positive 64-bit integer, got {number}")
    return number


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _FieldError(f"expected a non-empty string, got {_show(value)}")
    return value


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _FieldError(f"expected a string or null, got {_show(value)}")


def _type_name(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
