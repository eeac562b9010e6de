"""Signals: commands an operator sends through the signals topic, as values (pure).

A signal record's key is its id (UTF-8 text), its value a JSON object ``{"type", "event_id",
"meeting_ids"?, "to"?}``. :func:`parse_signal` turns a record into a :class:`Signal` or a
:class:`BadSignal` (why it cannot be acted on); :func:`act` is what a signal does to an
event's progress, or why it is rejected. Neither does any I/O: the owner of the event
(``connector.sync.signals``) commits the effect, the notification and the "handled" mark
in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from connector.core.notifications import SIGNAL, Notification, NotificationStatus
from connector.core.progress import EventProgress, Phase, Resnapshot


class SignalKind(StrEnum):
    """What a signal asks for (its JSON ``type``)."""

    RESNAPSHOT = "resnapshot"
    CANCEL_RESNAPSHOT = "cancel-resnapshot"
    PAUSE = "pause"
    RESUME = "resume"
    REWIND = "rewind"


#: Kinds this version acts on; the others are rejected "not supported yet".
SUPPORTED = frozenset(SignalKind)

#: Longest signal id accepted (a key longer than this is no id of ours).
MAX_ID_LENGTH = 200
#: How many handled signal ids an event's progress keeps (a repeated id acts once).
REMEMBERED = 50


@dataclass(frozen=True, slots=True)
class Signal:
    """A well-formed signal. ``to`` (rewind): unix seconds."""

    signal_id: str
    kind: SignalKind
    event_id: int
    meeting_ids: tuple[int, ...] = ()
    to: int | None = None


@dataclass(frozen=True, slots=True)
class BadSignal:
    """A signal record that cannot be acted on, and why (it gets a REJECTED notification).

    ``event_id`` and ``kind`` are what could still be read of it (None: nothing)."""

    signal_id: str
    reason: str
    event_id: int | None = None
    kind: str | None = None


def signal_json(
    kind: SignalKind,
    event_id: int,
    *,
    meeting_ids: tuple[int, ...] = (),
    to: datetime | None = None,
) -> bytes:
    """The value of a signal record (what ``meetings-cdc signal`` writes)."""
    body: dict[str, Any] = {"type": str(kind), "event_id": event_id}
    if meeting_ids:
        body["meeting_ids"] = list(meeting_ids)
    if to is not None:
        body["to"] = to.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(body, separators=(",", ":")).encode()


def parse_time(text: str) -> int:
    """Unix seconds of an ISO 8601 date-time (``Z`` or an offset; none means UTC).

    Raises ``ValueError`` naming what is wrong."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'to' is not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_signal(key: bytes | None, value: bytes | None) -> Signal | BadSignal:
    """A signal record as a :class:`Signal`, or a :class:`BadSignal` saying why not."""
    signal_id = _signal_id(key)
    if not signal_id:
        return BadSignal("", "the record has no key (the signal id)")
    if value is None:
        return BadSignal(signal_id, "the record has no value")
    try:
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        return BadSignal(signal_id, f"the value is not JSON: {exc}")
    if not isinstance(body, dict):
        return BadSignal(signal_id, "the value is not a JSON object")
    kind_text = body.get("type")
    event_id = body.get("event_id")
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return BadSignal(
            signal_id, "'event_id' is missing or not an integer", kind=_known(kind_text)
        )
    if not isinstance(kind_text, str):
        return BadSignal(signal_id, "'type' is missing or not a string", event_id)
    try:
        kind = SignalKind(kind_text.strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in SignalKind)
        return BadSignal(signal_id, f"unknown type {kind_text!r} (one of {known})", event_id)
    meeting_ids = body.get("meeting_ids", [])
    if not isinstance(meeting_ids, list) or not all(_is_int(m) for m in meeting_ids):
        return BadSignal(signal_id, "'meeting_ids' is not a list of integers", event_id, kind)
    to: int | None = None
    if "to" in body and body["to"] is not None:
        if not isinstance(body["to"], str):
            return BadSignal(signal_id, "'to' is not a date-time text", event_id, kind)
        try:
            to = parse_time(body["to"])
        except ValueError as exc:
            return BadSignal(signal_id, str(exc), event_id, kind)
    if kind is SignalKind.REWIND and to is None:
        return BadSignal(signal_id, "a rewind needs 'to' (an ISO 8601 date-time)", event_id, kind)
    return Signal(signal_id, kind, event_id, tuple(meeting_ids), to)


