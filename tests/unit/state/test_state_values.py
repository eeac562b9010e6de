"""StateValues: reads back exactly what a dict would, and holds realistic states in less."""

from __future__ import annotations

import random
from functools import cache
from zoneinfo import ZoneInfo

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.serde import Serdes, SingleObjectFraming
from connector.source.assembly import assemble
from connector.source.rows import RowParser
from connector.state import values as state_values
from connector.state.store import EventState
from connector.state.values import TRAIN_AFTER, StateValues
from meetings_simulator.render import TimeFormatter, meeting_fields, participant_fields
from meetings_simulator.store import MeetingStore
from meetings_simulator.workload import seed_store

NOW = 1_760_000_000
UTC = ZoneInfo("UTC")
REALISTIC = TRAIN_AFTER + 1000


@cache
def simulated_states() -> dict[int, bytes]:
    """Encoded state values of meetings seeded by the simulator, mapped like the source."""
    store = MeetingStore(lambda: NOW, TimeFormatter(UTC))
    seed_store(store, event_ids=(1,), meetings=REALISTIC, seed=11, now=NOW, tz=UTC)
    times, parser = TimeFormatter(UTC), RowParser(zone=UTC)
    rows = [
        parser.parse(meeting_fields(m, times) | participant_fields(p))
        for m in store.meetings(1)
        for p in m.participants
    ]
    serdes = Serdes(SingleObjectFraming())
    return {m.meeting_id: serdes.encode_meeting_state(m, 1) for m in assemble(rows).meetings}


def test_realistic_states_are_held_in_well_under_half_their_size() -> None:
    values = simulated_states()
    assert len(values) == REALISTIC
    state = EventState(1)
    for meeting_id, value in values.items():
        state.meetings[meeting_id] = value
    raw = sum(map(len, values.values()))
    assert state.meetings.trained
    assert state.meetings.stored_bytes < 0.4 * raw  # ~0.25 with the simulator's meetings
    serdes = Serdes(SingleObjectFraming())
    for meeting_id, value in values.items():
        assert state.meetings.get(meeting_id) == value
        tracked = state.get(meeting_id, serdes)
        assert tracked is not None
        assert (tracked.meeting, tracked.version) == serdes.decode_meeting_state(value)


def test_values_stay_raw_until_enough_to_train() -> None:
    values = list(simulated_states().values())[:100]
    store = StateValues()
    for i, value in enumerate(values):
        store[i] = value
    assert not store.trained
    assert store.stored_bytes == sum(map(len, values))


def test_training_failure_falls_back_to_plain_zstd(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> zstandard.ZstdCompressionDict:
        raise zstandard.ZstdError("cannot train dict: Src size is incorrect")

    monkeypatch.setattr(state_values.zstandard, "train_dictionary", refuse)
    values = list(simulated_states().values())[:200]
    store = StateValues(train_after=100)
    for i, value in enumerate(values):
        store[i] = value
    assert store.trained
    assert [store.get(i) for i in range(len(values))] == values
    # plain zstd gets a meeting to ~3/4 of its size, a dictionary to ~1/4
    assert 0.5 * sum(map(len, values)) < store.stored_bytes < sum(map(len, values))


def test_samples_zstd_cannot_train_from_lose_nothing() -> None:
    store = StateValues(train_after=8)
    for i in range(8):
        store[i] = b""  # zstd refuses to train from empty samples
    store[100] = simulated_states()[1]
    assert store.trained
    assert [store.get(i) for i in range(8)] == [b""] * 8
    assert store.get(100) == simulated_states()[1]


def test_incompressible_values_are_kept_as_they_are() -> None:
    store = StateValues(train_after=100)
    for i, value in enumerate(list(simulated_states().values())[:100]):
        store[i] = value
    assert store.trained
    before = store.stored_bytes
    noise = random.Random(5).randbytes(600)
    store[1000] = noise
    store[1001] = b"x"
    assert store.stored_bytes == before + 601
    assert (store.get(1000), store.get(1001)) == (noise, b"x")


keys = st.one_of(st.integers(0, 30), st.integers(1000, 1010))  # 1000+: pre-filled ones
realistic = st.integers(0, 199).map(lambda i: list(simulated_states().values())[i])
values = st.one_of(
    st.binary(max_size=40),  # empty too
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8), st.integers(100, 20_000)),
    realistic,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("pop"), keys, st.none()),
    ),
    max_size=80,
)


