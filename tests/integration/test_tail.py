"""`meetings-cdc tail` against the real broker: committed events printed, aborted ones never."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connector.config.settings import KafkaSettings
from connector.core.changes import Change, ChangeEvent, ChangeType, SourceInfo
from connector.core.model import Meeting, Participant
from connector.serde import Serdes, make_serdes


def meeting(meeting_id: int, status: str, event_id: int = 10) -> Meeting:
    return Meeting(
        event_id=event_id,
        meeting_id=meeting_id,
        status=status,
        start_at=1_767_261_600_000,
        end_at=1_767_263_400_000,
        location="Hall Ω",
        created_at=1_767_000_000_000,
        modified_at=1_767_100_000_000,
        participants=(Participant(1, "requester", "accepted"),),
        extra=(("title", "Intro"),),
    )


def event(meeting_id: int, change_type: ChangeType, event_id: int = 10) -> ChangeEvent:
    after = meeting(meeting_id, "pending", event_id)
    return ChangeEvent(
        event_id=event_id,
        meeting_id=meeting_id,
        change=Change(change_type, (), None, after),
        modified_at=after.modified_at,
        detected_at=1_767_100_001_250,
        version=1,
        source=SourceInfo("tail-test", "0.1.0", "created", 1_767_099_000_000, 1_767_100_000_000),
    )


def produce(
    bootstrap: str, topic: str, serdes: Serdes, batches: list[tuple[list[ChangeEvent], bool]]
) -> None:
    """Each batch is one transaction, committed (True) or aborted (False)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"tail-test-{topic}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    for events, commit in batches:
        producer.begin_transaction()
        for e in events:
            producer.produce(
                topic,
                key=serdes.encode_change_key(e.event_id, e.meeting_id),
                value=serdes.encode_change(e),
            )
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(10)
            producer.abort_transaction(30)


def run_tail(bootstrap: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    env.pop("MEETINGS_CDC_SCHEMA_REGISTRY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "connector", "tail", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def serdes() -> Serdes:
    return make_serdes(KafkaSettings(), "unused", "unused", "unused", "unused", "unused")


def test_tail_prints_committed_events_and_never_aborted_ones(
    kafka_bootstrap: str, topic_factory: Callable[..., str], serdes: Serdes
) -> None:
    topic = topic_factory("tail.changes", partitions=2)
    produce(
        kafka_bootstrap,
        topic,
        serdes,
        [
            ([event(1, ChangeType.CREATED), event(2, ChangeType.CREATED)], True),
            ([event(666, ChangeType.CREATED)], False),
            ([event(3, ChangeType.SNAPSHOT)], True),
        ],
    )

    result = run_tail(kafka_bootstrap, "--topic", topic, "--from-beginning", "--max-messages", "3")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["meeting_id"] for line in lines) == [1, 2, 3]
    first = next(line for line in lines if line["meeting_id"] == 1)
    assert first["key"] == {"event_id": 10, "meeting_id": 1}
    assert first["change_type"] == "CREATED"
    assert first["before"] is None
    assert first["after"]["location"] == "Hall Ω"
    assert first["after"]["start_at"] == "2026-01-01T10:00:00Z"  # as export prints it
    assert first["detected_at"] == "2025-12-30T13:06:41.250Z"
    assert first["source"]["connector"] == "tail-test"


def test_tail_filters_by_event_id_and_stops_when_idle(
    kafka_bootstrap: str, topic_factory: Callable[..., str], serdes: Serdes
) -> None:
    topic = topic_factory("tail.filter")
    produce(
        kafka_bootstrap,
        topic,
        serdes,
        [([event(1, ChangeType.CREATED, 10), event(2, ChangeType.CREATED, 11)], True)],
    )

    result = run_tail(
        kafka_bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--event-id",
        "11",
        "--idle-timeout",
        "4",
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["event_id"], line["meeting_id"]) for line in lines] == [(11, 2)]


