"""Start-up check that a broker of ``MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS`` answers.

An unreachable cluster at start-up is named in one line within seconds, with each address
and librdkafka's reason (connection refused, name not resolved, TLS/SASL failure), and the
process exits 1: under Kubernetes the pod is restarted with backoff, visible as
CrashLoopBackOff with that line in ``kubectl logs --previous``. (A broker lost later is
retried by the running connector instead, see README "When things go wrong".)
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Protocol

from confluent_kafka import KafkaException

from connector.errors import ConnectorError
from connector.ops.librdkafka_logs import LOGGER_NAME

STARTUP_TIMEOUT_SECONDS = 10.0
# "[thrd:HOST:PORT/bootstrap]: HOST:PORT/bootstrap: REASON (after 0ms in state CONNECT)"
_FAILURE = re.compile(
    r"^\[thrd:[^\]]*\]: (?P<address>[^/\s]+)/\S+: (?P<reason>.*?)(?: \(after .*)?$"
)


class KafkaClient(Protocol):
    """What the check needs of a client: an AdminClient, a Consumer or a Producer."""

    def list_topics(self, *args: Any, **kwargs: Any) -> Any:
        """Cluster metadata; raises ``KafkaException`` when no broker answers."""

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        """Serve callbacks (librdkafka's log lines among them)."""


class BrokerUnreachableError(ConnectorError):
    """No broker of the bootstrap list answered at start-up; ``details`` gives each
    address with librdkafka's reason."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def failure_of(text: str) -> tuple[str, str] | None:
    """``(address, reason)`` of a librdkafka connection failure line, or None."""
    match = _FAILURE.match(text)
    return (match["address"], match["reason"]) if match else None


class _Recorder(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 3:
            found = failure_of(str(args[2]))
            if found:
                self.reasons[found[0]] = found[1]
        return True


def wait_for_brokers(
    client: KafkaClient, servers: str, timeout: float = STARTUP_TIMEOUT_SECONDS
) -> None:
    """Return once a broker of ``servers`` answers ``client`` (the client the start-up goes
    on with: ``run``'s AdminClient, ``tail``'s consumer before it is assigned anything);
    raise ``BrokerUnreachableError`` after ``timeout``."""
    recorder = _Recorder()
    logger = logging.getLogger(LOGGER_NAME)
    # Inserted first, so it sees every line before the throttle drops repetitions.
    logger.filters.insert(0, recorder)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.list_topics(timeout=1.0)
                return
            except KafkaException:
                client.poll(0)  # deliver librdkafka's log lines (reasons) to our logger
                if time.monotonic() >= deadline:
                    break
    finally:
        client.poll(0)
        logger.removeFilter(recorder)
    addresses = [s.strip() for s in servers.split(",") if s.strip()]
    details = ", ".join(f"{s}: {recorder.reasons.get(s, 'no answer')}" for s in addresses)
    raise BrokerUnreachableError(
        f"MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS: no broker answered within {timeout:g}s ({details})",
        details,
    )
