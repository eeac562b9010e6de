"""SIGTERM stops the connector within its shutdown bound, even with Kafka hanging."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import KAFKA_SCRIPT
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, free_port

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


async def _wait_for_log(connector: ConnectorProcess, text: str, within: float) -> None:
    async with asyncio.timeout(within):
        while text not in connector.log:
            assert connector.process is not None
            if connector.process.returncode is not None:
                raise AssertionError(f"exited before logging {text!r}: {connector.log}")
            await asyncio.sleep(0.05)


async def test_sigterm_while_kafka_is_unreachable_at_start_up_exits_0_promptly(
    simulator, unique_name
):
    # Nothing listens on this port: every start-up Kafka call waits for its timeout.
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids="1",
        bootstrap=f"127.0.0.1:{free_port()}",
        name=unique_name("unreachable"),
        MEETINGS_CDC_METRICS_PORT=str(free_port()),
        MEETINGS_CDC_LOG_LEVEL="DEBUG",
    )
    connector = await ConnectorProcess(env).start()
    try:
        await _wait_for_healthz(int(env["MEETINGS_CDC_METRICS_PORT"]), connector)
        started = time.monotonic()
        code = await connector.terminate(within=30)
        took = time.monotonic() - started

        assert code == 0, connector.log
        assert took < 5, f"exit took {took:.1f} s"
        assert "stopped during start-up" in connector.log
    finally:
        await connector.stop_quietly()


async def test_sigterm_right_after_the_state_restore_keeps_the_snapshot_from_starting(
    simulator, kafka_bootstrap, unique_name
):
    await simulator.create(event_id=1, start=1_900_000_000, participants=[1, 2])
    # Every API request takes 2 s: the first one (learning the API's clock) is in flight
    # when the SIGTERM arrives, just after the restore.
    await simulator.set_faults(latency_ms=2000)
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids="1",
        bootstrap=kafka_bootstrap,
        name=unique_name("early-stop"),
        MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS="15",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await _wait_for_log(connector, "state restored", 60)
        started = time.monotonic()
        code = await connector.terminate(within=30)
        took = time.monotonic() - started

        assert code == 0, connector.log
        assert took < 2 + 3, f"exit took {took:.1f} s"
        assert "starting event" not in connector.log  # the snapshot never began
        assert "shutdown timeout reached" not in connector.log
        await log.settle(2)
        assert log.events == []
    finally:
        log.close()
        await connector.stop_quietly()


async def _wait_for_healthz(port: int, connector: ConnectorProcess) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            assert connector.process is not None
            assert connector.process.returncode is None, connector.log
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
