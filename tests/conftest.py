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
