"""Signals, notifications and heartbeats of a real connector process (issue 32).

Each test drives ``meetings-cdc run`` against the in-process simulator and the real broker
through the external contracts only: ``meetings-cdc signal`` (and raw records written to the
signals topic by a plain producer), ``meetings-cdc state show``, the notifications and
heartbeats topics, /status and /metrics, and the simulator's per-event request counts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.serde import Serdes, SingleObjectFraming, WriterSchemas
from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import (
    ChangeLog,
    connector_env,
    free_port,
    metric_sample,
    past_settle,
)

#: How long a paused event is watched for requests (short: this runs in make test).
PAUSED_SECONDS = 3.0
START = 1_900_000_000  # a meeting's start time (unix s): any future instant


def env_of(simulator: Any, bootstrap: str, name: str, events: str, port: int) -> dict[str, str]:
    return connector_env(
        api_base_url=simulator.base_url,
        event_ids=events,
        bootstrap=bootstrap,
        name=name,
        MEETINGS_CDC_METRICS_PORT=str(port),
        MEETINGS_CDC_HEARTBEAT_INTERVAL_SECONDS="1",
    )


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``meetings-cdc ARGS`` with ``env``: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def signal(env: dict[str, str], *args: str, wait: float = 40) -> tuple[int, str, str]:
    """``meetings-cdc signal ARGS --wait``: (exit code, signal id, stderr)."""
    code, out, err = await cli(env, "signal", *args, "--wait", str(wait))
    return code, out.strip(), err


def write_raw(bootstrap: str, topic: str, key: bytes | None, value: bytes | None) -> None:
    """A signal record written by any Kafka client, not by ``meetings-cdc signal``."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(15) == 0


class TopicReader:
    """Every record of an operators' topic, decoded (``Notification`` or ``Heartbeat``), in
    either framing (schema ids looked up in ``registry_url``)."""

    def __init__(
        self, bootstrap: str, topic: str, schema: str, registry_url: str | None = None
    ) -> None:
        self.schema = schema
        self.records: list[dict[str, Any]] = []
        self._registry = SchemaRegistryClient({"url": registry_url}) if registry_url else None
        self._serdes = Serdes(SingleObjectFraming(), WriterSchemas(self._registry))
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._consumer.subscribe([topic])

    def _poll(self) -> None:
        for message in self._consumer.consume(num_messages=500, timeout=0.3):
            error = message.error()
            if error is not None:
                if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise RuntimeError(error.str())
            self.records.append(
                {
                    "key": (message.key() or b"").decode(),
                    **self._serdes.decode_as(self.schema, message.value()),
                }
            )

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float, what: str
    ) -> None:
        try:
            async with asyncio.timeout(within):
                while not predicate(self.records):
                    await asyncio.to_thread(self._poll)
        except TimeoutError:
            raise AssertionError(f"no {what} within {within} s: {self.records[-5:]}") from None

    async def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.to_thread(self._poll)

    def of(self, signal_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("signal_id") == signal_id]

    def close(self) -> None:
        self._consumer.close()
        if self._registry is not None:
            self._registry.close()


