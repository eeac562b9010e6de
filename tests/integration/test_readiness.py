"""``/readyz`` of a real connector process whose API key the simulator rejects.

An operator whose pod never turns ready reads the probe's body first: it must say why
(the HTTP status and the setting to check), not only "no successful cycle yet", and never
print the key it sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.connector_process import ConnectorProcess
from tests.integration.harness import connector_env, free_port

EVENT = 1
KEY = "k-4c1f0e2b9d7a"


async def _readyz(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            return response.status, await response.json()
    except aiohttp.ClientError:
        return None  # not listening yet


async def test_readyz_names_the_rejected_key_and_the_setting_to_check(
    simulator, kafka_bootstrap, unique_name
):
    await simulator.set_faults(error_rate=1.0, error_status=401)
    port = free_port()
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("readyz"),
        MEETINGS_CDC_METRICS_PORT=str(port),
        MEETINGS_CDC_API_KEY=KEY,
    )
    connector = await ConnectorProcess(env).start()
    try:
        reasons: list[str] = []
        async with asyncio.timeout(60):
            while not any("HTTP 401" in r for r in reasons):
                await asyncio.sleep(0.3)
                answer = await _readyz(port)
                if answer is not None:
                    status, body = answer
                    assert status == 503
                    assert body["ready"] is False
                    reasons = body["reasons"]
        [reason] = [r for r in reasons if r.startswith(f"event {EVENT}:")]
        assert "no successful cycle yet; last error:" in reason
        assert "MEETINGS_CDC_API_KEY" in reason
        assert KEY not in reason

    finally:
        await connector.stop_quietly()
    assert KEY not in connector.log
