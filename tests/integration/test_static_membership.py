"""Static group membership (``MEETINGS_CDC_INSTANCE_ID``) against the real broker (issue 30
item 3): a replica SIGKILLed and started again at once under the same identity takes its dead
predecessor's place without waiting for its session timeout, and a static replica that stops
on SIGTERM still hands its events over at once (it leaves the group: ``unsubscribe()`` before
``close()``; librdkafka's ``close()`` alone does not, for a static member).

Session timeout 10 s (the default): without those, the next commit comes after it (~10 s).
Times are the replicas' own "cycle committed" log lines (quiet cycles log them at DEBUG).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from tests.chaos.runner import log_lines
from tests.connector_process import ConnectorProcess
from tests.integration.harness import connector_env

pytestmark = pytest.mark.integration

EVENT = 1
SESSION_TIMEOUT_MS = 10_000
#: Well under the session timeout: a restart or handover that waited for it fails.
WITHIN_SECONDS = 6.0


def _commits(process: ConnectorProcess) -> list[float]:
    return [
        datetime.fromisoformat(line["ts"]).timestamp()
        for line in log_lines(process.log)
        if line.get("msg") == "cycle committed" and line.get("event_id") == EVENT
    ]


def _owns(process: ConnectorProcess) -> bool:
    lines = log_lines(process.log)
    started = sum(
        1
        for line in lines
        if line.get("msg") == "partitions assigned" and EVENT in line.get("started_events", [])
    )
    stopped = sum(
        1
        for line in lines
        if str(line.get("msg", "")).startswith("partitions ")
        and EVENT in line.get("stopped_events", [])
    )
    return started > stopped


async def _first_commit_after(process: ConnectorProcess, moment: float, within: float) -> float:
    async with asyncio.timeout(within):
        while not any(t > moment for t in _commits(process)):  # noqa: ASYNC110 - a growing log
            await asyncio.sleep(0.1)
    return min(t for t in _commits(process) if t > moment) - moment


def _env(sim_url: str, bootstrap: str, name: str) -> dict[str, str]:
    return connector_env(
        api_base_url=sim_url,
        event_ids=str(EVENT),
        bootstrap=bootstrap,
        name=name,
        MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
        MEETINGS_CDC_LOG_LEVEL="DEBUG",
    )


async def test_sigkill_and_restart_with_the_same_instance_id_commits_within_seconds(
    simulator_process, kafka_bootstrap, unique_name
) -> None:
    sim = await simulator_process("--meetings", "300", "--churn-per-second", "5")
    name = unique_name("crash")
    env = {**_env(sim.base_url, kafka_bootstrap, name), "MEETINGS_CDC_INSTANCE_ID": f"{name}-0"}
    replica = await ConnectorProcess(env).start()
    try:
        await _first_commit_after(replica, time.time(), 90)
        await asyncio.sleep(2)

        killed = time.time()
        await replica.kill()
        await replica.start()  # the same command, the same settings: the same identity
        gap = await _first_commit_after(replica, killed, 60)

        assert gap < WITHIN_SECONDS, replica.failure(f"next commit {gap:.1f} s after the kill")
    finally:
        await replica.stop_quietly()


async def test_a_static_replica_stopped_on_sigterm_hands_its_event_over_at_once(
    simulator_process, kafka_bootstrap, unique_name
) -> None:
    sim = await simulator_process("--meetings", "300", "--churn-per-second", "5")
    name = unique_name("handover")
    env = _env(sim.base_url, kafka_bootstrap, name)
    replicas = [
        await ConnectorProcess({**env, "MEETINGS_CDC_INSTANCE_ID": f"{name}-{n}"}).start()
        for n in range(2)
    ]
    try:
        async with asyncio.timeout(90):
            while not any(_owns(p) and _commits(p) for p in replicas):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        owner = next(p for p in replicas if _owns(p))
        other = next(p for p in replicas if p is not owner)
        await asyncio.sleep(2)

        stopped = time.time()
        assert await owner.terminate() == 0
        gap = await _first_commit_after(other, stopped, 60)

        assert gap < WITHIN_SECONDS, owner.failure(f"taken over {gap:.1f} s after the SIGTERM")
    finally:
        for process in replicas:
            await process.stop_quietly()
