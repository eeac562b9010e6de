"""Shared fixtures: a real Kafka broker (session), unique topics, admin and clients."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "deploy" / "local" / "kafka.sh"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker.

    Uses ``MEETINGS_CDC_TEST_BOOTSTRAP`` when set (``make test`` sets it); otherwise starts
    a broker on port 29092 through ``deploy/local/kafka.sh`` (the ``make kafka-up`` path)
    and stops it at the end of the session.
    """
    given = os.environ.get("MEETINGS_CDC_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    port = os.environ.get("MEETINGS_CDC_TEST_KAFKA_PORT", "29092")
    env = {**os.environ, "KAFKA_PORT": port, "PYTHON": os.environ.get("PYTHON", "")}
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True, env=env)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=False, env=env)


@pytest.fixture(scope="session")
def registry_url() -> Iterator[str]:
    """The Confluent-compatible API of a real schema registry (Apicurio Registry).

    Uses ``MEETINGS_CDC_TEST_REGISTRY_URL`` when set (``make test`` sets it); otherwise
    starts one on port 28081 (``MEETINGS_CDC_TEST_REGISTRY_PORT``) through
    ``deploy/local/registry.sh`` (the ``make registry-up`` path) and stops it at the end of
    the session. One registry per session: tests keep apart by unique subject names.
    """
    given = os.environ.get("MEETINGS_CDC_TEST_REGISTRY_URL")
    if given:
        yield given.rstrip("/")
        return
    from tests.registry_process import LocalRegistry

    port = int(os.environ.get("MEETINGS_CDC_TEST_REGISTRY_PORT", "28081"))
    registry = LocalRegistry(port, management_port=port + 1)
    registry.up()
    try:
        yield registry.url
    finally:
        registry.down()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Return a factory of names unique to this test (topics, connector names)."""
    base = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}.{base}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def admin(kafka_bootstrap: str):  # type: ignore[no-untyped-def]
    """An AdminClient on the test broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def topic_factory(admin, unique_name):  # type: ignore[no-untyped-def]
    """Create uniquely named topics: ``topic_factory('changes', partitions=3, config={...})``."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def make(prefix: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            with contextlib.suppress(Exception):  # best-effort clean-up of test topics
                future.result(timeout=30)


# --- API simulator (issue 3) ----------------------------------------------------------------
# `simulator`: an in-process simulator (empty event 1, wall clock) with admin helpers and
# `.clock` (SimClock: skew_seconds, freeze(), advance(), unfreeze()).
# `simulator_factory`: `await simulator_factory(SimulatorConfig(...), clock=...)` for more.
# `simulator_process`: `await simulator_process("--meetings", "1000", ...)` runs
# `meetings-cdc simulate` as a subprocess; same helpers, clock via `await sim.set_clock(...)`.


@pytest.fixture
async def simulator_factory():  # type: ignore[no-untyped-def]
    """Start in-process simulators (``EmbeddedSimulator``); all stop at teardown."""
    from tests.simulator_harness import EmbeddedSimulator

    started: list[EmbeddedSimulator] = []

    async def start(config=None, *, clock=None):  # type: ignore[no-untyped-def]
        sim = EmbeddedSimulator(config, clock=clock)
        await sim.__aenter__()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.__aexit__(None, None, None)


@pytest.fixture
async def simulator(simulator_factory):  # type: ignore[no-untyped-def]
    """An empty in-process simulator (event 1) on 127.0.0.1 and an ephemeral port."""
    return await simulator_factory()


@pytest.fixture
async def simulator_process():  # type: ignore[no-untyped-def]
    """Start ``meetings-cdc simulate`` subprocesses (``SimulatorProcess``); stopped at teardown."""
    from tests.simulator_harness import SimulatorProcess

    started: list[SimulatorProcess] = []

    async def start(*args: str, startup_timeout: float = 120.0):  # type: ignore[no-untyped-def]
        sim = SimulatorProcess(args, startup_timeout=startup_timeout)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.stop()
