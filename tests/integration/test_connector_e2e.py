"""``meetings-cdc run`` end to end: the simulator over HTTP, a real broker, a real process."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, converged, past_settle, seconds
from tests.integration.lives import assert_consecutive, numbered

EVENT = 1
T0 = 1_900_000_000  # a scheduled start, far from "now"


@pytest.fixture
async def running(simulator, kafka_bootstrap, unique_name):
    """Start connectors against ``simulator``; read their change topic; clean up."""
    started: list[ConnectorProcess] = []
    logs: list[ChangeLog] = []
    name = unique_name("e2e")

    async def start(**overrides: str) -> tuple[ConnectorProcess, ChangeLog]:
        env = connector_env(
            api_base_url=simulator.base_url,
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=name,
            **overrides,
        )
        connector = await ConnectorProcess(env).start()
        started.append(connector)
        if not logs:
            logs.append(ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"]))
        return connector, logs[0]

    yield start
    for connector in started:
        await connector.stop_quietly()
    for log in logs:
        log.close()


def _types(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return numbered(events)


def _has(meeting_id: int, change_type: str):
    return lambda events: any(
        e["meeting_id"] == meeting_id and e["change_type"] == change_type for e in events
    )


async def test_scripted_life_of_meetings_yields_exactly_the_expected_events(simulator, running):
    a = await simulator.create(
        event_id=EVENT,
        start=T0,
        duration_minutes=30,
        location="Hall A",
        status="pending",
        participants=[101, 102],
    )
    await past_settle()
    _, log = await running(MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="3")
    await log.wait_for(_has(a, "SNAPSHOT"), 60, "the snapshot of a")

    async def step(action, meeting_id: int, expected: str) -> None:
        await action
        await log.wait_for(_has(meeting_id, expected), 30, f"{expected} of {meeting_id}")

    b = await simulator.create(
        event_id=EVENT,
        start=T0 + 7200,
        duration_minutes=15,
        location="Table 9",
        participants=[201, 202],
    )
    await log.wait_for(_has(b, "CREATED"), 30, "CREATED of b")
    await step(simulator.patch(a, status="confirmed"), a, "CONFIRMED")
    await step(simulator.patch(a, start=T0 + 3600), a, "RESCHEDULED")
    await step(
        simulator.patch(b, participants=[201, 202, 203], location="Table 10"),
        b,
        "PARTICIPANTS_CHANGED",
    )
    await step(simulator.patch(a, location="Hall B"), a, "UPDATED")
    await step(simulator.patch(a, status="cancelled", start=T0), a, "CANCELLED")
    await step(simulator.patch(b, status="declined"), b, "DECLINED")
    await step(simulator.delete(b), b, "DELETED")
    await log.settle(3)  # nothing more may arrive: no duplicates, no spurious changes

    events_a, events_b = log.of(a), log.of(b)
    assert _types(events_a) == [
        ("SNAPSHOT", 1),
        ("CONFIRMED", 2),
        ("RESCHEDULED", 3),
        ("UPDATED", 4),
        ("CANCELLED", 5),
    ]
    assert _types(events_b) == [
        ("CREATED", 1),
        ("PARTICIPANTS_CHANGED", 2),
        ("DECLINED", 3),
        ("DELETED", 4),
    ]
    assert [e["changed_fields"] for e in events_a] == [
        [],
        ["status"],
        ["end_at", "start_at"],
        ["location"],
        ["end_at", "start_at", "status"],
    ]
    assert events_b[1]["changed_fields"] == ["location", "participants"]
    # before is always the previous after; SNAPSHOT/CREATED have no before, DELETED no after
    for events in (events_a, events_b):
        assert events[0]["before"] is None
        for previous, event in itertools.pairwise(events):
            assert event["before"] == previous["after"]
    assert events_b[-1]["after"] is None
    rescheduled = events_a[2]
    assert rescheduled["after"]["start_at"] == _iso(T0 + 3600)
    assert rescheduled["before"]["start_at"] == _iso(T0)
    assert [p["account_id"] for p in events_b[1]["after"]["participants"]] == [201, 202, 203]
    assert events_a[0]["source"]["window_kind"] == "snapshot"
    assert events_b[-1]["source"]["window_kind"] == "reconcile"


async def test_restart_without_upstream_change_emits_nothing(simulator, running):
    ids = [
        await simulator.create(event_id=EVENT, start=T0 + i * 900, participants=[1, 2 + i])
        for i in range(5)
    ]
    connector, log = await running()
    await log.wait_for(lambda ev: len(ev) == 5, 60, "five SNAPSHOT events")
    assert await connector.terminate() == 0

    again, _ = await running()
    await log.settle(5)
    assert len(log.events) == 5, "a restart re-published something"

    await simulator.patch(ids[2], status="confirmed")
    await log.wait_for(lambda ev: len(ev) == 6, 30, "the change after the restart")
    assert _types(log.of(ids[2]))[-1] == ("CONFIRMED", 2)  # versions continue from state
    assert await again.terminate() == 0


async def test_second_instance_with_the_same_name_joins_and_takes_over(simulator, running):
    """A second replica joins the group (it used to fence the first): one of them runs the
    event; when the first stops (SIGTERM, leaving the group), the second takes it over."""
    await simulator.create(event_id=EVENT, start=T0, participants=[1, 2])
    first, log = await running()
    await log.wait_for(lambda ev: len(ev) == 1, 60, "the snapshot")

    second, _ = await running()
    meeting = await simulator.create(event_id=EVENT, start=T0, participants=[3, 4])
    await log.wait_for(_has(meeting, "CREATED"), 30, "CREATED with two replicas")
    await log.settle(3)
    assert first.process is not None
    assert first.process.returncode is None
    assert "fenced" not in first.log
    assert "fenced" not in second.log
    assert len(log.of(meeting)) == 1

    assert await first.terminate() == 0
    later = await simulator.create(event_id=EVENT, start=T0, participants=[5, 6])
    await log.wait_for(_has(later, "CREATED"), 60, "CREATED after the first replica stopped")
    assert "partitions assigned" in second.log
    await log.settle(2)
    assert _types(log.of(later)) == [("CREATED", 1)]
    assert await second.terminate() == 0


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(simulator, running):
    rng = random.Random(20261124)
    for i in range(30):
        await simulator.create(
            event_id=EVENT, start=T0 + i * 600, participants=[1000 + i, 2000 + i]
        )
    kills = 8
    churn = asyncio.create_task(_churn(simulator, rng, per_second=15))
    try:
        for _ in range(kills):
            connector, log = await running(MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="4")
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await connector.kill()
            await log.poll(0.1)
    finally:
        churn.cancel()
        await asyncio.gather(churn, return_exceptions=True)

    final, log = await running(MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="2")
    truth = {m["meeting_id"]: m for m in await simulator.truth(EVENT)}
    history = await simulator.history(EVENT)
    await log.wait_for(lambda ev: converged(ev, truth), 90, "the final state of every meeting")
    assert await final.terminate() == 0

    by_meeting: dict[int, list[dict[str, Any]]] = {}
    for event in log.events:
        by_meeting.setdefault(event["meeting_id"], []).append(event)
    observed_versions = {(h["meeting_id"], h["at"]) for h in history}
    for meeting_id, events in by_meeting.items():
        # exactly once: consecutive versions, no gap, no repeat, each before = previous after
        assert_consecutive(events)
        for previous, event in itertools.pairwise(events):
            assert event["before"] == previous["after"], meeting_id
            assert event["after"] != previous["after"], f"duplicate version of {meeting_id}"
        # every published version is one the API really had
        for event in events:
            if event["after"] is not None:
                at = seconds(event["after"]["modified_at"])
                assert (meeting_id, at) in observed_versions, (meeting_id, at)


async def _churn(simulator, rng: random.Random, per_second: float) -> None:
    while True:
        truth = await simulator.truth(EVENT)
        if truth:
            meeting = rng.choice(truth)
            action = rng.random()
            if action < 0.3:
                await simulator.patch(
                    meeting["meeting_id"], status=rng.choice(["confirmed", "pending", "declined"])
                )
            elif action < 0.6:
                await simulator.patch(meeting["meeting_id"], start=T0 + rng.randrange(0, 10**6))
            elif action < 0.75:
                accounts = [p["account_id"] for p in meeting["participants"]]
                await simulator.patch(
                    meeting["meeting_id"], participants=[*accounts[:2], rng.randrange(5000, 6000)]
                )
            elif action < 0.9:
                await simulator.create(
                    event_id=EVENT,
                    start=T0 + rng.randrange(0, 10**6),
                    participants=[rng.randrange(1, 999), 99999],
                )
            elif action < 0.95:
                await simulator.delete(meeting["meeting_id"])
            else:
                await simulator.patch(meeting["meeting_id"], location=f"Room {rng.randrange(99)}")
        await asyncio.sleep(1 / per_second)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_several_events_sync_concurrently_in_one_process(
    simulator_factory, kafka_bootstrap, unique_name
):
    from meetings_simulator.app import SimulatorConfig

    sim = await simulator_factory(SimulatorConfig(event_ids=(11, 12)))
    first = await sim.create(event_id=11, start=T0, participants=[1, 2])
    second = await sim.create(event_id=12, start=T0, participants=[3, 4])
    await past_settle()
    env = connector_env(
        api_base_url=sim.base_url,
        event_ids="11,12",
        bootstrap=kafka_bootstrap,
        name=unique_name("multi"),
        MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND="50",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: len(ev) == 2, 60, "both snapshots")
        await sim.patch(second, status="confirmed")
        await sim.patch(first, location="Room 1")
        await log.wait_for(lambda ev: len(ev) == 4, 30, "a change in each event")
        assert sorted((e["event_id"], e["change_type"]) for e in log.events) == [
            (11, "SNAPSHOT"),
            (11, "UPDATED"),
            (12, "CONFIRMED"),
            (12, "SNAPSHOT"),
        ]
        assert await connector.terminate() == 0
    finally:
        await connector.stop_quietly()
        log.close()
