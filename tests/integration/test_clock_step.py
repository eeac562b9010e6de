"""The API's clock steps back at a random moment of a poll (issue 30 item 2).

A real connector process polls the in-process simulator over HTTP while its meetings change
and reconciliation passes run back to back beside the polls. The simulator's clock is put
back 60-300 s as the k-th request of one kind arrives, before its page is served: a poll's
last-modified request (before the poll's first response, between its windows or its pages),
or a pass's page (created windows: while a pass reads, a poll runs beside it). Every
version must then reach consumers through polling (``reconcile_caught_changes_total`` stays
0) and the last event of every meeting must be the API's final state.

Hard deletes are left out of the final state: only reconciliation sees them here (the
delete check is off, so that the created-window requests are the passes'), and the next
pass is due on the API's clock, the step's length later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, converged, free_port, metric_sample

EVENT = 1
CAUGHT = "meetings_cdc_reconcile_caught_changes_total"
CHANGE_TYPES = (
    "CREATED",
    "CANCELLED",
    "DECLINED",
    "CONFIRMED",
    "RESCHEDULED",
    "PARTICIPANTS_CHANGED",
    "UPDATED",
    "DELETED",
)


class StepAtRequest(collections.Counter[str]):
    """The simulator's count of export requests by filter (``Simulator.requests``), calling
    ``on_request(kind)`` as each request arrives, before its page is served."""

    def __init__(self, counts: collections.Counter[str], on_request: Callable[[str], None]):
        super().__init__(counts)
        self.on_request = on_request

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        self.on_request(key)


def log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def _ts(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["ts"]).timestamp()


async def caught_total(port: int) -> float:
    """``meetings_cdc_reconcile_caught_changes_total`` of the event, every change type."""
    samples = [
        await metric_sample(port, CAUGHT, event_id=str(EVENT), change_type=change_type)
        for change_type in CHANGE_TYPES
    ]
    return sum(s for s in samples if s is not None)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("seed", "kind"), [(3001, "last_modified"), (3002, "created")], ids=["mid-poll", "mid-pass"]
)
async def test_a_clock_step_back_at_a_random_moment_of_a_poll_leaves_nothing_to_reconcile(
    seed: int, kind: str, simulator_factory, kafka_bootstrap, unique_name
) -> None:
    rng = random.Random(seed)
    back = rng.randint(60, 300)
    nth = rng.randint(1, 4)  # the step lands as the nth request of ``kind`` from then arrives
    sim = await simulator_factory(SimulatorConfig(meetings=400, seed=seed))
    port = free_port()
    env = connector_env(
        api_base_url=sim.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("clock-step"),
        MEETINGS_CDC_METRICS_PORT=str(port),
        # passes back to back (the next is due as one ends), beside the polls
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="1",
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="0",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    churn = sim.server.sim.churn
    assert churn is not None
    churning: asyncio.Task[None] | None = None
    stepped = asyncio.Event()
    step_at = 0.0
    try:
        await connector.mark("snapshot complete", within=60)
        churning = asyncio.create_task(churn.run(20))
        await asyncio.sleep(rng.uniform(2.0, 3.0))  # polls and passes under way

        remaining = nth

        def on_request(filtered_by: str) -> None:
            nonlocal remaining, step_at
            if filtered_by != kind or stepped.is_set():
                return
            remaining -= 1
            if remaining == 0:
                step_at = time.time()
                sim.clock.advance(-back)  # an NTP correction upstream
                stepped.set()

        sim.server.sim.requests = StepAtRequest(sim.server.sim.requests, on_request)
        await asyncio.wait_for(stepped.wait(), 10)
        await asyncio.sleep(6)  # meetings keep changing, stamped by the older clock
        churning.cancel()
        await asyncio.gather(churning, return_exceptions=True)
        churning = None

        live = {m["meeting_id"]: m for m in await sim.truth(EVENT)}

        def final(events: list[dict[str, Any]]) -> bool:
            return converged([e for e in events if e["meeting_id"] in live], live)

        await log.wait_for(final, 60, "the API's final state")
        await log.settle(2)
        caught = await caught_total(port)
        passes = [m for m in log_lines(connector.log) if m.get("msg") == "reconciliation complete"]
    finally:
        if churning is not None:
            churning.cancel()
            await asyncio.gather(churning, return_exceptions=True)
        await connector.stop_quietly()
        log.close()

    # A pass that began before the step and ended after it: the one that could take versions
    # written since for changes polling missed (none begins for the step's length after it).
    across = [p for p in passes if _ts(p) - float(p["seconds"]) < step_at < _ts(p)]
    assert across, f"no reconciliation ran across the step ({len(passes)} passes)"
    reconciled = [
        (e["meeting_id"], e["change_type"])
        for e in log.events
        if e["source"]["window_kind"] == "reconcile" and e["change_type"] != "DELETED"
    ]
    assert (caught, reconciled) == (0, []), (
        f"back {back} s at {kind} request {nth}: versions left to reconciliation"
    )
    assert final(log.events)
    by_meeting: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in log.events:
        by_meeting[event["meeting_id"]].append(event)
    for meeting_id, events in by_meeting.items():
        for previous, event in itertools.pairwise(events):  # no version twice, none lost
            assert event["version"] > previous["version"], meeting_id
            assert event["before"] == previous["after"], meeting_id


@pytest.mark.timeout(120)
async def test_the_successor_of_a_process_killed_at_a_clock_step_back_skips_nothing(
    simulator_factory, kafka_bootstrap, unique_name
) -> None:
    """The process that would have seen the step is SIGKILLed as the API's clock goes back
    120 s, with watermarks of the old clock committed; meetings change while it is down. Its
    successor knows no step, only watermarks ahead of the clock and when they were committed:
    it must read from before that commit (rewinding by the overlap alone skipped what was
    written in the first seconds after the step). Reconciliation is off: only polling can
    publish them."""
    sim = await simulator_factory(SimulatorConfig(meetings=30, seed=3003))
    env = connector_env(
        api_base_url=sim.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("clock-kill"),
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="0",
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="0",
    )
    first = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    second: ConnectorProcess | None = None
    try:
        await first.mark("snapshot complete", within=60)
        await log.wait_for(lambda ev: len(ev) >= 30, 30, "the snapshot")
        await asyncio.sleep(1.5)  # a few polls on the old clock
        sim.clock.advance(-120)
        await first.kill()
        changed = await sim.truth(EVENT)
        for meeting in changed[:5]:
            await sim.patch(meeting["meeting_id"], location="after the step")
        created = [
            await sim.create(event_id=EVENT, start=1_900_000_000, participants=[1, 2])
            for _ in range(3)
        ]
        await asyncio.sleep(8)  # down longer than the settle delay and the overlap
        second = await ConnectorProcess(env).start()
        live = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
        await log.wait_for(lambda ev: converged(ev, live), 40, "the writes since the step")
    finally:
        await first.stop_quietly()
        if second is not None:
            await second.stop_quietly()
        log.close()
    published = {e["meeting_id"] for e in log.events if e["change_type"] == "CREATED"}
    assert set(created) <= published


@pytest.mark.timeout(90)
async def test_a_connector_started_after_a_clock_step_back_publishes_the_meetings_ahead_of_it(
    simulator_factory, kafka_bootstrap, unique_name
) -> None:
    """Meetings created just before the API's clock went back 120 s carry times ahead of the
    new clock; a connector that starts after the step sees no step at all. Its snapshot
    publishes them (reconciliation is off), not the new clock two minutes later."""
    sim = await simulator_factory(SimulatorConfig(meetings=10, seed=3004))
    created = [
        await sim.create(event_id=EVENT, start=1_900_000_000, participants=[1, 2]) for _ in range(3)
    ]
    sim.clock.advance(-120)
    env = connector_env(
        api_base_url=sim.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("clock-ahead"),
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="0",
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="0",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        live = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
        await log.wait_for(lambda ev: converged(ev, live), 40, "every meeting, those ahead too")
        await sim.patch(created[0], location="after the start")  # stamped by the new clock
        live = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
        await log.wait_for(lambda ev: converged(ev, live), 20, "a change since")
    finally:
        await connector.stop_quietly()
        log.close()
    first = {e["meeting_id"]: e["change_type"] for e in reversed(log.events)}
    assert {first[m] for m in created} == {"SNAPSHOT"}
