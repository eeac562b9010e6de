"""API economy end to end (issue 15): a quiet poll costs one request at the simulator once the
connector has proven that last-modified windows show new meetings; against an API that does
not stamp creations it keeps its created windows and loses no creation.

The connector runs as a real process against the real broker and the simulator over HTTP;
requests are counted by the simulator (``GET /admin/requests``), polls by the connector's
``meetings_cdc_cycles_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from connector.source.creation_stamps import CONFIRMATIONS
from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, free_port, metric_sample

EVENT = 1
LEARNT = "new meetings show in last-modified windows"


async def polls(port: int) -> float:
    """Incremental cycles the connector ran (its /metrics)."""
    found = await metric_sample(
        port, "meetings_cdc_cycles_total", phase="incremental", outcome="ok"
    )
    return found or 0.0


@pytest.fixture
async def connect(kafka_bootstrap, unique_name):  # type: ignore[no-untyped-def]
    started: list[tuple[ConnectorProcess, ChangeLog]] = []

    async def start(simulator, **overrides: str):  # type: ignore[no-untyped-def]
        port = free_port()
        env = connector_env(
            api_base_url=simulator.base_url,
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=unique_name("budget"),
            MEETINGS_CDC_POLL_INTERVAL_SECONDS="1",
            MEETINGS_CDC_METRICS_PORT=str(port),
            MEETINGS_CDC_METRICS_HOST="127.0.0.1",
            **overrides,
        )
        connector = await ConnectorProcess(env).start()
        log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
        started.append((connector, log))
        return connector, log, port

    yield start
    for connector, log in started:
        await connector.stop_quietly()
        log.close()


async def first_poll(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientConnectionError):
            if await polls(port) > 0:
                return
        await asyncio.sleep(0.2)
    raise AssertionError("no poll")


async def create(simulator, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    start = int(time.time()) + 86_400
    return [
        await simulator.create(event_id=EVENT, start=start, participants=[1, 2])
        for _ in range(count)
    ]


def created_events(events: list[dict], ids: list[int]) -> bool:  # type: ignore[type-arg]
    return {e["meeting_id"] for e in events if e["change_type"] == "CREATED"} >= set(ids)


async def quiet_period(simulator, port: int, seconds: float) -> tuple[dict[str, int], float]:  # type: ignore[no-untyped-def]
    """Requests the simulator received, by time filter, and polls run, over ``seconds``."""
    before, polls_before = await simulator.requests(), await polls(port)
    await asyncio.sleep(seconds)
    after, polls_after = await simulator.requests(), await polls(port)
    return {k: after[k] - before[k] for k in after}, polls_after - polls_before


async def test_a_quiet_poll_costs_one_request_once_creations_show_in_modified_windows(
    simulator_factory, connect
) -> None:
    sim = await simulator_factory(SimulatorConfig(meetings=20, seed=3))
    connector, log, port = await connect(sim)
    await log.wait_for(lambda events: len(events) >= 20, 60, "the snapshot")

    first = await create(sim, CONFIRMATIONS)
    await log.wait_for(lambda events: created_events(events, first), 30, "the creations")
    deadline = time.monotonic() + 30
    while LEARNT not in connector.log and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    assert LEARNT in connector.log
    await asyncio.sleep(4)  # the creations leave the overlap

    spent, ran = await quiet_period(sim, port, 10)
    assert ran >= 8
    # one last-modified window per poll; created-filter requests are only clock probes
    # (an always-empty created window, at most every 5 s while the estimate settles)
    assert spent["last_modified"] <= ran + 1
    assert spent["created"] <= 3
    assert spent["export"] / ran <= 1.3
    assert spent["rate_limited"] == 0

    # a creation is still published, through the last-modified window alone
    later = await create(sim, 1)
    await log.wait_for(lambda events: created_events(events, later), 20, "a later creation")
    assert connector.log.count("cycle failed") == 0


async def test_an_api_that_does_not_stamp_creations_keeps_its_created_windows(
    simulator_factory, connect
) -> None:
    sim = await simulator_factory(SimulatorConfig(meetings=0, modified_at_creation=False))
    connector, log, port = await connect(sim)
    await first_poll(port)  # streaming: what is created from now on is CREATED
    ids: list[int] = []
    for _ in range(2 * CONFIRMATIONS):
        ids += await create(sim, 1)
        await asyncio.sleep(0.7)
    await log.wait_for(lambda events: created_events(events, ids), 30, "every creation")

    spent, ran = await quiet_period(sim, port, 4)
    assert spent["created"] >= ran  # the created window of every poll stays
    assert LEARNT not in connector.log
    counts = [e["meeting_id"] for e in log.events]
    assert sorted(counts) == sorted(ids)  # each exactly once
