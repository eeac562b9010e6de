"""``version`` never repeats for a meeting (issue 34): across deletes and reappearance,
restarts (state restored from what was committed), and state resets (nothing left).

Driven through the real ``Batch`` and ``EventState`` with real encoding. The clock only
moves forward, and by at least a millisecond per event (the assumption of
``connector.core.versions``: each event is a transaction after an API read); a clock that
stands still is the last test's case.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.kinds import WindowKind
from connector.core.model import Meeting, Participant
from connector.core.versions import next_version
from connector.serde import Serdes, SingleObjectFraming
from connector.source.windows import Window
from connector.state.store import EventState, Staging
from connector.sync.batch import Batch, Destination

EVENT = 3
T0_MS = 1_800_000_000_000
SERDES = Serdes(SingleObjectFraming())
TO = Destination(EVENT, 0, "changes", "state", "dlq", "versions-test", 6)
WINDOW = Window(WindowKind.MODIFIED, 0, 10)


def meeting(meeting_id: int, revision: int) -> Meeting:
    return Meeting(
        event_id=EVENT,
        meeting_id=meeting_id,
        status="pending",
        start_at=1_900_000_000_000 + revision * 60_000,
        end_at=1_900_001_800_000 + revision * 60_000,
        location="Hall A",
        created_at=T0_MS,
        modified_at=T0_MS + revision * 1000,
        participants=(Participant(1, "requester", "accepted"),),
    )


@dataclass
class Connector:
    """One process's view: its state, its clock; what it published, per meeting."""

    clock_ms: int = T0_MS
    state: EventState = field(default_factory=lambda: EventState(EVENT))
    published: dict[int, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    #: meetings a no-data cycle started a life of, unseen: their next event follows a gap
    unseen_births: set[int] = field(default_factory=set)
    revision: int = 0

    def cycle(self, ops: list[tuple[str, int]], *, emit: bool = True) -> None:
        batch = Batch.start(TO, self.state, SERDES, lambda: self.clock_ms / 1000)
        for op, meeting_id in ops:
            tracked = batch.staging.get(meeting_id)
            if op == "delete":
                if tracked is not None:
                    batch.stage_delete(tracked, WINDOW, self.clock_ms)
            else:
                if tracked is None and not emit:
                    self.unseen_births.add(meeting_id)
                self.revision += 1
                batch.stage(meeting(meeting_id, self.revision), WINDOW, kind="modified", emit=emit)
        for record in batch.records:
            if record.topic == "changes" and record.value is not None:
                event = SERDES.decode_change(record.value)
                entry = (event["change_type"], event["version"])
                if event["meeting_id"] in self.unseen_births:
                    self.unseen_births.discard(event["meeting_id"])
                    entry = ("after a gap", event["version"])
                self.published[event["meeting_id"]].append(entry)
        self.state.apply(batch.staging)

    def restart(self) -> None:
        """A new process restores what was committed (no memory of this one)."""
        restored = EventState(EVENT)
        for meeting_id in self.state.meetings:
            value = self.state.meetings.get(meeting_id)
            assert value is not None
            restored.meetings[meeting_id] = value
        self.state = restored

    def reset(self) -> None:
        """The state topic replaced (docs/replicas.md): nothing of the state is left."""
        self.state = EventState(EVENT)


MEETING_IDS = st.integers(1, 4)
CYCLE = st.lists(st.tuples(st.sampled_from(["change", "delete"]), MEETING_IDS), max_size=5)
STEP = st.one_of(
    st.tuples(st.just("cycle"), CYCLE, st.integers(0, 3)),  # extra ms until the next step
    st.tuples(st.just("restart"), st.just([]), st.integers(0, 2000)),
    st.tuples(st.just("reset"), st.just([]), st.integers(0, 2000)),
    # snapshot mode no_data: state built, nothing published (and nothing deleted)
    st.tuples(st.just("quiet"), st.lists(st.tuples(st.just("change"), MEETING_IDS)), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=25))
def test_versions_strictly_increase_per_meeting(steps: list[tuple[str, list, int]]) -> None:
    connector = Connector()
    for kind, ops, pause in steps:
        if kind == "cycle":
            connector.cycle(ops)
        elif kind == "quiet":
            connector.cycle(ops, emit=False)
        elif kind == "restart":
            connector.restart()
        else:
            connector.reset()
        # at least a millisecond per event staged, and per restart or reset
        connector.clock_ms += pause + max(len(ops), 1)
    for meeting_id, events in connector.published.items():
        versions = [version for _, version in events]
        assert versions == sorted(set(versions)), (meeting_id, events)
        # within a life (SNAPSHOT/CREATED .. DELETED, across restarts) versions step by 1
        for (_, before), (change_type, after) in pairwise(events):
            if change_type not in ("CREATED", "SNAPSHOT", "after a gap"):
                assert after == before + 1, (meeting_id, events)


def test_a_reappearing_meeting_starts_above_its_deleted_version_in_one_cycle() -> None:
    """Deleted and back within one millisecond: the floor alone would repeat a version
    the life before reached (its versions ran ahead of the clock)."""
    connector = Connector()
    connector.cycle([("change", 1)])  # v = T0
    for _ in range(3):
        connector.cycle([("change", 1)])  # T0 + 1 .. T0 + 3, the clock stands still
    connector.cycle([("delete", 1), ("change", 1)])
    connector.cycle([("delete", 1)])
    connector.cycle([("change", 1)])
    assert connector.published[1] == [
        ("CREATED", T0_MS),
        ("RESCHEDULED", T0_MS + 1),
        ("RESCHEDULED", T0_MS + 2),
        ("RESCHEDULED", T0_MS + 3),
        ("DELETED", T0_MS + 4),
        ("CREATED", T0_MS + 5),
        ("DELETED", T0_MS + 6),
        ("CREATED", T0_MS + 7),
    ]


def test_remembered_deletes_are_dropped_once_the_clock_passed_them() -> None:
    state = EventState(EVENT)
    staging = Staging(state, SERDES, floor_ms=100)
    staging.put(1, None, None, deleted=150)
    staging.put(2, None, None, deleted=90)
    state.apply(staging)
    assert state.deleted == {1: 150, 2: 90}
    state.apply(Staging(state, SERDES, floor_ms=120))
    assert state.deleted == {1: 150}
    state.apply(Staging(state, SERDES, floor_ms=151))
    assert state.deleted == {}


def test_next_version() -> None:
    assert next_version(7, 10_000) == 8  # tracked: consecutive, whatever the clock
    assert next_version(None, 10_000) == 10_000  # a new life starts at the clock
    assert next_version(None, 10_000, deleted=12_000) == 12_001  # the clock behind a delete
    assert next_version(None, 10_000, deleted=5) == 10_000
