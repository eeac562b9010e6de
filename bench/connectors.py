"""A benchmarked connector's settings and topics, and reading what it committed (the process
itself is ``tests.connector_process.ConnectorProcess``, shared with the tests)."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError

from bench.common import bootstrap
from tests.connector_process import connector_env as shared_connector_env

#: What a benchmarked connector runs with: no API rate limit (the benchmark measures the
#: connector, not the vendor's quota), 1 s polls, JSON logs (the marks are log lines).
BENCH_SETTINGS: dict[str, str] = {
    "MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND": "0",
    "MEETINGS_CDC_POLL_INTERVAL_SECONDS": "1",
    "MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS": "0",
    "MEETINGS_CDC_LOG_LEVEL": "INFO",
    "MEETINGS_CDC_LOG_FORMAT": "json",
}


def connector_env(api_base_url: str, event_id: int, name: str, **overrides: str) -> dict[str, str]:
    """Settings of a benchmarked connector of one event: topics named after ``name``."""
    return shared_connector_env(
        api_base_url=api_base_url,
        event_ids=str(event_id),
        bootstrap=bootstrap(),
        name=name,
        **{**BENCH_SETTINGS, **overrides},
    )


def topics_of(name: str) -> list[str]:
    """The topics a connector named ``name`` creates (see :func:`connector_env`)."""
    return [f"{name}.changes", f"{name}.state", f"{name}.dlq"]


def read_topic(topic: str, expected: int | None = None, idle: float = 3.0) -> list[Any]:
    """Every committed record of ``topic`` (read_committed), until ``expected`` records or
    ``idle`` seconds without any. Blocking."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": f"bench-read-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle and (expected is None or len(found) < expected):
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() in (KafkaError._PARTITION_EOF,):
                        continue
                    raise RuntimeError(error.str())
                found.append(msg)
                last = time.monotonic()
    finally:
        consumer.close()
    return found
