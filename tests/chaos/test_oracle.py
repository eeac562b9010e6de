"""The oracle itself, on synthetic histories: it passes a correct run and catches each
planted violation (loss, duplicate, misclassification, phantom, unexplained dead letter)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.changes import ChangeEvent, SourceInfo, classify
from connector.core.model import Meeting, Participant
from connector.serde import Serdes, SingleObjectFraming
from tests.chaos.oracle import Timing, Verdict, dead_letter_problems, judge

SERDES = Serdes(SingleObjectFraming())
T = 1_800_000_000
EVENT = 1


def admin(mid: int, version: int, at: int, **changes: Any) -> dict[str, Any]:
    meeting = {
        "meeting_id": mid,
        "event_id": EVENT,
        "status": "pending",
        "start": T + 86_400,
        "end": T + 86_400 + 1800,
        "duration_minutes": 30,
        "location": "Hall A",
        "title": "Intro",
        "meeting_type": "one-to-one",
        "notes": None,
        "created_at": T,
        "updated_at": at,
        "version": version,
        "participants": [
            {"account_id": 10, "role": "requester", "status": "accepted"},
            {"account_id": 20, "role": "invitee", "status": "pending"},
        ],
    }
    meeting.update(changes)
    meeting["end"] = meeting["start"] + meeting["duration_minutes"] * 60
    return meeting


def entry(meeting: dict[str, Any] | None, mid: int, version: int, at: int, kind: str):
    return {
        "meeting_id": mid,
        "event_id": EVENT,
        "version": version,
        "at": at,
        "kind": kind,
        "meeting": meeting,
    }


def to_meeting(a: dict[str, Any]) -> Meeting:
    return Meeting(
        event_id=a["event_id"],
        meeting_id=a["meeting_id"],
        status=a["status"],
        start_at=a["start"] * 1000,
        end_at=a["end"] * 1000,
        location=a["location"],
        created_at=a["created_at"] * 1000,
        modified_at=a["updated_at"] * 1000,
        participants=tuple(
            Participant(p["account_id"], p["role"], p["status"], (("first_name", "Ada"),))
            for p in a["participants"]
        ),
        extra=(
            ("duration", a["duration_minutes"]),
            ("meeting_type", a["meeting_type"]),
            ("notes", a["notes"]),
            ("title", a["title"]),
        ),
    )


def publish(versions: list[dict[str, Any] | None], *, snapshot: bool = True) -> list[dict]:
    """The events a correct connector publishes when it observes ``versions`` in order."""
    events: list[dict] = []
    before: Meeting | None = None
    for number, version in enumerate(versions, 1):
        after = None if version is None else to_meeting(version)
        first = number == 1 and snapshot
        change = classify(before, after, snapshot=first)
        assert change is not None
        mid = (after or before).meeting_id  # type: ignore[union-attr]
        event = ChangeEvent(
            event_id=EVENT,
            meeting_id=mid,
            change=change,
            modified_at=(after or before).modified_at,  # type: ignore[union-attr]
            detected_at=0,
            version=number,
            source=SourceInfo("c", "0", "snapshot" if first else "modified", 0, 0),
        )
        events.append(SERDES.decode_change(SERDES.encode_change(event)))
        before = after
    return events


#: A committed cycle every 2 s from T to T + 1000.
CYCLES = tuple((float(t), float(t + 2)) for t in range(T, T + 1000, 2))
TIMING = Timing(settle=1, end=T + 1000, cycles=CYCLES, snapshot_before=T + 5)


def world() -> tuple[list[dict], list[dict], list[dict]]:
    """Meeting 1: seeded, confirmed, rescheduled twice within a second (merged), cancelled.
    Meeting 2: created later, deleted. Returns (history, truth, events)."""
    m1 = [
        admin(1, 1, T),
        admin(1, 2, T + 100, status="confirmed"),
        admin(1, 3, T + 200, status="confirmed", start=T + 90_000),
        admin(1, 4, T + 201, status="confirmed", start=T + 93_600),  # replaced after 1 s
        admin(1, 5, T + 300, status="cancelled", start=T + 93_600),
    ]
    m2 = [admin(2, 1, T + 400, created_at=T + 400), admin(2, 2, T + 500, created_at=T + 400)]
    history = [
        entry(m, 1, i, m["updated_at"], "seeded" if i == 1 else "updated")
        for i, m in enumerate(m1, 1)
    ]
    history += [
        entry(m, 2, i, m["updated_at"], "created" if i == 1 else "updated")
        for i, m in enumerate(m2, 1)
    ]
    history.append(entry(None, 2, 3, T + 600, "deleted"))
    events = publish([m1[0], m1[1], m1[3], m1[4]])  # m1[2] lived 1 s: polling merged it
    events += publish([m2[0], m2[1], None], snapshot=False)
    return history, [m1[-1]], events


def test_a_correct_run_passes() -> None:
    history, truth, events = world()
    verdict = judge(history, events, truth, TIMING)
    assert verdict.ok, verdict.summary()
    assert (verdict.meetings, verdict.upstream_versions, verdict.published) == (2, 7, 7)
    assert verdict.must_observe == 6  # every version but the one that lived one second


def test_events_of_two_meetings_may_interleave() -> None:
    history, truth, events = world()
    mixed = [events[4], events[0], events[5], events[1], events[2], events[6], events[3]]
    assert judge(history, mixed, truth, TIMING).ok


def _with(events: list[dict], index: int, **changes: Any) -> list[dict]:
    copy = json.loads(json.dumps(events))
    copy[index].update(changes)
    return copy


def test_catches_a_lost_final_version() -> None:
    history, truth, events = world()
    verdict = judge(history, events[:3] + events[4:], truth, TIMING)
    assert any("final version" in line for line in verdict.lost), verdict.summary()


def test_catches_a_lost_long_lived_version_with_a_gap() -> None:
    history, truth, events = world()
    dropped = events[:1] + events[2:]  # CONFIRMED (current for 100 s) lost
    verdict = judge(history, dropped, truth, TIMING)
    assert any("version 2 current from" in line for line in verdict.lost), verdict.summary()
    assert any("gap" in line for line in verdict.lost)


def test_a_version_current_only_while_the_connector_was_down_may_be_merged() -> None:
    history, truth, _ = world()
    m1 = [e["meeting"] for e in history if e["meeting_id"] == 1]
    events = publish([m1[0], m1[3], m1[4]])  # CONFIRMED (T+100..T+200) never seen
    m2 = [e["meeting"] for e in history if e["meeting_id"] == 2]
    events += publish([m2[0], m2[1], None], snapshot=False)
    up = tuple((a, b) for a, b in CYCLES if not T + 90 <= b <= T + 210)  # down meanwhile
    down = dataclasses.replace(TIMING, cycles=up)
    assert judge(history, events, truth, down).ok
    assert not judge(history, events, truth, TIMING).ok  # while up, it must be seen


def test_catches_a_missing_delete() -> None:
    history, truth, events = world()
    verdict = judge(history, events[:-1], truth, TIMING)
    assert any("deleted upstream" in line for line in verdict.lost), verdict.summary()


def test_catches_a_meeting_never_published() -> None:
    history, truth, events = world()
    verdict = judge(history, [e for e in events if e["meeting_id"] != 1], truth, TIMING)
    assert any("meeting 1: final version" in line for line in verdict.lost)


def test_catches_a_duplicate_event() -> None:
    history, truth, events = world()
    verdict = judge(history, [*events[:2], events[1], *events[2:]], truth, TIMING)
    assert any("published twice" in line for line in verdict.duplicated), verdict.summary()


def test_catches_the_same_version_republished_under_a_new_number() -> None:
    history, truth, _ = world()
    m1 = [e["meeting"] for e in history if e["meeting_id"] == 1]
    events = publish([m1[0], m1[1], m1[3], m1[4]])
    # A connector that forgot its state re-publishes v2's content as a CONFIRMED v3.
    again = _with(events, 1, version=3, before=events[1]["after"])
    again = [
        *events[:2],
        again[1],
        *[_with([e], 0, version=e["version"] + 1)[0] for e in events[2:]],
    ]
    verdict = judge(history, again, truth, TIMING)
    assert any("published again" in line for line in verdict.duplicated), verdict.summary()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"change_type": "UPDATED"}, "expected CONFIRMED"),
        ({"changed_fields": ["status", "location"]}, "expected CONFIRMED ['status']"),
    ],
)
def test_catches_a_misclassification(changes: dict[str, Any], expected: str) -> None:
    history, truth, events = world()
    verdict = judge(history, _with(events, 1, **changes), truth, TIMING)
    assert any(expected in line for line in verdict.misclassified), verdict.summary()
    assert verdict.lost == verdict.duplicated == verdict.phantom == []


def test_catches_a_wrong_before() -> None:
    history, truth, events = world()
    verdict = judge(history, _with(events, 2, before=events[0]["after"]), truth, TIMING)
    assert any("before is not" in line for line in verdict.misclassified), verdict.summary()


def test_catches_created_for_a_meeting_that_existed_before_the_start() -> None:
    history, truth, events = world()
    created = _with(
        events, 0, change_type="CREATED", source={**events[0]["source"], "window_kind": "created"}
    )
    verdict = judge(history, created, truth, TIMING)
    assert any("not SNAPSHOT" in line for line in verdict.misclassified), verdict.summary()


def test_catches_content_the_api_never_had() -> None:
    history, truth, events = world()
    wrong = json.loads(json.dumps(events))
    wrong[1]["after"]["location"] = "Hall Z"
    wrong[2]["before"]["location"] = "Hall Z"
    verdict = judge(history, wrong, truth, TIMING)
    assert any("no version the API had" in line for line in verdict.phantom), verdict.summary()


def test_catches_a_delete_of_a_live_meeting() -> None:
    history, truth, events = world()
    m1 = [e["meeting"] for e in history if e["meeting_id"] == 1]
    deleted = publish([m1[0], m1[1], m1[3], m1[4], None])
    verdict = judge(history, deleted + events[4:], truth, TIMING)
    assert any("never deleted" in line for line in verdict.phantom), verdict.summary()
    assert any("final version" in line for line in verdict.lost)


def test_summary_lists_each_kind() -> None:
    verdict = Verdict(lost=["a"], duplicated=["b", "c"])
    assert verdict.summary() == "lost (1):\n  a\nduplicated (2):\n  b\n  c"
    assert Verdict().summary() == "no violation"


def test_dead_letters_must_be_injected_bad_rows() -> None:
    bad = {"raw": json.dumps({"meeting_id": 1, "account_id": "x", "start_time": "x"})}
    good = {"raw": json.dumps({"meeting_id": 1, "account_id": 3, "start_time": "x"})}
    assert dead_letter_problems([bad], injected_bad_rows=1) == []
    assert len(dead_letter_problems([bad, bad], injected_bad_rows=1)) == 1
    assert "did not corrupt" in dead_letter_problems([good], injected_bad_rows=5)[0]


def test_commits_of_one_cycle_are_never_a_pair_of_cycles() -> None:
    """An incremental cycle commits its fresh seconds, then (late rows found) its look-back:
    those two commits bracket no fresh read, so they must not count as consecutive cycles.
    A pass runs beside polling (issue 14): an incremental cycle that began before the
    pass's commit did not read after it."""
    from tests.chaos.runner import Run, committed_cycles

    def line(second: float, msg: str, cycle: str, seconds: float) -> str:
        stamp = datetime.fromtimestamp(T + second, UTC).isoformat()
        return json.dumps(
            {"ts": stamp, "msg": msg, "phase": "streaming", "cycle": cycle, "seconds": seconds}
        )

    log = "\n".join(
        [
            line(0, "cycle committed", "incremental", 0.5),  # fresh seconds of cycle 1
            line(1, "cycle committed", "incremental", 1.5),  # its look-back
            line(2, "cycle committed", "incremental", 0.5),  # cycle 2, began at 1.5
            line(3, "cycle committed", "incremental", 0.5),
            line(4, "cycle committed", "incremental", 1.5),
            line(4.2, "cycle committed", "reconcile", 9.0),  # a pass's commit
            line(4.3, "reconciliation complete", "reconcile", 9.1),
            line(5, "cycle committed", "incremental", 1.0),  # began at 4: before the pass's
            line(6, "cycle committed", "incremental", 0.5),
        ]
    )
    pairs = committed_cycles([Run(started=T, log=log)], excluded=[])

    # (T + 2, T + 4): cycle 3's look-back, which began after T + 2 as its fresh commit did
    assert pairs == [(T + 1, T + 2), (T + 2, T + 3), (T + 2, T + 4), (T + 4, T + 5), (T + 5, T + 6)]


def test_versions_after_a_clock_step_are_judged_on_the_clock_before_it() -> None:
    import collections

    from tests.chaos.runner import _before_steps

    history = [
        {"meeting_id": 1, "version": 1, "at": 1000},
        {"meeting_id": 1, "version": 2, "at": 890},  # after the clock went back 120 s
        {"meeting_id": 2, "version": 1, "at": 895},  # created after it
    ]
    steps = [(0.0, -120, collections.Counter({1: 1}))]
    assert [e["at"] for e in _before_steps(history, steps)] == [1000, 1010, 1015]
