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

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from connector.errors import ConnectorError
from connector.kafka_logs import LOGGER_NAME

STARTUP_TIMEOUT_SECONDS = 10.0
# "[thrd:HOST:PORT/bootstrap]: HOST:PORT/bootstrap: REASON (after 0ms in state CONNECT)"
_FAILURE = re.compile(
    r"^\[thrd:[^\]]*\]: (?P<address>[^/\s]+)/\S+: (?P<reason>.*?)(?: \(after .*)?$"
)


class BrokerUnreachableError(ConnectorError):
    """No broker of the bootstrap list answered at start-up."""


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
    admin: AdminClient, servers: str, timeout: float = STARTUP_TIMEOUT_SECONDS
) -> None:
    """Return once a broker of ``servers`` answers ``admin`` (the client the start-up goes
    on with); raise ``BrokerUnreachableError`` after ``timeout``."""
    recorder = _Recorder()
    logger = logging.getLogger(LOGGER_NAME)
    # Inserted first, so it sees every line before the throttle drops repetitions.
    logger.filters.insert(0, recorder)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                admin.list_topics(timeout=1.0)
                return
            except KafkaException:
                admin.poll(0)  # deliver librdkafka's log lines (reasons) to our logger
                if time.monotonic() >= deadline:
                    break
    finally:
        admin.poll(0)
        logger.removeFilter(recorder)
    addresses = [s.strip() for s in servers.split(",") if s.strip()]
    details = ", ".join(f"{s}: {recorder.reasons.get(s, 'no answer')}" for s in addresses)
    raise BrokerUnreachableError(
        f"MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS: no broker answered within {timeout:g}s ({details})"
    )
