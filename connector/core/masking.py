"""Field rules: personal data hashed, redacted or dropped before anything keeps it (pure).

``MEETINGS_CDC_FIELD_RULES`` is a list of ``FIELD=ACTION``. FIELD names a meeting field
(``notes``, ``location``...) or, as ``participant.email``, a participant field; ACTION is

- ``hash``: ``hmac-sha256:`` and the hex HMAC-SHA-256 of the value under
  ``MEETINGS_CDC_FIELD_HASH_KEY`` (a string as its UTF-8 text, a number or boolean as its
  JSON text): equal values stay equal across meetings and restarts, a changed value is
  still a change, and no one without the key can test a guess;
- ``redact``: the value replaced by :data:`REDACTED` (null stays null);
- ``drop``: the field left out of the record.

Only fields that are personal data or free text may be named: the meeting's ``location``
and unmodelled fields (the export's ``title``, ``meeting_type``, ``notes``, ``duration``;
a participant's ``first_name``, ``last_name``, ``email``, ``company``, ``job_title``).
The other modelled fields identify the meeting, decide its change type or are typed,
required fields of the ``Meeting`` schema: rules naming them are refused, saying why
(:data:`REFUSED`), and so is ``location=drop`` (the schema has no way to leave it out).

The source applies a :class:`Masker` as each row is parsed (``connector.source.rows``), so
nothing downstream (diff, state, events, dead letters, logs, CLI output) sees a clear value.
Masking is idempotent: a value already hashed (the ``hmac-sha256:`` form) or redacted is
kept as it is.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from connector.core.model import Extra, Meeting, Participant, Scalar

PARTICIPANT_PREFIX = "participant."
#: What ``redact`` leaves of a value (null stays null).
REDACTED = "[redacted]"
#: How a hashed value starts: it tells a hashed value from a clear one (idempotence).
HASH_PREFIX = "hmac-sha256:"
_HASHED = re.compile(r"hmac-sha256:[0-9a-f]{64}")
#: The text whose HMAC under the key tells, without the key, whether the key changed.
_KEY_CHECK_TEXT = b"meetings-cdc field hash key check v1"
#: Clear values whose hash is remembered (emails repeat across an event's meetings).
_HASH_CACHE_LIMIT = 65_536

#: Meeting fields a rule may name (``location`` is modelled; the others go to ``extra``).
MEETING_FIELDS = frozenset({"location", "title", "meeting_type", "notes", "duration"})
#: Participant fields a rule may name (as ``participant.<name>``; all go to ``extra``).
PARTICIPANT_FIELDS = frozenset({"first_name", "last_name", "email", "company", "job_title"})

_IDENTITY = "identifies the meeting (the record key) and is not personal data"
_TIME = "is a timestamp the Meeting schema requires (a long) and decides RESCHEDULED"
#: Modelled fields no rule may name, and why.
REFUSED: Mapping[str, str] = {
    "meeting_id": _IDENTITY,
    "event_id": _IDENTITY,
    "status": "decides the change type (CANCELLED, CONFIRMED...) and is required by the "
    "Meeting schema",
    "start_at": _TIME,
    "end_at": _TIME,
    "created_at": "is a timestamp the Meeting schema requires (a long)",
    "modified_at": "is a timestamp the Meeting schema requires (a long)",
    "participants": "holds the participants: name their fields, e.g. participant.email",
    "participant.account_id": "identifies the participant (participants are sorted and "
    "compared by it) and is a long the Participant schema requires",
    "participant.role": "is required by the Participant schema and is not personal data",
    "participant.status": "decides PARTICIPANTS_CHANGED, is required by the Participant "
    "schema and is not personal data",
}
#: (field, action) pairs refused although both are known, and why.
_REFUSED_ACTIONS: Mapping[tuple[str, str], str] = {
    ("location", "drop"): "location is a field of the Meeting schema, which cannot leave it "
    "out; use redact (null stays null) or hash",
}


class Action(StrEnum):
    """What a rule does to its field."""

    HASH = "hash"
    REDACT = "redact"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One rule: ``field`` of the meeting (``participant`` False) or of each participant."""

    field: str
    participant: bool
    action: Action

    @property
    def name(self) -> str:
        """The field as a rule names it: ``notes``, ``participant.email``."""
        return PARTICIPANT_PREFIX + self.field if self.participant else self.field

    @property
    def text(self) -> str:
        """The rule as written: ``participant.email=hash``."""
        return f"{self.name}={self.action}"


