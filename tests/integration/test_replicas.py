"""Replicas sharing events through the consumer group over the state topic (real broker)."""

from __future__ import annotations

import asyncio

from confluent_kafka import Producer

from tests.integration.harness import ChangeLog, ConnectorProcess, connector_env

T0 = 1_900_000_000


def _has(meeting_id: int, change_type: str):
    return lambda events: any(
        e["meeting_id"] == meeting_id and e["change_type"] == change_type for e in events
    )


async def test_a_fenced_event_stops_alone_and_the_process_runs_on(
    simulator, kafka_bootstrap, unique_name
):
    """Another producer with one event's transactional id fences it: that event stops here,
    the replica keeps running its other event (it used to exit 1)."""
    name = unique_name("fenced")
    env = connector_env(
        api_base_url=simulator.base_url, event_ids="1,2", bootstrap=kafka_bootstrap, name=name
    )
    await simulator.create(event_id=1, start=T0, participants=[1])
    await simulator.create(event_id=2, start=T0, participants=[2])
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: len(ev) == 2, 60, "both snapshots")
        usurper = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{name}.1"})
        await asyncio.to_thread(usurper.init_transactions, 30)
        # the next commit of event 1 is rejected: wait for it to be noticed
        await simulator.create(event_id=1, start=T0, participants=[3])
        await _wait_for_log(connector, "fenced by another replica", 30)
        meeting = await simulator.create(event_id=2, start=T0, participants=[4])
        await log.wait_for(_has(meeting, "CREATED"), 30, "event 2 goes on")
        assert connector.process is not None
        assert connector.process.returncode is None
        assert await connector.terminate() == 0
    finally:
        log.close()
        await connector.stop_quietly()


async def _wait_for_log(connector: ConnectorProcess, text: str, within: float) -> None:
    async with asyncio.timeout(within):
        while text not in connector.log:  # noqa: ASYNC110 - polling a growing buffer
            await asyncio.sleep(0.2)