async def status(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/status") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def requests_of(simulator: Any, event_id: int) -> int:
    return (await simulator.requests()).get(f"event:{event_id}", 0)


def has(meeting_id: int, change_type: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(
        e["meeting_id"] == meeting_id and e["change_type"] == change_type for e in events
    )


@pytest.mark.parametrize(
    "paused_seconds",
    # the 60 s (past the readiness limit, 10 poll intervals and at least 60 s: a
    # paused event must stay ready) runs in make chaos; make test pauses for 3 s
    [PAUSED_SECONDS, pytest.param(60.0, marks=pytest.mark.slow)],
    ids=["short", "60s"],
)
async def test_a_paused_event_makes_no_request_while_another_goes_on_and_catches_up_on_resume(
    simulator_factory, kafka_bootstrap, unique_name, paused_seconds
):
    simulator = await simulator_factory(SimulatorConfig(event_ids=(1, 2)))
    a = await simulator.create(event_id=1, start=START, participants=[11, 12])
    b = await simulator.create(event_id=2, start=START, participants=[21, 22])
    await past_settle()  # both in the snapshot
    name, port = unique_name("pause"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1,2", port)
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    beats = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_HEARTBEATS_TOPIC"], "Heartbeat")
    connector = await ConnectorProcess(env).start()
    try:
        await changes.wait_for(
            lambda e: has(a, "SNAPSHOT")(e) and has(b, "SNAPSHOT")(e), 60, "snapshots"
        )
        code, paused_by, err = await signal(env, "pause", "--event-id", "1")
        assert code == 0, err
        assert "COMPLETED" in err
        await asyncio.sleep(1.0)  # a clock probe sent just before the pause may still answer
        before = (await requests_of(simulator, 1), await requests_of(simulator, 2))
        await simulator.patch(a, status="confirmed")
        created = await simulator.create(event_id=1, start=START, participants=[13])
        await simulator.patch(b, status="confirmed")
        await changes.wait_for(has(b, "CONFIRMED"), 30, "event 2 going on")
        await asyncio.sleep(paused_seconds)
        after = (await requests_of(simulator, 1), await requests_of(simulator, 2))
        assert after[0] == before[0], "a paused event sent requests"
        assert after[1] > before[1]
        assert not has(a, "CONFIRMED")(changes.events)

        shown = (await status(port))["events"]["1"]
        assert (shown["paused"], shown["paused_by"], shown["ready"]) == (True, paused_by, True)
        assert await metric_sample(port, "meetings_cdc_event_paused", event_id="1") == 1
        await beats.wait_for(
            lambda r: any(h["event_id"] == 1 and h["paused"] for h in r), 10, "a paused heartbeat"
        )
        heartbeat = next(h for h in beats.records if h["event_id"] == 1 and h["paused"])
        assert heartbeat["key"] == "1"
        assert heartbeat["paused_by"] == paused_by
        assert heartbeat["last_committed_at"] is not None

        code, _, err = await signal(env, "resume", "--event-id", "1")
        assert code == 0, err
        await changes.wait_for(
            lambda e: has(a, "CONFIRMED")(e) and has(created, "CREATED")(e), 30, "the catch-up"
        )
        await changes.settle(2)
        for meeting in (a, created, b):
            versions = [e["version"] for e in changes.of(meeting)]
            assert len(versions) == len(set(versions)) == 2 - (meeting == created), versions
        assert await metric_sample(port, "meetings_cdc_event_paused", event_id="1") == 0
        assert (await status(port))["events"]["1"]["paused"] is False
    finally:
        await connector.stop_quietly()
        changes.close()
        beats.close()


async def test_a_pause_stops_a_running_reconciliation_pass_and_the_resume_runs_it_again(
    simulator_factory, kafka_bootstrap, unique_name
):
    # A pass is background work of many pages: it used to go on to its end after the pause
    # committed, requests included; it stops at its next page and starts over after resume.
    simulator = await simulator_factory(SimulatorConfig(meetings=1_500, seed=14))
    name, port = unique_name("pausepass"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    env["MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS"] = "1"  # passes back to back
    env["MEETINGS_CDC_API_PER_PAGE"] = "25"  # 60 pages a pass
    env["MEETINGS_CDC_API_MAX_CONCURRENCY"] = "2"
    env["MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND"] = "0"
    env["MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS"] = "0"
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    connector = await ConnectorProcess(env).start()

    def passes() -> int:
        return connector.log.count("reconciliation complete")

    try:
        await changes.wait_for(lambda e: len(e) >= 1_500, 120, "the snapshot")
        await simulator.set_faults(latency_ms=120)  # a pass now takes seconds
        async with asyncio.timeout(120):
            while passes() < 1:  # noqa: ASYNC110 - the log is a growing buffer
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # the next pass is under way
        done = passes()
        code, _, err = await signal(env, "pause", "--event-id", "1")
        assert code == 0, err
        await asyncio.sleep(1.0)  # the requests in flight at the pause answer
        before = await requests_of(simulator, 1)
        await asyncio.sleep(PAUSED_SECONDS)
        assert await requests_of(simulator, 1) == before, "a paused event's pass sent requests"
        assert passes() == done
        assert "reconciliation stopped by a pause" in connector.log

        await simulator.clear_faults()
        code, _, err = await signal(env, "resume", "--event-id", "1")
        assert code == 0, err
        async with asyncio.timeout(60):
            while passes() <= done:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        await connector.stop_quietly()
        changes.close()


async def test_pause_survives_a_restart_and_a_repeated_signal_id_acts_once(
    simulator, kafka_bootstrap, unique_name
):
    a = await simulator.create(event_id=1, start=START, participants=[11])
    await past_settle()  # in the snapshot
    name, port = unique_name("restart"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    topic = env["MEETINGS_CDC_SIGNALS_TOPIC"]
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        await changes.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot")
        pause = json.dumps({"type": "pause", "event_id": 1}).encode()
        await asyncio.to_thread(write_raw, kafka_bootstrap, topic, b"twice", pause)
        await asyncio.to_thread(write_raw, kafka_bootstrap, topic, b"twice", pause)
        await notes.wait_for(lambda r: len(notes.of("twice")) == 2, 30, "both answers")
        assert [n["status"] for n in notes.of("twice")] == ["COMPLETED", "REJECTED"]
        assert "already handled" in notes.of("twice")[1]["reason"]

        assert await connector.terminate() == 0
        await simulator.patch(a, status="confirmed")
        # sent while no replica runs the event: the next owner acts on it, once
        await asyncio.to_thread(write_raw, kafka_bootstrap, topic, b"while-down", pause)
        connector = await ConnectorProcess(env).start()
        await connector.mark("state restored", 60)
        await asyncio.sleep(1.0)
        before = await requests_of(simulator, 1)
        await asyncio.sleep(PAUSED_SECONDS)
        assert await requests_of(simulator, 1) == before, "paused before the restart, not after"
        await notes.wait_for(lambda r: notes.of("while-down"), 30, "the signal sent while down")
        await notes.settle(1)
        assert len(notes.of("twice")) == 2, "a signal acted on again after the restart"
        [while_down] = notes.of("while-down")
        assert while_down["status"] == "COMPLETED"
        assert "already paused" in while_down["reason"]

        code, out, err = await cli(env, "state", "show", "--event-id", "1")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["paused"] is True
        assert shown["paused_by"] == "twice"
        assert shown["phase"] == "streaming"
        assert shown["meetings_tracked"] == 1
        assert shown["watermarks"]["modified_through"] is not None

        code, _, err = await signal(env, "resume", "--event-id", "1")
        assert code == 0, err
        await changes.wait_for(has(a, "CONFIRMED"), 30, "the change made while paused")
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()


async def test_bad_signals_are_rejected_with_a_reason_and_stop_nothing(
    simulator, kafka_bootstrap, unique_name
):
    a = await simulator.create(event_id=1, start=START, participants=[11])
    await past_settle()  # in the snapshot
    name, port = unique_name("bad"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    topic = env["MEETINGS_CDC_SIGNALS_TOPIC"]
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        await changes.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot")
        raw = {
            "garbage": b"{this is not json",
            "unknown": json.dumps({"type": "explode", "event_id": 1}).encode(),
            "elsewhere": json.dumps({"type": "pause", "event_id": 424242}).encode(),
        }
        for key, value in raw.items():
            await asyncio.to_thread(write_raw, kafka_bootstrap, topic, key.encode(), value)
        future = "2999-01-01T00:00:00Z"
        code, rewind_id, err = await signal(env, "rewind", "--event-id", "1", "--to", future)
        assert code == 1
        assert "REJECTED" in err
        assert "future" in err
        code, resnapshot_id, err = await signal(env, "cancel-resnapshot", "--event-id", "1")
        assert code == 1
        assert "no re-snapshot runs" in err
        await notes.wait_for(lambda r: all(notes.of(k) for k in raw), 30, "the rejections")
        reasons = {k: notes.of(k)[0] for k in raw}
        assert {n["status"] for n in reasons.values()} == {"REJECTED"}
        assert "not JSON" in reasons["garbage"]["reason"]
        assert "unknown type 'explode'" in reasons["unknown"]["reason"]
        assert "event 424242 is not served" in reasons["elsewhere"]["reason"]
        assert notes.of(rewind_id)[0]["kind"] == "rewind"
        assert notes.of(resnapshot_id)[0]["kind"] == "cancel-resnapshot"

        rejected = await metric_sample(
            port, "meetings_cdc_signals_total", event_id="1", kind="signal", status="REJECTED"
        )
        assert rejected == 2  # no readable type (garbage, explode); the others under their kind
        await simulator.patch(a, status="confirmed")
        await changes.wait_for(has(a, "CONFIRMED"), 30, "polling going on")

        code, _, err = await signal(env, "pause", "--event-id", "999", wait=2)
        assert code == 1
        assert "REJECTED" in err
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()


async def test_signal_exits_1_naming_the_topic_no_connector_created(kafka_bootstrap, unique_name):
    name = unique_name("nobody")
    # connector_env names the operators' topics after the connector, like its others
    env = connector_env(
        api_base_url="http://127.0.0.1:9", event_ids="1", bootstrap=kafka_bootstrap, name=name
    )
    assert env["MEETINGS_CDC_SIGNALS_TOPIC"] == f"{name}.signals"
    code, out, err = await cli(env, "signal", "pause", "--event-id", "1", "--wait", "1")
    assert code == 1
    assert "does not exist" in err  # no connector ever created the topics
    assert out == ""


async def test_signal_wait_exits_1_when_no_final_notification_comes_in_time(
    admin, kafka_bootstrap, unique_name
):
    name = unique_name("late")
    env = connector_env(
        api_base_url="http://127.0.0.1:9", event_ids="1", bootstrap=kafka_bootstrap, name=name
    )
    topics = [env["MEETINGS_CDC_SIGNALS_TOPIC"], env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"]]
    for future in admin.create_topics([NewTopic(t, num_partitions=1) for t in topics]).values():
        future.result(30)
    code, out, err = await cli(env, "signal", "pause", "--event-id", "1", "--wait", "2")
    assert code == 1
    assert "no final notification within 2 s" in err
    uuid.UUID(out.strip())  # the id was printed: the signal was written


async def test_rewind_re_reads_from_the_instant_given_and_publishes_no_version_twice(
    simulator, kafka_bootstrap, unique_name
):
    # snapshot mode never: a meeting modified before the start is not read by polling, so
    # only a rewind to before it can publish it; one created after the start is published
    # by polling, and the rewind's re-read of it must publish nothing
    before = int(time.time()) - 5
    old = await simulator.create(event_id=1, start=START, participants=[11])
    # before the event's start and its first window: past the settle delay (1 s) and the
    # window's overlap (3 s) with the second boundaries, whatever the start-up takes (a
    # start within 1.5 s, since the restart-path changes, read it as CREATED)
    await asyncio.sleep(5.5)
    name, port = unique_name("rewind"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    env["MEETINGS_CDC_SNAPSHOT_MODE"] = "never"
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    connector = await ConnectorProcess(env).start()
    try:
        await connector.mark("starting event", 60)
        await asyncio.sleep(2.5)
        new = await simulator.create(event_id=1, start=START, participants=[12])
        await changes.wait_for(has(new, "CREATED"), 30, "the new meeting")
        await changes.settle(1.5)
        assert changes.of(old) == []  # not read: it was there before the start

        to = datetime.fromtimestamp(before, UTC).isoformat()
        code, _, err = await signal(env, "rewind", "--event-id", "1", "--to", to)
        assert code == 0, err
        assert "watermarks moved back" in err
        await changes.wait_for(has(old, "CREATED"), 30, "the meeting before the start")
        await changes.settle(2)
        assert [e["version"] for e in changes.of(new)] == [changes.of(new)[0]["version"]]
        assert len(changes.of(old)) == 1
    finally:
        await connector.stop_quietly()
        changes.close()


async def test_a_snapshot_a_pass_and_a_delete_check_that_found_deletes_are_notified(
    simulator, kafka_bootstrap, unique_name
):
    a = await simulator.create(event_id=1, start=START, participants=[11])
    b = await simulator.create(event_id=1, start=START, participants=[12, 13])
    await past_settle()  # both in the snapshot
    name, port = unique_name("steps"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, "1", port)
    env["MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS"] = "1"
    env["MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS"] = "4"
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()

    def of(kind: str) -> list[dict[str, Any]]:
        return [n for n in notes.records if n["kind"] == kind]

    try:
        await notes.wait_for(
            lambda r: any(n["status"] == "COMPLETED" for n in of("snapshot")),
            60,
            "the snapshot's notification",
        )
        started, done = of("snapshot")  # a small snapshot: one transaction, no IN_PROGRESS
        assert (started["status"], started["counts"]) == ("STARTED", {})
        assert (done["status"], done["event_id"], done["signal_id"]) == ("COMPLETED", 1, None)
        assert done["counts"]["meetings"] == 2
        assert done["counts"]["rows"] == 3
        await changes.wait_for(has(a, "SNAPSHOT"), 10, "the snapshot")  # readable by then
        await notes.wait_for(
            lambda r: any(n["status"] == "COMPLETED" for n in of("reconcile")),
            30,
            "a pass's notification",
        )
        assert of("reconcile")[0]["status"] == "STARTED"
        passes = [n for n in of("reconcile") if n["status"] == "COMPLETED"]
        assert passes[0]["counts"]["seen"] == 2
        await simulator.delete(b)
        await changes.wait_for(has(b, "DELETED"), 30, "the delete")
        await notes.wait_for(
            lambda r: any(
                n["counts"].get("deleted") == 1 for n in of("delete_check") + of("reconcile")
            ),
            30,
            "the notification of the step that found the delete",
        )
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()