class RuleError(ValueError):
    """A rule that cannot be taken; ``unknown`` is the name to suggest a valid one for."""

    def __init__(self, rule: str, problem: str, unknown: str | None = None) -> None:
        super().__init__(f"rule {rule!r}: {problem}")
        self.rule = rule
        self.unknown = unknown


#: Every name a rule may give, for suggestions: ``notes``, ``participant.email``...
VALID_NAMES = MEETING_FIELDS | {PARTICIPANT_PREFIX + f for f in PARTICIPANT_FIELDS}
VALID_ACTIONS = frozenset(a.value for a in Action)


@dataclass(frozen=True, slots=True)
class FieldRules:
    """The rules, sorted by field name, each field named once. Empty: nothing is masked."""

    rules: tuple[FieldRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def text(self) -> str:
        """The canonical form, ``notes=drop,participant.email=hash``: its fingerprint."""
        return ",".join(r.text for r in self.rules)

    @property
    def needs_key(self) -> bool:
        """Whether a rule hashes (a key is then required)."""
        return any(r.action is Action.HASH for r in self.rules)

    def actions(self, *, participant: bool) -> dict[str, Action]:
        """The meeting's (or each participant's) field -> action."""
        return {r.field: r.action for r in self.rules if r.participant is participant}


def parse_rule(text: str) -> FieldRule:
    """``FIELD=ACTION`` as a :class:`FieldRule`; :class:`RuleError` says what is wrong."""
    name, sep, action = (part.strip() for part in text.partition("="))
    if not sep or not name or not action:
        raise RuleError(text, "must be FIELD=ACTION (ACTION one of hash, redact, drop)")
    return rule_of(name, action, text)


def rule_of(name: str, action: str, text: str | None = None) -> FieldRule:
    """The rule for ``name`` and ``action``; :class:`RuleError` names what is wrong."""
    text = text or f"{name}={action}"
    if action not in VALID_ACTIONS:
        raise RuleError(text, f"unknown action {action!r}: use hash, redact or drop")
    if name in REFUSED:
        raise RuleError(text, f"{name} cannot be masked: it {REFUSED[name]}")
    if name not in VALID_NAMES:
        raise RuleError(text, f"unknown field {name}", unknown=name)
    refused = _REFUSED_ACTIONS.get((name, action))
    if refused:
        raise RuleError(text, refused)
    participant = name.startswith(PARTICIPANT_PREFIX)
    field = name[len(PARTICIPANT_PREFIX) :] if participant else name
    return FieldRule(field, participant, Action(action))


def parse_rules(items: Iterable[str | tuple[str, str]]) -> FieldRules:
    """Rules from ``FIELD=ACTION`` texts or (field, action) pairs; each field once."""
    rules: dict[str, FieldRule] = {}
    for item in items:
        rule = parse_rule(item) if isinstance(item, str) else rule_of(*item)
        if rule.name in rules:
            raise RuleError(rule.text, f"{rule.name} has another rule already")
        rules[rule.name] = rule
    return FieldRules(tuple(rules[name] for name in sorted(rules)))


def key_check(key: bytes) -> str:
    """What identifies a hash key without revealing it: the HMAC of a fixed text, 32 hex.

    HMAC-SHA-512, not the fields' SHA-256: no field value can hash to it.
    """
    return hmac.digest(key, _KEY_CHECK_TEXT, "sha512").hex()[:32]


class Masker:
    """Applies :class:`FieldRules` with their hash key to values, extras, meetings and raw rows.

    Its ``repr`` never shows the key. Hashes of strings are remembered (bounded): the same
    participant's email recurs across the meetings of an event.
    """

    __slots__ = ("_hashes", "_key", "meeting_actions", "participant_actions", "rules")

    def __init__(self, rules: FieldRules, key: bytes | None = None) -> None:
        if rules.needs_key and not key:
            raise ValueError("a hash rule needs a key")
        self.rules = rules
        self._key = key or b""
        self._hashes: dict[str, str] = {}
        self.meeting_actions = rules.actions(participant=False)
        self.participant_actions = rules.actions(participant=True)

    def __repr__(self) -> str:
        return f"Masker({self.rules.text!r})"

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def key_check(self) -> str | None:
        """:func:`key_check` of the key when a rule hashes, else None (it does not matter)."""
        return key_check(self._key) if self.rules.needs_key else None

    # --- values ---------------------------------------------------------------------------

    def function(self, action: Action) -> Callable[[Any], Scalar]:
        """What ``action`` does to one scalar value (never to a dropped one)."""
        if action is Action.HASH:
            return self.hash
        if action is Action.REDACT:
            return redact
        raise ValueError(f"{action} has no value: the field is left out")

    def hash(self, value: Any) -> Scalar:
        """``value`` hashed (null stays null; an already hashed value stays as it is)."""
        if value is None:
            return None
        if type(value) is str:
            known = self._hashes.get(value)
            if known is not None:
                return known
            if _HASHED.fullmatch(value):
                return value
            text = value
        else:
            text = json.dumps(value)  # a number or boolean: its JSON text
        digest = HASH_PREFIX + hmac.digest(self._key, text.encode(), "sha256").hex()
        if type(value) is str:
            if len(self._hashes) >= _HASH_CACHE_LIMIT:
                self._hashes.clear()
            self._hashes[value] = digest
        return digest

    def mask_extra(self, extra: Extra, actions: Mapping[str, Action]) -> Extra:
        """``extra`` with ``actions`` applied (its order kept)."""
        if not actions:
            return extra
        masked: list[tuple[str, Scalar]] = []
        for key, value in extra:
            action = actions.get(key)
            if action is None:
                masked.append((key, value))
            elif action is not Action.DROP:
                masked.append((key, self.function(action)(value)))
        return tuple(masked)

    def location(self, value: str | None) -> str | None:
        """The meeting's location with its rule applied (``drop`` is refused for it)."""
        action = self.meeting_actions.get("location")
        if action is None or value is None:
            return value
        masked = self.function(action)(value)
        assert masked is None or isinstance(masked, str)  # noqa: S101 - str in, str out
        return masked

    # --- records ----------------------------------------------------------------------------

    def participant(self, participant: Participant) -> Participant:
        """``participant`` with the participant rules applied."""
        if not self.participant_actions:
            return participant
        return replace(
            participant, extra=self.mask_extra(participant.extra, self.participant_actions)
        )

    def meeting(self, meeting: Meeting) -> Meeting:
        """``meeting`` with every rule applied (what the source hands on for it)."""
        if not self.rules:
            return meeting
        return replace(
            meeting,
            location=self.location(meeting.location),
            participants=tuple(self.participant(p) for p in meeting.participants),
            extra=self.mask_extra(meeting.extra, self.meeting_actions),
        )

    def raw_row(self, raw: object, raw_keys: Mapping[str, Action]) -> object:
        """A raw export row (a dead letter's) with the rules applied by its keys.

        ``raw_keys``: row key -> action (a row is flat: meeting and participant keys side
        by side). A row that is not a JSON object has no fields to tell apart: with any
        rule, none of it is kept (None). Nested values are hashed as their JSON text, the
        form ``extra`` keeps them in.
        """
        if not self.rules:
            return raw
        if type(raw) is not dict:
            return None
        masked: dict[Any, Any] = {}
        for key, value in raw.items():
            action = raw_keys.get(key) if type(key) is str else None
            if action is None:
                masked[key] = value
            elif action is Action.REDACT:
                masked[key] = redact(value)
            elif action is Action.HASH:
                masked[key] = self.hash(value if _is_scalar(value) else _json_text(value))
        return masked


def redact(value: object) -> Scalar:
    """:data:`REDACTED` for any value but null."""
    return None if value is None else REDACTED


def _is_scalar(value: object) -> bool:
    return value is None or type(value) in (str, int, float, bool)


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return repr(value)


NO_MASKING = Masker(FieldRules())


def rules_problem(
    event_id: int, stored_rules: str | None, stored_key_check: str | None, masker: Masker
) -> str | None:
    """Why event ``event_id``'s state, written under ``stored_rules`` (and a key whose check is
    ``stored_key_check``) cannot go on under ``masker``, naming the setting; None if it can.

    State and events keep masked values: under other rules (or another hash key), every
    meeting would differ from its stored version by the masking alone, a flood of spurious
    change events. Changing them is a deliberate step (README, "Personal data").
    """
    configured = masker.rules.text or None
    if stored_rules != configured:
        return (
            f"MEETINGS_CDC_FIELD_RULES: the state of event {event_id} was written under "
            f"{_shown(stored_rules)}, not the configured {_shown(configured)}; changing the "
            "rules needs a new state (README, 'Personal data')"
        )
    if masker.key_check is not None and stored_key_check != masker.key_check:
        return (
            f"MEETINGS_CDC_FIELD_HASH_KEY: the hashes in the state of event {event_id} were "
            "made with another key; "
            "rotating the key needs a new state (README, 'Personal data')"
        )
    return None


def _shown(rules: str | None) -> str:
    return f"field rules {rules!r}" if rules else "no field rules"
