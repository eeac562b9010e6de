"""``/readyz`` through a 75 s broker outage under churn (issue 30 item 1), a real broker.

The connector runs against a broker of this test's own (``OwnBroker``, never the shared
one), stopped for 75 s while the simulator changes 5 meetings a second. Within ~9 s the group
session times out and takes the event away, so the replica owns nothing: ``/readyz`` used to
answer 200 for the whole outage. It must answer 503 by the readiness limit (60 s) with a
reason naming Kafka and the event it last owned, 200 again after the first commit once the
broker is back, and nothing may be lost.

About 2.5 minutes: ``slow`` (``make chaos``), not ``make test``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from meetings_simulator.app import SimulatorConfig
from tests.chaos.broker import OwnBroker
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, converged, free_port
from tests.simulator_harness import EmbeddedSimulator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

EVENT = 1
#: Not the chaos suite's broker (29192) nor the shared one (19092).
PORT = 29492
OUTAGE_SECONDS = 75.0
#: The readiness limit (10 poll intervals, at least 60 s), the statistics' second, slack.
WITHIN_SECONDS = 60.0 + 1.0 + 4.0


async def _readyz(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            return response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _until_ready(port: int, within: float) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            answer = await _readyz(port)
            if answer is not None and answer[0] == 200:
                return answer[1]
            await asyncio.sleep(0.5)


@pytest.mark.timeout(400)
async def test_readyz_fails_during_a_broker_outage_and_recovers(unique_name) -> None:
    broker = OwnBroker(PORT)
    await broker.up()
    port = free_port()
    async with EmbeddedSimulator(SimulatorConfig(meetings=300, seed=30)) as sim:
        env = connector_env(
            api_base_url=sim.base_url,
            event_ids=str(EVENT),
            bootstrap=broker.bootstrap,
            name=unique_name("outage"),
            MEETINGS_CDC_METRICS_PORT=str(port),
            MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS="1",
            MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS="10",
        )
        connector = await ConnectorProcess(env).start()
        churn = sim.server.sim.churn
        assert churn is not None
        churning = asyncio.create_task(churn.run(5))
        changes: ChangeLog | None = None
        try:
            await _until_ready(port, 90)
            await asyncio.sleep(3)  # streaming under churn

            stopped = time.monotonic()
            await broker.down()
            answers: list[tuple[float, int, dict[str, Any]]] = []
            while (elapsed := time.monotonic() - stopped) < OUTAGE_SECONDS:
                answer = await _readyz(port)
                if answer is not None:
                    answers.append((elapsed, *answer))
                await asyncio.sleep(2)
            unready = [(t, body) for t, status, body in answers if status == 503]
            assert unready, f"/readyz answered 200 for the whole outage: {answers[-3:]}"
            first, body = unready[0]
            print(f"first 503 {first:.1f} s into the outage: {body['reasons']}")
            assert first <= WITHIN_SECONDS, (first, body)
            # Once unready, it stays so for the rest of the outage.
            assert all(status == 503 for t, status, _ in answers if t >= first), answers
            [reason] = [r for r in body["reasons"] if r.startswith("Kafka:")]
            assert "out of the replicas' group" in reason, reason
            assert f"events last owned here, taken by the group: {EVENT} (" in reason, reason

            await broker.up()
            restarted = time.monotonic()
            status = await _until_ready(port, 120)
            back = time.monotonic() - restarted
            age = status["events"][str(EVENT)]["last_success_age_seconds"]
            assert age is not None, status
            assert age < 5, status  # ready because it committed again
            assert back < 90, back
            print(f"200 again {back:.1f} s after the broker was back")

            churning.cancel()
            await asyncio.gather(churning, return_exceptions=True)
            truth = {m["meeting_id"]: m for m in await sim.truth(EVENT)}
            changes = ChangeLog(broker.bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
            await changes.wait_for(
                lambda events: converged(events, truth), 120, "every change of the outage"
            )
        finally:
            churning.cancel()
            await asyncio.gather(churning, return_exceptions=True)
            if changes is not None:
                changes.close()
            await connector.stop()
            await broker.down()
