"""Driving ``meetings-cdc run`` as a real process and reading what it committed.

Blocking Kafka calls run in worker threads: the in-process simulator shares the test's
event loop and must keep answering the connector meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from confluent_kafka import Consumer, KafkaError
from prometheus_client.parser import text_string_to_metric_families

from connector.serde import Serdes, SingleObjectFraming
from tests.connector_process import connector_env as shared_connector_env


async def past_settle(seconds: float = 2.2) -> None:
    """Let the current second end and the settle delay pass: what exists now is then part of
    a snapshot that starts afterwards (the snapshot is a cut at the API's now - settle)."""
    await asyncio.sleep(seconds)


async def metric_sample(port: int, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` with ``labels`` on a connector's /metrics
    (None when it has no such sample)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What a connector under test runs with, beside its name, topics and API: small topics
#: partitioned like production, fast polls, a short settle and group session, quick retries.
TEST_SETTINGS: dict[str, str] = {
    "MEETINGS_CDC_STATE_TOPIC_PARTITIONS": "3",
    "MEETINGS_CDC_CHANGES_TOPIC_PARTITIONS": "3",
    "MEETINGS_CDC_POLL_INTERVAL_SECONDS": "0.5",
    "MEETINGS_CDC_SETTLE_SECONDS": "1",
    "MEETINGS_CDC_OVERLAP_SECONDS": "3",
    "MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS": "0",
    "MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS": "6000",
    "MEETINGS_CDC_LOG_LEVEL": "INFO",
    "MEETINGS_CDC_API_BACKOFF_INITIAL_SECONDS": "0.05",
    "MEETINGS_CDC_API_BACKOFF_MAX_SECONDS": "0.5",
}


def connector_env(
    *,
    api_base_url: str,
    event_ids: str,
    bootstrap: str,
    name: str,
    **overrides: str,
) -> dict[str, str]:
    """Environment of a connector under test: unique topics, fast polling."""
    return shared_connector_env(
        api_base_url=api_base_url,
        event_ids=event_ids,
        bootstrap=bootstrap,
        name=name,
        **{**TEST_SETTINGS, **overrides},
    )


class ChangeLog:
    """Every change event a read_committed consumer sees on ``topic``, decoded."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: list[dict[str, Any]] = []
        self._serdes = Serdes(SingleObjectFraming())
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._consumer.subscribe([topic])

    def _poll(self, seconds: float) -> None:
        for msg in self._consumer.consume(num_messages=5000, timeout=seconds):
            error = msg.error()
            if error is not None:
                if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise RuntimeError(error.str())
            self.events.append(self._serdes.decode_change(msg.value()))

    async def poll(self, seconds: float = 0.5) -> None:
        await asyncio.to_thread(self._poll, seconds)

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float, what: str
    ) -> None:
        try:
            async with asyncio.timeout(within):
                while not predicate(self.events):
                    await self.poll(0.3)
        except TimeoutError:
            summary = [(e["meeting_id"], e["change_type"], e["version"]) for e in self.events]
            raise AssertionError(f"timed out waiting for {what}; events: {summary}") from None

    async def settle(self, seconds: float) -> None:
        """Keep reading for ``seconds``: what arrives now was not expected."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await self.poll(0.3)

    def of(self, meeting_id: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["meeting_id"] == meeting_id]

    def close(self) -> None:
        self._consumer.close()


def seconds(iso: str) -> int:
    """Unix seconds of a date-time as tail and export print it (``...Z``)."""
    return int(datetime.fromisoformat(iso).timestamp())


def converged(events: list[dict[str, Any]], truth: dict[int, dict[str, Any]]) -> bool:
    """Whether the last event of every meeting matches the API's ground truth ``truth``
    (``GET /admin/meetings``), and every meeting no longer there was last DELETED."""
    last: dict[int, dict[str, Any]] = {}
    for event in events:
        last[event["meeting_id"]] = event
    for meeting_id, event in last.items():
        if meeting_id not in truth and event["change_type"] != "DELETED":
            return False
    for meeting_id, meeting in truth.items():
        event = last.get(meeting_id)
        if event is None or event["after"] is None:
            return False
        after = event["after"]
        if (
            after["status"] != meeting["status"]
            or seconds(after["start_at"]) != meeting["start"]
            or seconds(after["modified_at"]) != meeting["updated_at"]
            or [p["account_id"] for p in after["participants"]]
            != [p["account_id"] for p in meeting["participants"]]
            or after["location"] != meeting["location"]
        ):
            return False
    return True
