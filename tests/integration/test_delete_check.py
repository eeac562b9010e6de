"""Issue 15: hard deletes within the delete check's interval, the full reconciliation far
away; over the simulator (HTTP) and the real broker, with ``meetings-cdc run``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, free_port
from tests.integration.lives import numbered

EVENT = 1
MEETINGS = 300


@pytest.fixture
async def connector(simulator_factory, kafka_bootstrap, unique_name):
    """Start one connector over a seeded simulator; yields (simulator, process, log, port)."""
    started: list[ConnectorProcess] = []
    logs: list[ChangeLog] = []

    async def start(sim_config: SimulatorConfig, **overrides: str):
        sim = await simulator_factory(sim_config)
        port = free_port()
        env = connector_env(
            api_base_url=sim.base_url,
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=unique_name("deletes"),
            MEETINGS_CDC_METRICS_PORT=str(port),
            **overrides,
        )
        process = await ConnectorProcess(env).start()
        started.append(process)
        log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
        logs.append(log)
        return sim, process, log, port

    yield start
    for process in started:
        await process.stop_quietly()
    for log in logs:
        log.close()


async def _get(port: int, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return await response.text()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _until(condition: Callable[[], bool], within: float) -> None:
    """Wait until ``condition()`` holds (a log line of the connector process, say)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the condition is another process's output
            await asyncio.sleep(0.1)


async def _check_state(port: int, within: float) -> dict[str, float]:
    """The event's ``meetings_cdc_delete_check_state`` once one state is 1 (each state 0 or
    1; all three series are there)."""
    async with asyncio.timeout(within):
        while True:
            text = await _get(port, "/metrics")
            states = {
                state: _metric(text, "meetings_cdc_delete_check_state", state=state)
                for state in ("scheduled", "off", "unavailable")
            }
            if 1 in states.values():
                for state in states:
                    assert (
                        f'meetings_cdc_delete_check_state{{event_id="{EVENT}",state="{state}"}}'
                        in text
                    )
                return states
            await asyncio.sleep(0.2)


def _deleted(events: list[dict[str, Any]]) -> set[int]:
    return {e["meeting_id"] for e in events if e["change_type"] == "DELETED"}


async def _snapshot(log: ChangeLog) -> list[int]:
    await log.wait_for(
        lambda events: sum(e["change_type"] == "SNAPSHOT" for e in events) == MEETINGS,
        120,
        "the snapshot",
    )
    return sorted({e["meeting_id"] for e in log.events})


async def test_a_hard_delete_is_published_within_the_check_interval(connector):
    """Fails without the delete check: reconciliation, the only other way to see a delete,
    is an hour away here."""
    sim, _, log, port = await connector(
        SimulatorConfig(meetings=MEETINGS, seed=15),
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="2",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="3600",
    )
    ids = await _snapshot(log)
    changed, victims = ids[10], {ids[3], ids[150], ids[-5]}
    truth = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
    # A participant change of an old meeting alters its range's count too: polling
    # publishes it, the check must not take it for a delete.
    await sim.patch(changed, participants=[*truth[changed]["participants"], 999_999])
    loop = asyncio.get_running_loop()
    began = loop.time()
    for meeting_id in victims:
        await sim.delete(meeting_id)
    # interval (2 s) + a poll (0.5 s) + settle (1 s) + slack for a loaded machine
    await log.wait_for(lambda events: _deleted(events) >= victims, 12, "DELETED of each")
    latency = loop.time() - began
    await log.settle(3)
    assert _deleted(log.events) == victims, "exactly the deleted meetings, once each"
    assert [e["change_type"] for e in log.of(changed)] == ["SNAPSHOT", "PARTICIPANTS_CHANGED"]
    for meeting_id in victims:
        (event,) = [e for e in log.of(meeting_id) if e["change_type"] == "DELETED"]
        assert event["after"] is None
        assert event["before"]["meeting_id"] == meeting_id
        assert numbered(log.of(meeting_id))[-1] == ("DELETED", 2)
    metrics = await _get(port, "/metrics")
    assert _metric(metrics, "meetings_cdc_delete_check_deletions_total") == len(victims)
    assert _metric(metrics, "meetings_cdc_delete_checks_total", outcome="clean") >= 1
    assert _metric(metrics, "meetings_cdc_cycles_total", phase="reconcile") == 0
    status = await _get(port, "/status")
    assert '"delete_check": "every 2 s"' in status
    assert await _check_state(port, 1) == {"scheduled": 1, "off": 0, "unavailable": 0}
    assert latency < 12


async def test_what_reconciliation_finds_after_the_check_is_nothing(connector):
    """The full pass stays as the safety net; its "caught" count stays 0 when the delete
    check did its job (a delete made just after a pass: the check runs before the next)."""
    sim, process, log, port = await connector(
        SimulatorConfig(meetings=MEETINGS, seed=16),
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="1",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="8",
    )
    ids = await _snapshot(log)
    passes = re.compile(r"reconciliation complete")

    def passes_done() -> int:
        return len(passes.findall(process.log))

    await _until(lambda: passes_done() >= 1, 60)
    done = passes_done()
    victims = {ids[7], ids[200]}
    for meeting_id in victims:
        await sim.delete(meeting_id)
    await log.wait_for(lambda events: _deleted(events) >= victims, 10, "DELETED of each")
    await _until(lambda: passes_done() > done, 60)
    await log.settle(2)
    assert _deleted(log.events) == victims
    assert sum(e["change_type"] == "DELETED" for e in log.events) == len(victims)
    metrics = await _get(port, "/metrics")
    assert _metric(metrics, "meetings_cdc_reconcile_caught_changes_total") == 0
    assert _metric(metrics, "meetings_cdc_delete_check_deletions_total") == len(victims)


async def test_an_api_without_totals_is_named_at_start_up(connector):
    _, process, _, port = await connector(
        SimulatorConfig(meetings=10, omit_total=True),
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="1",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="900",
    )
    await _until(lambda: "delete check unavailable" in process.log, 30)
    assert process.log.count("delete check unavailable") == 1
    status = await _get(port, "/status")
    assert "unavailable: the export API reports no row totals" in status
    assert "reconciliation every 900 s" in status
    # what MeetingsCdcDeleteCheckUnavailable fires on (issue 35)
    assert await _check_state(port, 5) == {"scheduled": 0, "off": 0, "unavailable": 1}


async def test_a_check_turned_off_says_off_not_unavailable(connector):
    """Interval 0 on purpose: the state gauge says off, so the unavailable alert stays
    silent (issue 35: it fired here, knowing no better than "no check ended"). The API
    reports totals, and the connector does not even ask."""
    _, process, log, port = await connector(
        SimulatorConfig(meetings=MEETINGS, seed=17),
        MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="0",
        MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="900",
    )
    await _snapshot(log)
    assert await _check_state(port, 10) == {"scheduled": 0, "off": 1, "unavailable": 0}
    status = await _get(port, "/status")
    assert "off: deletes are found by reconciliation" in status
    metrics = await _get(port, "/metrics")
    assert _metric(metrics, "meetings_cdc_delete_check_requests_total") == 0
    assert "delete check unavailable" not in process.log
