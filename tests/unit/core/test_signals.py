"""Signals as values: parsing, what each does to progress, who answers what."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.notifications import NotificationStatus
from connector.core.progress import EventProgress, Phase, Resnapshot
from connector.core.signals import (
    REMEMBERED,
    BadSignal,
    Effect,
    Handler,
    Signal,
    SignalKind,
    act,
    decide,
    parse_signal,
    signal_json,
)

NOW = 1_800_000_000
PROGRESS = EventProgress(
    event_id=7,
    phase=Phase.STREAMING,
    snapshot_upper=NOW - 1000,
    created_through=NOW - 10,
    modified_through=NOW - 5,
    last_reconcile_at=None,
    updated_at=NOW * 1000,
)
HANDLER = Handler(7, (7, 9), "cdc", "replica-a")


def raw(value: object, key: str = "s1", offset: int = 0) -> tuple[int, int, bytes, bytes]:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return (0, offset, key.encode(), body)


def test_what_the_cli_writes_parses_back() -> None:
    to = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = signal_json(SignalKind.REWIND, 7, meeting_ids=(1, 2), to=to)
    assert parse_signal(b"abc", value) == Signal(
        "abc", SignalKind.REWIND, 7, (1, 2), int(to.timestamp())
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({"type": "pause"}, "'event_id' is missing"),
        ({"type": "pause", "event_id": "7"}, "'event_id' is missing or not an integer"),
        ({"type": "pause", "event_id": True}, "'event_id' is missing or not an integer"),
        ({"type": "explode", "event_id": 7}, "unknown type 'explode'"),
        ({"event_id": 7}, "'type' is missing"),
        ({"type": "rewind", "event_id": 7}, "a rewind needs 'to'"),
        ({"type": "rewind", "event_id": 7, "to": "yesterday"}, "not an ISO 8601"),
        ({"type": "resnapshot", "event_id": 7, "meeting_ids": ["x"]}, "'meeting_ids'"),
    ],
)
def test_malformed_signals_say_why(value: object, reason: str) -> None:
    parsed = parse_signal(b"k", value if isinstance(value, bytes) else json.dumps(value).encode())
    assert isinstance(parsed, BadSignal)
    assert reason in parsed.reason


def test_a_record_without_key_or_value_is_bad() -> None:
    assert isinstance(parse_signal(None, b"{}"), BadSignal)
    assert isinstance(parse_signal(b"k", None), BadSignal)


def test_an_unknown_type_text_never_becomes_a_kind() -> None:
    parsed = parse_signal(b"k", json.dumps({"type": "x" * 500}).encode())
    assert isinstance(parsed, BadSignal)
    assert parsed.kind is None


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_record_parses_to_a_signal_or_a_reason(key: bytes, value: bytes) -> None:
    parsed = parse_signal(key, value)
    assert isinstance(parsed, Signal | BadSignal)


def test_pause_then_resume() -> None:
    paused = act(Signal("p", SignalKind.PAUSE, 7), PROGRESS, api_now=NOW)
    assert isinstance(paused, Effect)
    assert (paused.progress.paused, paused.progress.paused_by) == (True, "p")
    again = act(Signal("p2", SignalKind.PAUSE, 7), paused.progress, api_now=NOW)
    assert isinstance(again, Effect)
    assert again.progress.paused_by == "p"
    resumed = act(Signal("r", SignalKind.RESUME, 7), paused.progress, api_now=NOW)
    assert isinstance(resumed, Effect)
    assert (resumed.progress.paused, resumed.progress.paused_by) == (False, None)


def test_rewind_moves_both_watermarks_back_never_forward() -> None:
    to = NOW - 3600
    effect = act(Signal("w", SignalKind.REWIND, 7, to=to), PROGRESS, api_now=NOW)
    assert isinstance(effect, Effect)
    assert (effect.progress.created_through, effect.progress.modified_through) == (to - 1, to - 1)
    later = act(Signal("w", SignalKind.REWIND, 7, to=NOW - 7), PROGRESS, api_now=NOW)
    assert isinstance(later, Effect)
    assert later.progress.created_through == PROGRESS.created_through
    assert later.progress.modified_through == NOW - 8


def test_rewind_into_the_future_or_during_the_snapshot_is_rejected() -> None:
    assert "future" in str(
        act(Signal("w", SignalKind.REWIND, 7, to=NOW + 60), PROGRESS, api_now=NOW)
    )
    snapshotting = replace(PROGRESS, phase=Phase.SNAPSHOT)
    assert "snapshot" in str(
        act(Signal("w", SignalKind.REWIND, 7, to=NOW - 60), snapshotting, api_now=NOW)
    )


def test_a_resnapshot_covers_what_polls_can_have_read_and_a_second_is_rejected() -> None:
    signal = Signal("r1", SignalKind.RESNAPSHOT, 7, (5, 3, 5))
    effect = act(signal, PROGRESS, api_now=NOW, settle_seconds=3)
    assert isinstance(effect, Effect)
    assert effect.status is NotificationStatus.STARTED  # COMPLETED comes with its last part
    running = effect.progress.resnapshot
    # up to the API's now minus the settle delay: past both watermarks, so nothing a poll
    # published before the signal is left out (a new meeting may come by a modified window)
    assert running == Resnapshot("r1", upper=NOW - 3, meeting_ids=(3, 5))
    assert running.through == -1
    again = act(Signal("r2", SignalKind.RESNAPSHOT, 7), effect.progress, api_now=NOW)
    assert again == "a re-snapshot runs already (signal r1)"
    snapshotting = replace(PROGRESS, phase=Phase.SNAPSHOT)
    assert "snapshot" in str(act(Signal("r3", SignalKind.RESNAPSHOT, 7), snapshotting, api_now=NOW))


def test_a_cancel_clears_the_running_resnapshot_and_fails_it_by_name() -> None:
    assert act(Signal("c0", SignalKind.CANCEL_RESNAPSHOT, 7), PROGRESS, api_now=NOW) == (
        "no re-snapshot runs for the event"
    )
    running = replace(PROGRESS, resnapshot=Resnapshot("r1", upper=NOW - 10, through=NOW - 500))
    progress, notes = decide(
        [raw({"type": "cancel-resnapshot", "event_id": 7}, key="c1")],
        running,
        HANDLER,
        api_now=NOW,
        at=1,
    )
    assert progress.resnapshot is None
    assert [(n.kind, n.status, n.signal_id) for n in notes] == [
        ("cancel-resnapshot", NotificationStatus.COMPLETED, "c1"),
        ("resnapshot", NotificationStatus.FAILED, "r1"),
    ]
    assert notes[1].reason == "cancelled by signal c1"


@given(st.dictionaries(st.sampled_from(["snapshot", "changed", "deleted"]), st.integers(0, 9)))
def test_resnapshot_counts_add_up(more: dict[str, int]) -> None:
    start = Resnapshot("r", upper=1, counts=(("snapshot", 4),))
    total = dict(start.counted(more).counted(more).counts)
    assert total.get("snapshot", 0) == 4 + 2 * more.get("snapshot", 0)
    for name in ("changed", "deleted"):
        assert total.get(name, 0) == 2 * more.get(name, 0)


def test_decide_acts_on_its_own_event_and_records_the_offsets() -> None:
    progress, notes = decide(
        [raw({"type": "pause", "event_id": 7}, offset=4)], PROGRESS, HANDLER, api_now=NOW, at=1
    )
    assert progress.paused
    assert progress.signal_offsets == ((0, 5),)
    assert progress.handled_signals == ("s1",)
    assert [(n.kind, n.status, n.signal_id) for n in notes] == [
        ("pause", NotificationStatus.COMPLETED, "s1")
    ]


def test_another_served_events_signal_is_left_to_its_owner() -> None:
    progress, notes = decide(
        [raw({"type": "pause", "event_id": 9}, offset=2)], PROGRESS, HANDLER, api_now=NOW, at=1
    )
    assert notes == []
    assert not progress.paused
    assert progress.signal_offsets == ((0, 3),)  # skipped, and not read again


def test_orphans_are_rejected_once_by_the_lowest_events_owner() -> None:
    records = [
        raw({"type": "pause", "event_id": 12345}, "a", 0),
        raw(b"garbage", "b", 1),
        raw({"type": "pause"}, "c", 2),
    ]
    _, notes = decide(records, PROGRESS, HANDLER, api_now=NOW, at=1)
    assert [(n.signal_id, n.status) for n in notes] == [
        ("a", NotificationStatus.REJECTED),
        ("b", NotificationStatus.REJECTED),
        ("c", NotificationStatus.REJECTED),
    ]
    assert "not served" in str(notes[0].reason)
    other = replace(HANDLER, event_id=9)
    _, none = decide(records, replace(PROGRESS, event_id=9), other, api_now=NOW, at=1)
    assert none == []


def test_a_signal_id_written_twice_acts_once() -> None:
    first = raw({"type": "pause", "event_id": 7}, "same", 0)
    resume = raw({"type": "resume", "event_id": 7}, "r", 1)
    again = raw({"type": "pause", "event_id": 7}, "same", 2)
    progress, notes = decide([first, resume, again], PROGRESS, HANDLER, api_now=NOW, at=1)
    assert not progress.paused
    assert [n.status for n in notes] == [
        NotificationStatus.COMPLETED,
        NotificationStatus.COMPLETED,
        NotificationStatus.REJECTED,
    ]
    assert "already handled" in str(notes[2].reason)


def test_handled_ids_are_bounded() -> None:
    records = [raw({"type": "resume", "event_id": 7}, f"id{i}", i) for i in range(REMEMBERED + 5)]
    progress, _ = decide(records, PROGRESS, HANDLER, api_now=NOW, at=1)
    assert len(progress.handled_signals) == REMEMBERED
    assert progress.handled_signals[-1] == f"id{REMEMBERED + 4}"