def test_tail_exits_0_on_sigterm(kafka_bootstrap: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory("tail.sigterm")
    env = {**os.environ, "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    with subprocess.Popen(
        [sys.executable, "-m", "connector", "tail", "--topic", topic],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            time.sleep(3)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr


def test_tail_reports_a_bad_flag_with_exit_2(kafka_bootstrap: str) -> None:
    result = run_tail(kafka_bootstrap, "--max-messages", "0")
    assert result.returncode == 2
    assert "--max-messages" in result.stderr


def test_until_end_prints_exactly_the_committed_records_and_exits_0(
    kafka_bootstrap: str, topic_factory: Callable[..., str], serdes: Serdes
) -> None:
    topic = topic_factory("tail.until-end", partitions=3)
    produce(
        kafka_bootstrap,
        topic,
        serdes,
        [
            ([event(i, ChangeType.CREATED) for i in range(1, 7)], True),
            ([event(666, ChangeType.CREATED), event(667, ChangeType.CREATED)], False),
            ([event(7, ChangeType.SNAPSHOT)], True),
            ([event(668, ChangeType.CREATED)], False),  # an aborted one last: markers at end
        ],
    )

    started = time.monotonic()
    result = run_tail(
        "127.0.0.1:1",  # the flag wins over the environment variable
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--until-end",
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["meeting_id"] for line in result.stdout.splitlines()) == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]
    assert time.monotonic() - started < 30


def test_until_end_on_an_empty_topic_exits_0_at_once(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("tail.until-end-empty", partitions=2)
    result = run_tail(kafka_bootstrap, "--topic", topic, "--from-beginning", "--until-end")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_idle_timeout_ends_a_live_topic_whose_records_do_not_match(
    kafka_bootstrap: str, topic_factory: Callable[..., str], serdes: Serdes
) -> None:
    topic = topic_factory("tail.idle-live")
    env = {**os.environ, "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    env.pop("MEETINGS_CDC_SCHEMA_REGISTRY_URL", None)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    args = ["--topic", topic, "--from-beginning", "--event-id", "11", "--idle-timeout", "3"]
    with subprocess.Popen(
        [sys.executable, "-m", "connector", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            deadline = time.monotonic() + 40
            sent = 0
            # event 10 keeps writing, far more often than the idle timeout: tail must not wait
            while proc.poll() is None and time.monotonic() < deadline:
                e = event(1000 + sent, ChangeType.CREATED, event_id=10)
                producer.produce(
                    topic, serdes.encode_change_key(10, e.meeting_id), serdes.encode_change(e)
                )
                producer.flush(5)
                sent += 1
                time.sleep(0.2)
            stdout, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout == ""
    assert sent > 15  # records kept arriving during the idle timeout


def test_a_missing_topic_exits_1_after_the_topic_timeout(kafka_bootstrap: str) -> None:
    started = time.monotonic()
    result = run_tail(
        kafka_bootstrap, "--topic", f"tail.missing.{time.time_ns()}", "--topic-timeout", "3"
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "does not exist" in last
    assert "--topic-timeout" in last
    assert elapsed < 20


def test_an_unreachable_broker_exits_1_naming_the_address(kafka_bootstrap: str) -> None:
    started = time.monotonic()
    result = run_tail("127.0.0.1:9", "--topic", "anything", "--topic-timeout", "3")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("meetings-cdc tail:")]
    assert ours[-1].startswith("meetings-cdc tail: cannot reach the Kafka broker at 127.0.0.1:9")
    assert "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS" in ours[-1]
    assert "within 3 s: 127.0.0.1:9: " in ours[-1]  # each address, and why it fails
    assert "Connection refused" in ours[-1]
    assert "%3|" not in result.stderr  # librdkafka's lines went through the logger
    assert elapsed < 20


def test_an_unreachable_broker_is_named_with_its_reason_and_logs_are_json(
    kafka_bootstrap: str,
) -> None:
    """The start-up check of `run` (wait_for_brokers): each address with librdkafka's reason;
    librdkafka's lines arrive as JSON log records (MEETINGS_CDC_LOG_FORMAT), never raw."""
    result = run_tail("127.0.0.1:9", "--topic", "anything", "--topic-timeout", "3")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("meetings-cdc tail: cannot reach the Kafka broker at 127.0.0.1:9")
    assert "127.0.0.1:9: Connect to ipv4#127.0.0.1:9 failed: Connection refused" in lines[-1]
    logged = [json.loads(line) for line in lines if not line.startswith("meetings-cdc tail:")]
    assert logged, result.stderr
    assert any(r["logger"] == "connector.kafka" and r["level"] == "ERROR" for r in logged)
    assert not any(line.startswith("%") for line in lines)


def test_help_names_the_environment_variable_and_the_defaults(kafka_bootstrap: str) -> None:
    result = run_tail(kafka_bootstrap, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "$MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:19092" in text
    assert "--until-end" in text
    assert "(default 10.0)" in text
