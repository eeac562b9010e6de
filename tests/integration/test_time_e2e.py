"""Time correctness end to end (issue 12): daylight-saving folds and API clock steps.

The simulator renders date-times as local wall time without an offset (``--timezone``), as
the real API does, and its clock is moved through ``PUT /admin/clock``; the connector runs
as a real process against the real broker.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, converged, seconds
from tests.integration.lives import assert_consecutive

EVENT = 1
T0 = 1_900_000_000
NEW_YORK = "America/New_York"
FALL_BACK = int(datetime(2026, 11, 1, 6, 0, tzinfo=UTC).timestamp())  # 02:00 EDT -> 01:00 EST
SPRING_FORWARD = int(datetime(2027, 3, 14, 7, 0, tzinfo=UTC).timestamp())  # 02:00 EST -> 03:00


@pytest.fixture
async def connect(kafka_bootstrap, unique_name):
    """Start a connector against a simulator; read its change topic; clean up."""
    started: list[tuple[ConnectorProcess, ChangeLog]] = []

    async def start(simulator, **overrides: str) -> tuple[ConnectorProcess, ChangeLog]:
        env = connector_env(
            api_base_url=simulator.base_url,
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=unique_name("time"),
            **overrides,
        )
        connector = await ConnectorProcess(env).start()
        log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
        started.append((connector, log))
        return connector, log

    yield start
    for connector, log in started:
        await connector.stop_quietly()
        log.close()


async def api_clock_at(simulator, unix: int) -> None:
    """Run the simulator's clock from ``unix`` on (a skew: it keeps running)."""
    await simulator.set_clock(skew_seconds=unix - time.time())


async def until_api_clock(simulator, unix: int) -> None:
    """Wait for the API's clock (it runs at the wall clock's pace) to reach ``unix``."""
    now = (await simulator.get_clock())["now"]
    await asyncio.sleep(max(0, unix - now) + 0.1)


def assert_matches_truth(after: dict[str, Any], truth: dict[str, Any]) -> None:
    assert seconds(after["start_at"]) == truth["start"]
    assert seconds(after["end_at"]) == truth["end"]
    assert seconds(after["created_at"]) == truth["created_at"]
    assert seconds(after["modified_at"]) == truth["updated_at"]
    assert after["status"] == truth["status"]
    assert after["location"] == truth["location"]


def assert_exactly_once(events: list[dict[str, Any]]) -> None:
    by_meeting: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_meeting.setdefault(event["meeting_id"], []).append(event)
    for meeting_id, mine in by_meeting.items():
        assert_consecutive(mine)
        for previous, event in itertools.pairwise(mine):
            assert event["before"] == previous["after"], meeting_id
            assert event["after"] != previous["after"], f"duplicate version of {meeting_id}"


async def _truth(simulator) -> dict[int, dict[str, Any]]:
    return {m["meeting_id"]: m for m in await simulator.truth(EVENT)}


