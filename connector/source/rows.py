"""Field mapping: one raw export row -> :class:`ParsedRow`, or a precise :class:`RowError` (pure).

A row is one participant of a meeting (``docs/architecture.md``, "The export row format").
:class:`FieldMapping` names the keys; its defaults match the simulator. Date-times become
UTC epoch milliseconds (:mod:`connector.source.row_times`: the accepted forms, and the local
times a daylight-saving fall-back repeats); the other fields are checked by
:mod:`connector.source.row_fields`. Keys the mapping does not model are kept: the configured
meeting-level ones in the meeting's ``extra``, every other one in the participant's
(:mod:`connector.source.row_shapes`).

The field rules (``MEETINGS_CDC_FIELD_RULES``, :mod:`connector.core.masking`) are applied
here, on both paths, as each row is parsed: a :class:`ParsedRow` never holds a masked field
in clear, nor does a :class:`RowError`'s reason or ``known``, nor the raw row a dead letter
keeps (:meth:`RowParser.dead_letter_raw`). Everything downstream sees masked values only.

Parsing never raises anything but :class:`RowError` (a :class:`MalformedRowError`),
whatever JSON value it is given; the reader turns those into :class:`DeadLetter` records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from operator import itemgetter
from typing import Any, NamedTuple

from connector.core.kinds import WindowKind
from connector.core.masking import NO_MASKING, Action, Masker
from connector.core.model import Extra, Participant, freeze_extra
from connector.errors import MalformedRowError
from connector.source.row_fields import (
    MAX_ID,
    FieldError,
    identifier,
    nonempty_text,
    optional_text,
    type_name,
)
from connector.source.row_shapes import NotFast, Shapes
from connector.source.row_times import DateTimes
from connector.source.windows import Window


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


class ParsedRow(NamedTuple):
    """One valid row: the meeting-level fields it carries plus its participant.

    A named tuple, not a frozen dataclass: one is made per row of every read, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~0.8 us
    more per row (issue 17).
    """

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
        """Every meeting-level value (event id to meeting extra): all rows of one meeting
        version agree on these."""
        return self[1:9]


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
    """Maps raw rows with one :class:`FieldMapping` and time zone (caches parsed times and
    row shapes).

    Date-times are a :class:`~connector.source.row_times.DateTimes` of ``zone``; a
    repeated local time is resolved per row, from the window the row was read for: the same
    text is a different instant in another context. ``masker`` applies the field rules to
    every row. For the fast path, its caches and methods are bound here once (attribute
    reads, not method lookups, per row).
    """

    def __init__(
        self,
        mapping: FieldMapping | None = None,
        zone: tzinfo = UTC,
        masker: Masker = NO_MASKING,
    ) -> None:
        self.mapping = mapping or FieldMapping()
        self.zone = zone
        self.masker = masker
        self._dates = dates = DateTimes(zone)
        self._times = dates.times  # shared, never replaced: texts of one instant only
        self._folds = dates.folds  # shared, never replaced: texts of a repeated local time
        self._millis = dates.millis
        self._resolve = dates.resolve
        self._modelled = self.mapping.modelled()
        shapes = Shapes(self._modelled, self.mapping.meeting_extra_keys, masker)
        self._shapes = shapes.known  # shared, never replaced
        self._shape = shapes.add
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
        # The rules by row key (a row is flat): for raw rows and for what a reason quotes.
        self._raw_actions: dict[str, Action] = {
            **masker.participant_actions,
            **masker.meeting_actions,
        }
        if "location" in masker.meeting_actions:
            self._raw_actions[m.location] = self._raw_actions.pop("location")
        self._mask_location = masker.location if m.location in self._raw_actions else None

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
            except (NotFast, KeyError, TypeError, ValueError):
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
            or not (0 < meeting_id <= MAX_ID and 0 < event_id <= MAX_ID)
            or not 0 < account_id <= MAX_ID
            or (expected_event_id is not None and event_id != expected_event_id)
            or type(status) is not str
            or type(role) is not str
            or type(participant_status) is not str
            or not (status and role and participant_status)
            or (location is not None and type(location) is not str)
        ):
            raise NotFast
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
        if self._mask_location is not None:
            location = self._mask_location(location)
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

    def _parse_careful(
        self, raw: object, expected_event_id: int | None, window: Window | None = None
    ) -> ParsedRow:
        """Every field checked, every problem collected into one :class:`RowError`."""
        if not isinstance(raw, dict):
            raise RowError(f"row is not a JSON object (got {type_name(raw)})", None, {})
        m = self.mapping
        errors: list[str] = []
        known: dict[str, object] = {}
        masked_keys = self._raw_actions

        def take(name: str, key: str, convert: Any, *args: object) -> Any:
            if key not in raw:
                errors.append(f"{key}: missing")
                return None
            try:
                value = convert(raw[key], *args)
            except FieldError as exc:
                if key in masked_keys:  # the reason must not quote a masked value
                    errors.append(
                        f"{key}: not valid, got {type_name(raw[key])} (the value is withheld "
                        "by the field rules)"
                    )
                else:
                    errors.append(f"{key}: {exc}")
                return None
            known[name] = value
            return value

        meeting_id = take("meeting_id", m.meeting_id, identifier)
        event_id = take("event_id", m.event_id, identifier)
        status = take("status", m.status, nonempty_text)
        start_at = take("start_at", m.start_at, self._millis)
        end_at = take("end_at", m.end_at, self._millis)
        location = take("location", m.location, optional_text)
        if self._mask_location is not None and "location" in known:
            location = known["location"] = self._mask_location(location)
        created_at = take("created_at", m.created_at, self._millis)
        modified_at = take("modified_at", m.modified_at, self._millis)
        account_id = take("account_id", m.account_id, identifier)
        role = take("role", m.role, nonempty_text)
        participant_status = take("participant_status", m.participant_status, nonempty_text)
        if expected_event_id is not None and event_id is not None and event_id != expected_event_id:
            errors.append(f"{m.event_id}: {event_id} is not the requested {expected_event_id}")
            known.pop("event_id", None)
        meeting_extra: dict[str, object] = {}
        participant_extra: dict[str, object] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                errors.append(f"row has a non-string key {key!r}")
            elif masked_keys.get(key) is Action.DROP:
                continue
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
            masker = self.masker
            frozen_meeting = masker.mask_extra(frozen_meeting, masker.meeting_actions)
            frozen_participant = masker.mask_extra(frozen_participant, masker.participant_actions)
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

    def dead_letter_raw(self, raw: object) -> str:
        """The JSON text a dead letter keeps of ``raw``: the row with the field rules applied
        by key (a row that is not an object, with any rule: ``null``, nothing of it)."""
        return raw_text(self.masker.raw_row(raw, self._raw_actions))

    def second_of(self, raw: object, kind: WindowKind, window: Window | None = None) -> int | None:
        """The row's created or modified unix second (inside ``window`` when one of its
        instants is), or None when it cannot be read."""
        if not isinstance(raw, dict):
            return None
        return self._dates.second_of(raw.get(self.mapping.time_key(kind)), window)