@dataclass(frozen=True, slots=True)
class Effect:
    """What a signal did: the event's new progress and what to say about it.

    ``status``: of the signal's notification (a re-snapshot is STARTED: its COMPLETED comes
    with its last part); ``cancelled``: the id of a re-snapshot it cancelled (which gets a
    FAILED notification of its own)."""

    progress: EventProgress
    reason: str | None = None
    status: NotificationStatus = NotificationStatus.COMPLETED
    cancelled: str | None = None


def act(
    signal: Signal, progress: EventProgress, *, api_now: int, settle_seconds: int = 0
) -> Effect | str:
    """The effect of ``signal`` on an event at ``progress``, or why it is rejected.

    ``api_now``: the API's clock (unix seconds); a rewind past it is rejected, a re-snapshot
    re-reads what was created up to it minus ``settle_seconds``."""
    if signal.kind not in SUPPORTED:
        return f"{signal.kind} is not supported yet"
    if signal.kind is SignalKind.PAUSE:
        if progress.paused:
            return Effect(progress, f"already paused (by signal {progress.paused_by})")
        return Effect(replace(progress, paused=True, paused_by=signal.signal_id))
    if signal.kind is SignalKind.RESUME:
        if not progress.paused:
            return Effect(progress, "was not paused")
        return Effect(replace(progress, paused=False, paused_by=None))
    if signal.kind is SignalKind.RESNAPSHOT:
        return _resnapshot(
            signal, progress, max(progress.created_through, api_now - settle_seconds)
        )
    if signal.kind is SignalKind.CANCEL_RESNAPSHOT:
        running = progress.resnapshot
        if running is None:
            return "no re-snapshot runs for the event"
        return Effect(
            replace(progress, resnapshot=None),
            f"cancelled re-snapshot {running.signal_id}",
            cancelled=running.signal_id,
        )
    return _rewind(signal, progress, api_now)


def _resnapshot(signal: Signal, progress: EventProgress, upper: int) -> Effect | str:
    """A re-snapshot of every meeting created up to ``upper``: the API's now minus the settle
    delay, past anything a poll before the signal can have read (its watermarks, either of
    which may have published a new meeting), so a consumer that rebuilds from the STARTED
    notification on misses nothing; what polling has not covered yet it leaves to polling."""
    running = progress.resnapshot
    if running is not None:
        return f"a re-snapshot runs already (signal {running.signal_id})"
    if progress.phase is not Phase.STREAMING:
        return "the event is still in its snapshot: it is being snapshotted already"
    meeting_ids = tuple(sorted(set(signal.meeting_ids)))
    started = Resnapshot(signal.signal_id, upper=upper, meeting_ids=meeting_ids)
    what = f"{len(meeting_ids)} meetings" if meeting_ids else "every meeting"
    return Effect(
        replace(progress, resnapshot=started),
        f"re-reading {what} created up to {_iso(upper)}",
        status=NotificationStatus.STARTED,
    )


def _rewind(signal: Signal, progress: EventProgress, api_now: int) -> Effect | str:
    to = signal.to
    assert to is not None  # noqa: S101 - parse_signal rejects a rewind without 'to'
    if to > api_now:
        return f"rewind into the future: {_iso(to)} is after the API's now ({_iso(api_now)})"
    if progress.phase is not Phase.STREAMING:
        return "the event is still in its snapshot: there is nothing to rewind yet"
    through = to - 1  # every row from ``to`` on is read again
    if through >= progress.created_through and through >= progress.modified_through:
        return Effect(progress, f"the watermarks are already before {_iso(to)}")
    moved = replace(
        progress,
        created_through=min(progress.created_through, through),
        modified_through=min(progress.modified_through, through),
    )
    return Effect(moved, f"watermarks moved back to {_iso(to)}")