def _last(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {e["meeting_id"]: e for e in events}


async def test_changes_in_the_repeated_fall_back_hour_are_published_at_their_instants(
    simulator_factory, connect
):
    sim = await simulator_factory(SimulatorConfig(timezone=NEW_YORK))
    await api_clock_at(sim, FALL_BACK - 8)  # 01:59:52 EDT
    # 01:30 EDT to 01:15 EST: 45 minutes whose local end is before its local start
    across = await sim.create(
        event_id=EVENT, start=FALL_BACK - 1800, duration_minutes=45, participants=[1, 2]
    )
    other = await sim.create(event_id=EVENT, start=T0, participants=[3, 4])
    # 01:10 to 01:40 EST: nothing tells it from 01:10-01:40 EDT, the documented rule reads
    # an appointment wholly inside the repeated hour as its first occurrence
    inside = await sim.create(event_id=EVENT, start=FALL_BACK + 600, participants=[7, 8])
    _, log = await connect(sim, MEETINGS_CDC_API_TIMEZONE=NEW_YORK)
    await log.wait_for(lambda ev: len(ev) == 3, 60, "the snapshot")

    await until_api_clock(sim, FALL_BACK + 2)  # 01:00:02 EST, the second 01:00:02 today
    await sim.patch(across, status="confirmed")
    await sim.patch(other, location="Room 2")
    created = await sim.create(event_id=EVENT, start=FALL_BACK + 3700, participants=[5, 6])
    await log.wait_for(lambda ev: len(ev) == 6, 60, "three changes in the repeated hour")
    await log.settle(3)  # and nothing more: no duplicate, no spurious UPDATED

    truth = await _truth(sim)
    assert {(e["meeting_id"], e["change_type"]) for e in log.events[3:]} == {
        (across, "CONFIRMED"),
        (other, "UPDATED"),
        (created, "CREATED"),
    }
    last = _last(log.events)
    for meeting_id in (across, other, created):
        assert_matches_truth(last[meeting_id]["after"], truth[meeting_id])
    assert seconds(last[inside]["after"]["start_at"]) == FALL_BACK + 600 - 3600
    assert seconds(last[inside]["after"]["end_at"]) == FALL_BACK + 600 + 1800 - 3600
    assert_exactly_once(log.events)


async def test_changes_across_the_spring_forward_gap_are_published_at_their_instants(
    simulator_factory, connect
):
    sim = await simulator_factory(SimulatorConfig(timezone=NEW_YORK))
    await api_clock_at(sim, SPRING_FORWARD - 8)  # 01:59:52 EST
    across = await sim.create(
        event_id=EVENT, start=SPRING_FORWARD - 1800, duration_minutes=60, participants=[1, 2]
    )
    _, log = await connect(sim, MEETINGS_CDC_API_TIMEZONE=NEW_YORK)
    await log.wait_for(lambda ev: len(ev) == 1, 60, "the snapshot")

    await until_api_clock(sim, SPRING_FORWARD + 2)  # 03:00:02 EDT
    await sim.patch(across, status="cancelled")
    created = await sim.create(event_id=EVENT, start=SPRING_FORWARD, participants=[5, 6])
    await log.wait_for(lambda ev: len(ev) == 3, 60, "two changes after the gap")
    await log.settle(3)

    truth = await _truth(sim)
    assert {(e["meeting_id"], e["change_type"]) for e in log.events[1:]} == {
        (across, "CANCELLED"),
        (created, "CREATED"),
    }
    for meeting_id, event in _last(log.events).items():
        assert_matches_truth(event["after"], truth[meeting_id])
    assert_exactly_once(log.events)


async def _churn(simulator, rng: random.Random, meeting_ids: list[int], stop: asyncio.Event):
    """Change meetings (no deletes: only a reconciliation sees those) until ``stop``."""
    while not stop.is_set():
        meeting_id = rng.choice(meeting_ids)
        action = rng.random()
        if action < 0.4:
            status = rng.choice(["confirmed", "pending", "declined", "cancelled"])
            await simulator.patch(meeting_id, status=status)
        elif action < 0.7:
            await simulator.patch(meeting_id, start=T0 + rng.randrange(0, 10**6))
        elif action < 0.85:
            await simulator.patch(meeting_id, location=f"Room {rng.randrange(99)}")
        else:
            created = await simulator.create(
                event_id=EVENT, start=T0 + rng.randrange(0, 10**6), participants=[1, 2]
            )
            meeting_ids.append(created)
        await asyncio.sleep(0.1)


async def test_a_clock_step_back_while_meetings_change_loses_and_duplicates_nothing(
    simulator, connect
):
    rng = random.Random(12)
    ids = [
        await simulator.create(event_id=EVENT, start=T0 + i * 600, participants=[i + 1, 900])
        for i in range(20)
    ]
    _, log = await connect(simulator)
    await log.wait_for(lambda ev: len(ev) >= 20, 60, "the snapshot")

    stop = asyncio.Event()
    churn = asyncio.create_task(_churn(simulator, rng, ids, stop))
    try:
        await asyncio.sleep(3)
        step = rng.randint(60, 180)
        before = (await simulator.get_clock())["now"]
        await simulator.set_clock(skew_seconds=-step)  # an NTP correction upstream
        assert (await simulator.get_clock())["now"] <= before - step + 1
        await asyncio.sleep(8)  # meetings keep changing, stamped with the older clock
    finally:
        stop.set()
        await churn

    truth = await _truth(simulator)
    await log.wait_for(lambda ev: converged(ev, truth), 60, "the API's current state")
    await log.settle(2)
    assert_exactly_once(log.events)
    assert converged(log.events, truth)
    older = [
        e
        for e in log.events
        if e["before"] is not None
        and seconds(e["after"]["modified_at"]) < seconds(e["before"]["modified_at"])
    ]
    assert older, "the step produced versions older than ones already published"
