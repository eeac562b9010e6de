"""SIGTERM stops the connector within its shutdown bound, even with Kafka hanging."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import KAFKA_SCRIPT
from tests.integration.harness import ChangeLog, ConnectorProcess, connector_env

PORT = os.environ.get("MEETINGS_CDC_TEST_FROZEN_KAFKA_PORT", "29392")
CACHE = Path(os.environ.get("MEETINGS_CDC_CACHE", Path.home() / ".cache" / "meetings-cdc"))


@pytest.fixture
def own_broker():
    """A broker of this test's own (it gets frozen), stopped afterwards."""
    env = {**os.environ, "KAFKA_PORT": PORT}
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True, env=env)
    pid = int((CACHE / "run" / f"kafka-{PORT}" / "kafka.pid").read_text())
    try:
        yield f"127.0.0.1:{PORT}", pid
    finally:
        os.kill(pid, signal.SIGCONT)
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=False, env=env)


async def test_sigterm_with_a_frozen_broker_exits_within_the_shutdown_timeout(
    simulator, own_broker, unique_name
):
    bootstrap, broker_pid = own_broker
    await simulator.create(event_id=1, start=1_900_000_000, participants=[1, 2])
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids="1",
        bootstrap=bootstrap,
        name=unique_name("frozen"),
        MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS="3",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: len(ev) == 1, 60, "the snapshot")
        log.close()
        os.kill(broker_pid, signal.SIGSTOP)  # every Kafka call now hangs
        await simulator.create(event_id=1, start=1_900_000_000, participants=[3, 4])
        await asyncio.sleep(3)  # the next cycle is now stuck committing

        started = time.monotonic()
        code = await connector.terminate(within=30)
        took = time.monotonic() - started

        assert code == 0
        assert took < 3 + 5, f"shutdown took {took:.1f} s"
        assert "shutdown timeout reached" in connector.log
    finally:
        await connector.stop_quietly()
