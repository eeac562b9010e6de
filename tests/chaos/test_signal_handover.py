"""Signals sent while the group moves events between replicas (issue 32): each is acted on
once, by whichever replica owns the event when it is read, and its effect stays.

Slow (two connector processes, a rebalance, about 40 s): ``pytest -m slow tests/chaos``
(``make chaos``), not ``make test``. The mechanism it relies on (the signals topic's offsets
committed in the event's progress, with each effect) is covered in ``make test`` by
``tests/integration/test_signals.py`` (a restart) and ``tests/integration/test_resnapshot.py``
(a SIGKILL half-way).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from connector.core.signals import SignalKind, signal_json
from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, free_port
from tests.integration.test_signals import TopicReader, cli, env_of, write_raw

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

EVENTS = (1, 2, 3, 4)


async def test_signals_sent_while_events_move_act_once_on_the_new_owner(
    simulator_factory, kafka_bootstrap, unique_name
):
    simulator = await simulator_factory(SimulatorConfig(event_ids=EVENTS, meetings=200, seed=3))
    name = unique_name("handover")
    events = ",".join(map(str, EVENTS))
    env_a = env_of(simulator, kafka_bootstrap, name, events, free_port())
    env_b = {**env_a, "MEETINGS_CDC_METRICS_PORT": str(free_port())}
    topic = env_a["MEETINGS_CDC_SIGNALS_TOPIC"]
    changes = ChangeLog(kafka_bootstrap, env_a["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env_a["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    a = await ConnectorProcess(env_a).start()
    b: ConnectorProcess | None = None
    try:
        await changes.wait_for(lambda e: len(e) >= 200, 90, "the snapshots")
        ids = {event: f"handover-pause-{event}" for event in EVENTS}

        async def pause(event: int) -> None:
            value = signal_json(SignalKind.PAUSE, event)
            await asyncio.to_thread(write_raw, kafka_bootstrap, topic, ids[event].encode(), value)

        b = await ConnectorProcess(env_b).start()
        await pause(1)  # while B joins: A may act before it lets go, or B after
        await pause(2)
        await b.mark("partitions assigned", 60)  # the events B takes are starting there
        await pause(3)
        await pause(4)
        await notes.wait_for(lambda r: all(notes.of(s) for s in ids.values()), 60, "answers")
        # the same id again, once every event has settled on its owner: acted on once only
        again = signal_json(SignalKind.PAUSE, 1)
        await asyncio.to_thread(write_raw, kafka_bootstrap, topic, ids[1].encode(), again)
        await notes.wait_for(lambda r: len(notes.of(ids[1])) >= 2, 30, "the repeat's answer")
        await notes.settle(2.0)

        for event, signal_id in ids.items():
            statuses = [n["status"] for n in notes.of(signal_id)]
            expected = ["COMPLETED", "REJECTED"] if event == 1 else ["COMPLETED"]
            assert statuses == expected, (event, notes.of(signal_id))
            code, out, err = await cli(env_a, "state", "show", "--event-id", str(event))
            assert code == 0, err
            assert json.loads(out)["paused"] is True
        owners = {n["owner"] for s in ids.values() for n in notes.of(s)}
        assert len(owners) == 2, f"no event moved during the test: {owners}"
        assert "already handled" in notes.of(ids[1])[1]["reason"]
    finally:
        await a.stop_quietly()
        if b is not None:
            await b.stop_quietly()
        changes.close()
        notes.close()