@settings(deadline=None)
@given(operations, st.integers(min_value=1, max_value=16), st.booleans())
def test_reads_back_exactly_as_a_dict(
    ops: list[tuple[str, int, bytes | None]], train: int, prefilled: bool
) -> None:
    # Pre-filled: 40 realistic values, trained from (zstd wants ~8 alike samples at least),
    # so every example runs with a dictionary; otherwise training happens (or fails) midway.
    store, model = StateValues(train_after=40 if prefilled else train), dict[int, bytes]()
    if prefilled:
        for i, value in enumerate(list(simulated_states().values())[200:240]):
            store[1000 + i] = model[1000 + i] = value
        assert store.trained
    for op, key, value in ops:
        if op == "set":
            assert value is not None
            store[key] = value
            model[key] = value
        else:
            assert store.pop(key, None) == model.pop(key, None)
    assert len(store) == len(model)
    assert sorted(store) == sorted(model)
    for key in [*range(31), *range(1000, 1040)]:
        assert (key in store) == (key in model)
        assert store.get(key) == model.get(key)
    raw = sum(map(len, model.values()))
    assert 0 <= store.stored_bytes <= raw
    if not store.trained:
        assert store.stored_bytes == raw


def test_repr_is_a_summary() -> None:
    store = StateValues()
    store[1] = b"abc"
    assert repr(store) == "<StateValues 1 values, 3 bytes, raw>"


def test_training_gives_zstd_its_cover_parameters_instead_of_searching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The search for k and d took ~80 % of training, on the path of every restore (issue 30
    # item 3); given, the dictionary is the one the search picks for simulator meetings.
    calls: list[dict[str, object]] = []
    train = zstandard.train_dictionary

    def recording(*args: object, **kwargs: object) -> zstandard.ZstdCompressionDict:
        calls.append(kwargs)
        return train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(state_values.zstandard, "train_dictionary", recording)
    values = list(simulated_states().values())[:TRAIN_AFTER]
    store = StateValues()
    for i, value in enumerate(values):
        store[i] = value

    assert store.trained
    assert calls == [{"k": state_values.COVER_K, "d": state_values.COVER_D}]
    assert [store.get(i) for i in range(len(values))] == values
    # a dictionary still gets a meeting to about a quarter of its size
    assert store.stored_bytes < 0.35 * sum(map(len, values))


def test_a_deferred_training_waits_for_compress_steps_and_loses_nothing() -> None:
    # A restore holds the values raw (training took ~0.1 s of the path from a restart to
    # its first commit, issue 30 item 3); the event compresses them once it runs, in slices
    # between which it goes on storing and removing values.
    values = list(simulated_states().values())[: TRAIN_AFTER + 500]
    store, model = StateValues(defer_bytes=10**9), {}
    for i, value in enumerate(values):
        store[i] = model[i] = value
    assert not store.trained
    assert store.stored_bytes == sum(map(len, values))
    steps = store.compress_steps(per_step=300)
    next(steps)  # the training
    assert store.trained
    for n, _ in enumerate(steps):
        store[10_000 + n] = model[10_000 + n] = values[n]  # stored between slices
        model.pop(n * 7, None)
        store.pop(n * 7, None)
    assert sorted(store) == sorted(model)
    assert all(store.get(k) == v for k, v in model.items())
    assert store.stored_bytes < 0.4 * sum(map(len, model.values()))


def test_compress_steps_of_too_few_values_does_nothing_and_ends_the_deferral() -> None:
    values = list(simulated_states().values())[:TRAIN_AFTER]
    store = StateValues(defer_bytes=10**9)
    for i, value in enumerate(values[:10]):
        store[i] = value
    assert list(store.compress_steps()) == []
    for i, value in enumerate(values):
        store[i] = value  # no deferral any more: trains once enough are held
    assert store.trained
