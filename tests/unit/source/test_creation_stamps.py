"""Created windows only while needed: the evidence that last-modified windows show new
meetings (``connector.source.creation_stamps``) and the engine's use of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from connector.config.settings import Settings
from connector.core.kinds import WindowKind
from connector.core.model import Meeting
from connector.serde import Serdes, SingleObjectFraming
from connector.source.creation_stamps import CONFIRMATIONS, CreationStamps, CycleReads
from connector.source.leaf_parts import WindowPart
from connector.source.windows import Window
from connector.state.store import EventState
from tests.unit.sync.test_engine_cycles import (
    EVENT,
    NOW,
    FakeReader,
    change_events,
    make_sync,
    meeting,
    settings,
    tracked_state,
)

MODIFIED = Window(WindowKind.MODIFIED, NOW - 10, NOW)


def new(meeting_id: int, second: int = NOW - 3) -> Meeting:
    """A meeting created at ``second`` and never changed since."""
    m = meeting(meeting_id, second)
    return replace(m, created_at=m.modified_at)


def cycle(created: list[Meeting], modified: list[Meeting]) -> CycleReads:
    return CycleReads(created=created, modified_windows=[MODIFIED], modified=modified)


def test_three_new_meetings_found_by_the_modified_window_prove_it() -> None:
    stamps = CreationStamps()
    for i in range(1, CONFIRMATIONS):
        stamps.observe(cycle([new(i)], [new(i)]))
        stamps.observe(cycle([new(i)], [new(i)]))  # the same meeting again counts once
        assert not stamps.proven
    stamps.observe(cycle([new(CONFIRMATIONS)], [new(CONFIRMATIONS)]))
    assert stamps.proven


def test_a_new_meeting_missing_from_the_modified_window_disproves_it() -> None:
    stamps = CreationStamps()
    for i in range(1, CONFIRMATIONS + 1):
        stamps.observe(cycle([new(i)], [new(i)]))
    assert stamps.proven
    stamps.observe(cycle([new(10)], []))
    assert not stamps.proven
    assert stamps.counter_examples == 1


def test_what_proves_nothing_and_what_disproves() -> None:
    stamps = CreationStamps(confirmations=1)
    changed = meeting(1, NOW - 3)  # changed since its creation: found either way
    stamps.observe(cycle([changed], [changed]))
    outside = new(2, NOW - 20)  # its second is outside the modified window read
    stamps.observe(cycle([outside], []))
    assert not stamps.proven
    assert stamps.counter_examples == 0
    earlier = replace(new(3), modified_at=new(3).created_at - 1000)
    stamps.observe(cycle([], [earlier]))
    assert stamps.counter_examples == 1


@given(st.lists(st.lists(st.integers(1, 50), max_size=5), max_size=30))
def test_an_api_whose_filter_misses_new_meetings_is_never_proven(cycles: list[list[int]]) -> None:
    """Whatever new meetings the cycles read, if the MODIFIED window never returns an
    unchanged new one, CREATED windows stay."""
    stamps = CreationStamps()
    for ids in cycles:
        stamps.observe(cycle([new(i) for i in ids], [meeting(i + 100, NOW - 2) for i in ids]))
        assert not stamps.proven


@dataclass
class UnstampedReader(FakeReader):
    """An API that does not stamp last-modified at creation: a meeting never changed
    since its creation matches no last-modified window."""

    async def read(self, event_id: int, window: Window) -> AsyncIterator[WindowPart]:
        async for part in super().read(event_id, window):
            if window.kind is WindowKind.MODIFIED:
                kept = [m for m in part.meetings if m.modified_at != m.created_at]
                part = replace(part, meetings=kept)
            yield part


async def test_auto_stops_created_windows_once_new_meetings_show_in_modified_ones(settings):
    assert Settings.model_fields["created_windows"].default == "auto"
    sync, publisher, serdes = make_sync(settings, FakeReader([]), tracked_state_empty())
    reader = sync.deps.reader
    client = sync.deps.client
    for i in range(1, CONFIRMATIONS + 1):
        reader.meetings.append(new(i, client.now - 3))
        await sync.cycle()
        assert reader.reads[-2].kind is WindowKind.CREATED
        client.now += 5
    reads = len(reader.reads)
    await sync.cycle()
    assert [w.kind for w in reader.reads[reads:]] == [WindowKind.MODIFIED]
    progress = sync.state.progress
    assert progress is not None
    assert progress.created_through == progress.modified_through == client.now - 2
    # and a creation is still published, through the last-modified window
    reader.meetings.append(new(9, client.now - 1))
    client.now += 5
    await sync.cycle()
    created = [e["meeting_id"] for e in change_events(publisher, serdes)]
    assert created == [1, 2, 3, 9]


async def test_auto_keeps_created_windows_when_the_api_does_not_stamp_creations(settings):
    sync, publisher, serdes = make_sync(settings, UnstampedReader([]), tracked_state_empty())
    reader, client = sync.deps.reader, sync.deps.client
    for i in range(1, 3 * CONFIRMATIONS):
        reader.meetings.append(new(i, client.now - 3))
        await sync.cycle()
        client.now += 5
        assert WindowKind.CREATED in [w.kind for w in reader.reads[-2:]]
    assert sync.deps.creation_stamps.counter_examples >= 3 * CONFIRMATIONS - 1
    assert len(change_events(publisher, serdes)) == 3 * CONFIRMATIONS - 1  # none lost


async def test_never_and_always(settings):
    never = settings.model_copy(update={"created_windows": "never"})
    sync, _, _ = make_sync(never, FakeReader([]), tracked_state_empty())
    await sync.cycle()
    assert [w.kind for w in sync.deps.reader.reads] == [WindowKind.MODIFIED]

    always = settings.model_copy(update={"created_windows": "always"})
    sync, _, _ = make_sync(always, FakeReader([]), tracked_state_empty())
    for _ in range(CONFIRMATIONS):
        sync.deps.creation_stamps.observe(cycle([new(_ + 1)], [new(_ + 1)]))
    assert sync.deps.creation_stamps.proven
    await sync.cycle()
    assert [w.kind for w in sync.deps.reader.reads] == [WindowKind.CREATED, WindowKind.MODIFIED]


def tracked_state_empty() -> EventState:
    return tracked_state(Serdes(SingleObjectFraming()), last_reconcile=NOW)


__all__ = ["EVENT", "settings"]
