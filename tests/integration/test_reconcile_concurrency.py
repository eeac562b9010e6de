"""Issue 14: polling never waits for a reconciliation, and a pass judging a moving state
publishes neither stale versions nor false deletes (real broker, simulator over HTTP)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, converged
from tests.integration.lives import assert_consecutive

EVENT = 1
MEETINGS = 1_500
T0 = 1_900_000_000


def _passes(connector: ConnectorProcess) -> int:
    return connector.log.count("reconciliation complete")


async def _until(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_changes_made_during_a_pass_are_published_before_it_commits(
    simulator_factory, kafka_bootstrap, unique_name
):
    from meetings_simulator.app import SimulatorConfig

    sim = await simulator_factory(SimulatorConfig(meetings=MEETINGS, seed=14))
    name = unique_name("concurrent")
    env = connector_env(
        api_base_url=sim.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=name,
        # one partition: the topic's order is the commit order
        MEETINGS_CDC_CHANGES_TOPIC_PARTITIONS="1",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="1",  # passes back to back
        MEETINGS_CDC_API_PER_PAGE="25",
        MEETINGS_CDC_API_MAX_CONCURRENCY="2",
        # passes slowed by the API's latency below, not by their pace (60 pages a pass)
        MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND="0",
    )
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    connector = await ConnectorProcess(env).start()
    try:
        await log.wait_for(lambda ev: len(ev) >= MEETINGS, 120, "the snapshot")
        # Slow every request down: a pass (60 pages) now takes several seconds.
        await sim.set_faults(latency_ms=120)
        truth = await sim.truth(EVENT)
        by_created = sorted(truth, key=lambda m: (m["created_at"], m["meeting_id"]))
        last = by_created[-1]["meeting_id"]  # read last by every pass
        await _until(lambda: _passes(connector) >= 1, 120, "a first slow pass")
        done = _passes(connector)
        await _until(lambda: _passes(connector) > done, 120, "the end of a pass")
        # The next pass starts now. Delete the meeting it reads last: its DELETED is
        # published by that pass's own (last) transaction, seconds from now.
        await sim.delete(last)
        changed = [m["meeting_id"] for m in by_created[:40:4]]  # read early by the pass
        for meeting_id in changed:
            await sim.patch(meeting_id, location="Moved during the pass")
        created = [
            await sim.create(event_id=EVENT, start=T0 + i * 600, participants=[9000 + i, 9100])
            for i in range(3)
        ]
        await log.wait_for(
            lambda ev: any(e["meeting_id"] == last and e["change_type"] == "DELETED" for e in ev),
            120,
            "the DELETED of the pass",
        )
        await sim.clear_faults()
        final = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
        await log.wait_for(lambda ev: converged(ev, final), 90, "the final state")
        await log.settle(3)
        assert await connector.terminate() == 0
    finally:
        await connector.stop_quietly()
        log.close()

    events = log.events
    deleted_at = next(
        i for i, e in enumerate(events) if e["meeting_id"] == last and e["change_type"] == "DELETED"
    )
    # Polling went on during the pass: every change made as it began was published by an
    # incremental cycle before the pass's own commit.
    for meeting_id in [*changed, *created]:
        first_after = [
            i
            for i, e in enumerate(events)
            if e["meeting_id"] == meeting_id and e["change_type"] in ("UPDATED", "CREATED")
        ]
        assert first_after, f"no event for {meeting_id}"
        assert first_after[0] < deleted_at, f"{meeting_id} waited for the pass"
        assert events[first_after[0]]["source"]["window_kind"] != "reconcile"
    # No stale version, no false delete: per meeting, versions run on by 1 with each
    # event's before the previous after, and only the deleted meeting has a DELETED.
    by_meeting: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_meeting.setdefault(event["meeting_id"], []).append(event)
    for meeting_id, history in by_meeting.items():
        assert_consecutive(history)
        for previous, event in itertools.pairwise(history):
            assert event["before"] == previous["after"], meeting_id
        if meeting_id != last:
            assert all(e["change_type"] != "DELETED" for e in history), meeting_id
    for meeting_id in changed:
        assert [e["change_type"] for e in by_meeting[meeting_id]] == ["SNAPSHOT", "UPDATED"]
    for meeting_id in created:
        assert [e["change_type"] for e in by_meeting[meeting_id]] == ["CREATED"]
    assert [e["change_type"] for e in by_meeting[last]] == ["SNAPSHOT", "DELETED"]
