"""Smoke tests: the fixtures start a simulator that serves pages and admin calls."""

from __future__ import annotations

from meetings_simulator.app import SimulatorConfig


async def test_in_process_fixture_serves_created_meeting(simulator) -> None:
    mid = await simulator.create(event_id=1, start=1_800_000_000, participants=[11, 12])
    rows = await simulator.export_rows(1)
    assert [(r["meeting_id"], r["account_id"]) for r in rows] == [(mid, 11), (mid, 12)]
    assert simulator.base_url.startswith("http://127.0.0.1:")


async def test_factory_seeds_meetings(simulator_factory) -> None:
    sim = await simulator_factory(SimulatorConfig(event_ids=(7,), meetings=50, seed=3))
    truth = await sim.truth(7)
    rows = await sim.export_rows(7)
    assert len(truth) == 50
    assert len(rows) == sum(len(m["participants"]) for m in truth)


async def test_subprocess_fixture(simulator_process) -> None:
    sim = await simulator_process("--meetings", "20", "--event-id", "5", "--seed", "1")
    assert len(await sim.truth(5)) == 20
    clock = await sim.set_clock(frozen_at=1_700_000_000)
    assert clock["now"] == 1_700_000_000
