"""A pause during a snapshot (issue 32): the snapshot stops at its next part, polls nothing
while paused, and finishes on resume with every meeting exactly once.

Slow (a snapshot of 12,000 meetings behind a slow API, a kill and a restart: about a
minute): ``pytest -m slow tests/chaos`` (``make chaos``), not ``make test``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, free_port
from tests.integration.test_signals import (
    PAUSED_SECONDS,
    TopicReader,
    cli,
    env_of,
    requests_of,
    signal,
    write_raw,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]


async def test_a_pause_during_a_snapshot_stops_it_at_its_next_part_and_resume_finishes_it(
    simulator_factory, kafka_bootstrap, unique_name
):
    meetings = 12_000  # more than one snapshot transaction (5,000 meetings each)
    simulator = await simulator_factory(SimulatorConfig(meetings=meetings, seed=7))
    await simulator.set_faults(
        latency_ms=300
    )  # a slow snapshot: its first part after a restart too
    name, port = unique_name("snappause"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    env["MEETINGS_CDC_API_PER_PAGE"] = "200"
    topic = env["MEETINGS_CDC_SIGNALS_TOPIC"]
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        # a snapshot under way, its progress committed: killed, paused while down, restarted
        await changes.wait_for(lambda e: len(e) > 0, 90, "the snapshot's first transaction")
        await connector.kill()
        pause = json.dumps({"type": "pause", "event_id": 1}).encode()
        await asyncio.to_thread(write_raw, kafka_bootstrap, topic, b"mid-snapshot", pause)
        connector = await ConnectorProcess(env).start()
        await notes.wait_for(lambda r: notes.of("mid-snapshot"), 60, "the pause's answer")
        assert notes.of("mid-snapshot")[0]["status"] == "COMPLETED"
        code, out, err = await cli(env, "state", "show", "--event-id", "1")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["paused"] is True
        assert shown["phase"] == "snapshot", connector.failure("the pause waited for the snapshot")
        await asyncio.sleep(1.0)
        before = await requests_of(simulator, 1)
        await asyncio.sleep(PAUSED_SECONDS)
        assert await requests_of(simulator, 1) == before

        await simulator.clear_faults()
        code, _, err = await signal(env, "resume", "--event-id", "1")
        assert code == 0, err
        await changes.wait_for(
            lambda e: len({x["meeting_id"] for x in e}) >= meetings, 120, "the whole snapshot"
        )
        await changes.settle(1)
        snapshots = [e["meeting_id"] for e in changes.events if e["change_type"] == "SNAPSHOT"]
        assert len(snapshots) == len(set(snapshots)) == meetings
        # 12,000 meetings: more transactions than an IN_PROGRESS needs (sync/snapshot.py)
        await notes.wait_for(
            lambda r: any(n["kind"] == "snapshot" and n["status"] == "COMPLETED" for n in r),
            30,
            "the snapshot's COMPLETED",
        )
        steps = [n["status"] for n in notes.records if n["kind"] == "snapshot"]
        assert steps[0] == "STARTED"
        assert "IN_PROGRESS" in steps
        assert steps[-1] == "COMPLETED"
        progress = next(n for n in notes.records if n["status"] == "IN_PROGRESS")
        assert progress["counts"]["transactions"] >= 2
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()