@dataclass(frozen=True, slots=True)
class Handler:
    """Who handles signals: one event's owner. ``served``: the connector's events; the
    owner of the lowest one also answers signals that name no event it serves."""

    event_id: int
    served: tuple[int, ...]
    connector: str
    owner: str
    #: ``MEETINGS_CDC_SETTLE_SECONDS``: a re-snapshot re-reads what was created up to the
    #: API's now minus it (what polling may have published when the signal is accepted)
    settle_seconds: int = 0

    @property
    def answers_orphans(self) -> bool:
        """Whether this event's owner rejects the signals no served event owns."""
        return self.event_id == min(self.served)


#: One record of the signals topic: (partition, offset, key, value).
RawSignal = tuple[int, int, bytes | None, bytes | None]


def decide(
    records: list[RawSignal],
    progress: EventProgress,
    handler: Handler,
    *,
    api_now: int,
    at: int,
) -> tuple[EventProgress, list[Notification]]:
    """The event's progress after ``records`` (in topic order) and the notifications they
    get. Signals of other served events are skipped (their owner answers them); the new
    progress always holds the offsets after ``records``, the "handled" mark that goes in
    the same transaction as the effects."""
    offsets = dict(progress.signal_offsets or ())
    notes: list[Notification] = []
    handled = list(progress.handled_signals)

    def note(
        kind: str, status: NotificationStatus, event: int | None, sid: str, why: str | None
    ) -> None:
        notes.append(
            Notification(
                kind, status, event, sid or None, at, handler.connector, handler.owner, why
            )
        )

    for partition, offset, key, value in records:
        offsets[partition] = max(offsets.get(partition, 0), offset + 1)
        parsed = parse_signal(key, value)
        event = parsed.event_id
        served = event in handler.served
        if event != handler.event_id and (served or not handler.answers_orphans):
            continue
        if isinstance(parsed, BadSignal):
            note(
                parsed.kind or SIGNAL,
                NotificationStatus.REJECTED,
                event,
                parsed.signal_id,
                parsed.reason,
            )
            continue
        if not served:
            note(
                parsed.kind,
                NotificationStatus.REJECTED,
                event,
                parsed.signal_id,
                f"event {event} is not served by connector {handler.connector}",
            )
            continue
        if parsed.signal_id in handled:
            note(
                parsed.kind,
                NotificationStatus.REJECTED,
                event,
                parsed.signal_id,
                f"signal id {parsed.signal_id} was already handled",
            )
            continue
        handled = [*handled, parsed.signal_id][-REMEMBERED:]
        outcome = act(parsed, progress, api_now=api_now, settle_seconds=handler.settle_seconds)
        if isinstance(outcome, str):
            note(parsed.kind, NotificationStatus.REJECTED, event, parsed.signal_id, outcome)
            continue
        progress = outcome.progress
        note(parsed.kind, outcome.status, event, parsed.signal_id, outcome.reason)
        if outcome.cancelled is not None:
            note(
                SignalKind.RESNAPSHOT,
                NotificationStatus.FAILED,
                event,
                outcome.cancelled,
                f"cancelled by signal {parsed.signal_id}",
            )
    moved = replace(
        progress, signal_offsets=tuple(sorted(offsets.items())), handled_signals=tuple(handled)
    )
    return moved, notes


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _signal_id(key: bytes | None) -> str:
    if not key:
        return ""
    try:
        text = key.decode("utf-8").strip()
    except UnicodeDecodeError:
        return key.hex()[:MAX_ID_LENGTH]
    return text[:MAX_ID_LENGTH]


def _known(kind: object) -> str | None:
    """``kind`` if it names a :class:`SignalKind` (labels and notifications stay bounded)."""
    try:
        return SignalKind(str(kind).strip().lower()).value if isinstance(kind, str) else None
    except ValueError:
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = [
    "SUPPORTED",
    "BadSignal",
    "Effect",
    "Handler",
    "RawSignal",
    "Signal",
    "SignalKind",
    "act",
    "decide",
    "parse_signal",
    "parse_time",
    "signal_json",
]
