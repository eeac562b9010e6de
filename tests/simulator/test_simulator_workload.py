"""Seeding and churn: realistic distributions, determinism, index consistency."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from meetings_simulator.app import SimulatorConfig, build_simulator
from meetings_simulator.clock import SimClock
from meetings_simulator.query import ExportQuery, RowFilter
from meetings_simulator.render import TimeFormatter
from meetings_simulator.store import MeetingStore
from meetings_simulator.workload import seed_store

NOW = 1_760_000_000


def seeded(seed: int, meetings: int = 2000, events: tuple[int, ...] = (1, 2)) -> MeetingStore:
    store = MeetingStore(lambda: NOW, TimeFormatter(ZoneInfo("UTC")))
    seed_store(store, event_ids=events, meetings=meetings, seed=seed, now=NOW, tz=ZoneInfo("UTC"))
    return store


def test_seeding_is_deterministic_for_a_seed() -> None:
    assert seeded(5).meetings(1) == seeded(5).meetings(1)
    assert seeded(5).meetings(1) != seeded(6).meetings(1)


def test_seeded_distributions_are_realistic() -> None:
    store = seeded(1)
    meetings = store.meetings(1) + store.meetings(2)
    assert len(meetings) == 2000
    assert {len(m.participants) for m in meetings} == {2, 3, 4}
    assert {m.duration_minutes for m in meetings} == {15, 30, 45}
    statuses = Counter(m.status for m in meetings)
    assert set(statuses) == {"pending", "confirmed", "cancelled", "declined"}
    assert statuses["confirmed"] > statuses["cancelled"]
    for m in meetings:
        assert m.created_at <= m.updated_at <= NOW
        assert m.start % 900 == 0
        assert sum(p.role == "requester" for p in m.participants) == 1
        assert len(set(m.account_ids)) == len(m.account_ids)


def test_churn_applies_the_whole_mix_and_keeps_queries_consistent() -> None:
    clock = SimClock(frozen_at=NOW)
    sim = build_simulator(SimulatorConfig(event_ids=(1,), meetings=300, seed=2), clock)
    full = RowFilter(event_id=1)
    window = RowFilter(event_id=1, modified_from=NOW + 1, order_by="time")
    for f in (full, window):  # cache both, so churn patches them
        sim.store.query(ExportQuery(f))
    assert sim.churn is not None
    for _ in range(600):
        clock.advance(1)
        sim.churn.step()
    assert set(sim.churn.applied) == {
        "create",
        "reschedule",
        "confirm",
        "cancel",
        "decline",
        "participants",
        "location",
        "details",
        "delete",
    }
    rebuilt = build_simulator(SimulatorConfig(event_ids=(1,), meetings=0), clock).store
    rebuilt.bulk_load(sim.store.meetings(1))  # fresh indexes and result sets
    for f in (full, window):
        assert sim.store.query(ExportQuery(f, per_page=500)) == rebuilt.query(
            ExportQuery(f, per_page=500)
        )
    changed = sim.store.query(ExportQuery(window)).total
    assert changed > 0
