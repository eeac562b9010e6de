"""The Confluent wire format against a real schema registry: Apicurio Registry 3.3.3.

The registry is the session's ``registry_url`` (``make test`` starts one with
``deploy/local/registry.sh``, as ``make registry-up`` does); the tests that stop and start a
registry start their own on free ports. Everything goes through real processes: the
connector (``meetings-cdc run``), ``meetings-cdc tail``, and the registry's REST API over
HTTP. Subjects are TopicNameStrategy's ``<topic>-key`` / ``<topic>-value`` of topics unique to
each test, so the tests share one registry without seeing each other.

What Apicurio does differently from Confluent's registry (README, "Schema registry"): the
global compatibility default is NONE, ``GET /config/{subject}`` of a subject without a level
of its own answers 200 with the global level, a compatibility check against a missing
subject says compatible, and its default in-memory storage forgets every schema on restart.

``mock://`` (confluent-kafka's in-process registry) is kept for one test of the framing
bytes, where no server is needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.serde import RegistryFraming, Serdes, WriterSchemas, subjects
from tests.connector_process import ConnectorProcess
from tests.integration.harness import connector_env, past_settle
from tests.integration.test_signals import TopicReader, signal
from tests.registry_process import (
    CCOMPAT,
    LocalRegistry,
    RegistryApi,
    RegistryChangeLog,
    RegistryError,
    free_port,
)

EVENT = 1
T0 = 1_900_000_000  # a scheduled start, far from "now"
#: A MeetingChange as an earlier release might have had it: no meeting_id. The current
#: schema cannot read what it wrote (meeting_id has no default): BACKWARD refuses it.
EARLIER_CHANGE = {
    "type": "record",
    "name": "MeetingChange",
    "namespace": "meetings_cdc",
    "fields": [{"name": "event_id", "type": "long"}],
}


def subject_names(name: str) -> dict[str, str]:
    """The seven subjects of a connector whose topics are
    ``<name>.changes|state|dlq|notifications|heartbeats`` (``connector_env``)."""
    return subjects(
        f"{name}.changes",
        f"{name}.state",
        f"{name}.dlq",
        f"{name}.notifications",
        f"{name}.heartbeats",
    )


def own_level(api: RegistryApi, subject: str) -> str | None:
    """The compatibility level set on ``subject`` itself, None when it has none.

    Confluent answers ``GET /config/{subject}`` with 404 (40408) for a subject without a
    level; Apicurio answers 200 with the global level, so there the subject's own rules
    come from Apicurio's native API (a ccompat subject is an artifact of group ``default``).
    """
    if not api.url.endswith(CCOMPAT):
        try:
            return api.compatibility(subject)
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
    native = RegistryApi(
        api.url.removesuffix(CCOMPAT) + "/apis/registry/v3", content_type="application/json"
    )
    try:
        native.call("GET", f"/groups/default/artifacts/{subject}/rules/COMPATIBILITY")
    except RegistryError as exc:
        if exc.status == 404:
            return None
        raise
    return api.compatibility(subject)


def error_lines(log: str) -> list[str]:
    """The lines ``meetings-cdc run`` printed as its own (the JSON log lines left out)."""
    return [line for line in log.splitlines() if line.startswith("meetings-cdc run:")]


def raw_records(bootstrap: str, topic: str, count: int, within: float = 30) -> list[Any]:
    """The first ``count`` committed records of ``topic``, undecoded."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-raw-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                error = msg.error()
                if error is None:
                    records.append(msg)
                elif error.code() not in (
                    KafkaError._PARTITION_EOF,
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                ):
                    raise RuntimeError(error.str())
    finally:
        consumer.close()
    assert len(records) >= count, f"{len(records)} of {count} records on {topic}"
    return records


def header(schema_id: int) -> bytes:
    """The Confluent wire format's 5 bytes before a body."""
    return b"\x00" + schema_id.to_bytes(4, "big")


async def run_tail(bootstrap: str, topic: str, registry: str) -> subprocess.CompletedProcess[str]:
    """``meetings-cdc tail --from-beginning --until-end`` in another process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    env["MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env["MEETINGS_CDC_SCHEMA_REGISTRY_URL"] = registry
    command = [sys.executable, "-m", "connector", "tail", "--topic", topic]
    return await asyncio.to_thread(
        subprocess.run,
        [*command, "--from-beginning", "--until-end", "--topic-timeout", "30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


def changes(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(meeting, change type) of each event, in order, once each meeting's versions are
    checked to increase (the registry's part is the decoding, not the numbering)."""
    last: dict[int, int] = {}
    for event in events:
        meeting, version = event["meeting_id"], event["version"]
        assert version > last.get(meeting, 0), f"meeting {meeting}: version {version} again"
        last[meeting] = version
    return [(e["meeting_id"], e["change_type"]) for e in events]


def tailed(result: subprocess.CompletedProcess[str]) -> list[tuple[int, str]]:
    """(meeting, change type) of every line ``tail`` printed, in order; each key checked."""
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        assert line["key"] == {"event_id": line["event_id"], "meeting_id": line["meeting_id"]}
    return changes(lines)


def has(meeting_id: int, change_type: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(
        e["meeting_id"] == meeting_id and e["change_type"] == change_type for e in events
    )


@dataclass
class Rig:
    """One connector's settings against one registry, and what it published."""

    name: str
    env: dict[str, str]
    log: RegistryChangeLog
    started: list[ConnectorProcess]

    @property
    def topic(self) -> str:
        return self.env["MEETINGS_CDC_CHANGES_TOPIC"]

    @property
    def subjects(self) -> dict[str, str]:
        return subject_names(self.name)

    async def start(self) -> ConnectorProcess:
        connector = await ConnectorProcess(self.env).start()
        self.started.append(connector)
        return connector

    async def start_up_error(self, within: float = 90) -> str:
        """Start a connector that must refuse to start: exit 2, one line; that line."""
        connector = await self.start()
        code = await connector.wait(within)
        assert code == 2, connector.log
        lines = error_lines(connector.log)
        assert len(lines) == 1, connector.log
        return lines[0]


@pytest.fixture
async def rig(simulator, kafka_bootstrap, unique_name) -> AsyncIterator[Callable[..., Rig]]:
    """``rig(registry_url)``: a connector's settings with that registry and unique topics
    (every connector it starts is stopped at teardown)."""
    made: list[Rig] = []

    def make(registry: str, **overrides: str) -> Rig:
        name = unique_name("registry")
        env = connector_env(
            api_base_url=simulator.base_url,
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=name,
            MEETINGS_CDC_SCHEMA_REGISTRY_URL=registry,
            **overrides,
        )
        log = RegistryChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"], registry)
        made.append(Rig(name, env, log, []))
        return made[-1]

    yield make
    for each in made:
        for connector in each.started:
            await connector.stop_quietly()
        each.log.close()


@pytest.fixture
async def own_registry(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[LocalRegistry]]]:
    """``own_registry(persistent=False)``: an Apicurio Registry of this test alone, on free
    ports (``persistent``: H2 storage under tmp_path, kept across its restarts)."""
    started: list[LocalRegistry] = []

    async def make(*, persistent: bool = False) -> LocalRegistry:
        data = tmp_path / f"registry-{len(started)}" if persistent else None
        registry = LocalRegistry(data_dir=data)
        started.append(registry)
        await asyncio.to_thread(registry.up)
        return registry

    yield make
    for registry in started:
        await asyncio.to_thread(registry.down)


# --- mock:// : the framing bytes, in process ----------------------------------------------------


def test_wire_format_bytes_with_the_mock_registry() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://wire-format"})
    names = subjects("t.changes", "t.state", "t.dlq", "t.notifications", "t.heartbeats")
    serdes = Serdes(RegistryFraming(client, "mock://wire-format", names), WriterSchemas(client))

    key = serdes.encode_change_key(10, 7)
    state_key = serdes.encode_state_key(10, None)

    assert key[:5] == header(client.get_latest_version("t.changes-key").schema_id)
    assert state_key[:5] == header(client.get_latest_version("t.state-key").schema_id)
    assert serdes.decode_change_key(key) == {"event_id": 10, "meeting_id": 7}
    assert serdes.decode_state_key(state_key) == (10, None)


# --- a real registry ----------------------------------------------------------------------------


async def test_events_round_trip_through_the_registry_and_tail(
    simulator, rig, registry_url: str, kafka_bootstrap: str
) -> None:
    a = await simulator.create(event_id=EVENT, start=T0, participants=[101, 102])
    b = await simulator.create(event_id=EVENT, start=T0 + 3600, participants=[201])
    await past_settle()
    run = rig(registry_url)
    await run.start()
    await run.log.wait_for(
        lambda e: has(a, "SNAPSHOT")(e) and has(b, "SNAPSHOT")(e), 60, "snapshot"
    )
    await simulator.patch(a, status="confirmed")
    await run.log.wait_for(has(a, "CONFIRMED"), 30, "CONFIRMED of a")

    api = RegistryApi(registry_url)
    mine = sorted(s for s in api.subjects() if s.startswith(f"{run.name}."))
    assert mine == sorted(run.subjects.values())
    for subject in mine:
        assert api.versions(subject) == [1], subject
    key_id = api.latest(f"{run.topic}-key")["id"]
    value = api.latest(f"{run.topic}-value")
    assert json.loads(value["schema"])["name"] == "MeetingChange"
    assert json.loads(api.schema(key_id))["name"] == "MeetingKey"
    for record in raw_records(kafka_bootstrap, run.topic, 3):
        assert record.key()[:5] == header(key_id)
        assert record.value()[:5] == header(value["id"])

    # Another process, knowing only the registry, decodes keys and values alike.
    lines = tailed(await run_tail(kafka_bootstrap, run.topic, registry_url))
    assert sorted(lines) == sorted([(a, "SNAPSHOT"), (a, "CONFIRMED"), (b, "SNAPSHOT")])


async def test_notifications_and_heartbeats_use_the_registry_and_signal_wait_reads_them(
    simulator, rig, registry_url: str, kafka_bootstrap: str
) -> None:
    """The operators' topics are in the Confluent wire format like the others, with the ids
    registered under ``<topic>-value``; ``meetings-cdc signal --wait``, given the same
    settings, decodes the notification it waits for."""
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1])
    await past_settle()
    run = rig(registry_url, MEETINGS_CDC_HEARTBEAT_INTERVAL_SECONDS="1")
    notes_topic = run.env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"]
    beats_topic = run.env["MEETINGS_CDC_HEARTBEATS_TOPIC"]
    notes = TopicReader(kafka_bootstrap, notes_topic, "Notification", registry_url)
    beats = TopicReader(kafka_bootstrap, beats_topic, "Heartbeat", registry_url)
    try:
        await run.start()
        await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
        api = RegistryApi(registry_url)
        note_schema = api.latest(f"{notes_topic}-value")
        beat_schema = api.latest(f"{beats_topic}-value")
        assert json.loads(note_schema["schema"])["name"] == "Notification"
        assert json.loads(beat_schema["schema"])["name"] == "Heartbeat"

        # Every connector notifies its snapshot: STARTED, then COMPLETED (key the event id).
        started, completed = raw_records(kafka_bootstrap, notes_topic, 2)[:2]
        assert started.value()[:5] == completed.value()[:5] == header(note_schema["id"])
        await notes.wait_for(
            lambda r: any(n["status"] == "COMPLETED" for n in r), 30, "the snapshot's COMPLETED"
        )
        assert [(n["key"], n["kind"], n["status"]) for n in notes.records[:2]] == [
            (str(EVENT), "snapshot", "STARTED"),
            (str(EVENT), "snapshot", "COMPLETED"),
        ]
        [beat] = raw_records(kafka_bootstrap, beats_topic, 1)[:1]
        assert beat.value()[:5] == header(beat_schema["id"])
        await beats.wait_for(bool, 30, "a heartbeat")
        assert (beats.records[0]["key"], beats.records[0]["event_id"]) == (str(EVENT), EVENT)

        code, signal_id, err = await signal(run.env, "pause", "--event-id", str(EVENT), wait=30)
        assert code == 0, err
        assert "COMPLETED" in err
        await notes.wait_for(lambda r: any(n["signal_id"] == signal_id for n in r), 30, "pause")
        assert [n["status"] for n in notes.of(signal_id)] == ["COMPLETED"]
    finally:
        notes.close()
        beats.close()


async def test_incompatible_schema_registered_beforehand_stops_start_up(
    rig, registry_url: str
) -> None:
    run = rig(registry_url)
    api = RegistryApi(registry_url)
    subject = f"{run.topic}-value"
    # The operator's level: Apicurio's global default, NONE, would let anything in.
    api.set_compatibility(subject, "BACKWARD")
    api.register(subject, EARLIER_CHANGE)

    line = await run.start_up_error()

    assert f"rejected schema MeetingChange for subject '{subject}'" in line
    assert "incompatible" in line
    assert api.versions(subject) == [1]  # nothing registered over it


async def test_incompatible_schema_is_refused_where_the_operator_set_no_level(
    rig, registry_url: str
) -> None:
    # What a user of Apicurio gets today: the global NONE accepts the current MeetingChange
    # over one it cannot read, and old records become unreadable by new consumers. The
    # connector should make the subject FULL_TRANSITIVE first, and so refuse to start.
    run = rig(registry_url)
    api = RegistryApi(registry_url)
    subject = f"{run.topic}-value"
    api.register(subject, EARLIER_CHANGE)
    connector = await run.start()
    async with asyncio.timeout(60):
        while connector.process is not None and connector.process.returncode is None:
            versions = api.versions(subject)
            assert versions == [1], f"registered over it as version {versions[-1]}"
            await asyncio.sleep(0.3)
    assert await connector.wait(10) == 2, connector.log
    assert any(f"subject '{subject}'" in line for line in error_lines(connector.log))


async def test_restart_registers_nothing_new(simulator, rig, registry_url: str) -> None:
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1, 2])
    await past_settle()
    run = rig(registry_url)
    first = await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
    api = RegistryApi(registry_url)
    before = {s: (api.versions(s), api.latest(s)["id"]) for s in run.subjects.values()}
    assert await first.terminate() == 0

    await run.start()
    await simulator.patch(a, status="confirmed")
    await run.log.wait_for(has(a, "CONFIRMED"), 60, "CONFIRMED of a after the restart")

    after = {s: (api.versions(s), api.latest(s)["id"]) for s in run.subjects.values()}
    assert after == before
    assert all(versions == [1] for versions, _ in after.values())
    assert changes(run.log.events) == [(a, "SNAPSHOT"), (a, "CONFIRMED")]


async def test_url_without_the_confluent_api_path_names_the_setting_and_the_path(
    rig, registry_url: str
) -> None:
    if not registry_url.endswith(CCOMPAT):
        pytest.skip("the test registry is not Apicurio: its root is its Confluent API")
    root = registry_url.removesuffix(CCOMPAT)
    run = rig(root)

    line = await run.start_up_error()

    # Apicurio's root is no Confluent API: the first request (a subject's level) gets a 404.
    assert f"MEETINGS_CDC_SCHEMA_REGISTRY_URL: {root} answered 404" in line
    assert CCOMPAT in line  # what Apicurio users most likely left out


async def test_unreachable_registry_is_named(rig) -> None:
    url = f"http://127.0.0.1:{free_port()}{CCOMPAT}"  # nothing listens there
    run = rig(url)

    line = await run.start_up_error()

    assert "MEETINGS_CDC_SCHEMA_REGISTRY_URL" in line
    assert f"cannot reach the schema registry {url}" in line


# --- compatibility levels -----------------------------------------------------------------------


async def test_connector_sets_the_compatibility_of_fresh_subjects(
    simulator, rig, registry_url: str
) -> None:
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1])
    await past_settle()
    run = rig(registry_url)
    await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
    api = RegistryApi(registry_url)

    assert own_level(api, f"{run.topic}-value") == "FULL_TRANSITIVE"
    assert own_level(api, f"{run.topic}-key") is not None, "the key subject has no own level"
    for topic in ("MEETINGS_CDC_NOTIFICATIONS_TOPIC", "MEETINGS_CDC_HEARTBEATS_TOPIC"):
        assert own_level(api, f"{run.env[topic]}-value") == "FULL_TRANSITIVE", topic


async def test_an_operator_set_compatibility_level_is_kept(
    simulator, rig, registry_url: str
) -> None:
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1])
    await past_settle()
    run = rig(registry_url)
    api = RegistryApi(registry_url)
    api.set_compatibility(f"{run.topic}-value", "BACKWARD")
    api.set_compatibility(f"{run.topic}-key", "FULL")
    await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")

    assert own_level(api, f"{run.topic}-value") == "BACKWARD"
    assert own_level(api, f"{run.topic}-key") == "FULL"


# --- the registry stopped and started while the connector runs --------------------------------
#
# The two restart tests start a registry of their own twice (75-95 s each), so they run in
# ``make chaos`` (pytest -m slow). ``make test`` keeps the hard problem among them: ids that a
# restarted registry gave to other schemas are refused
# (``test_ids_a_restarted_registry_gave_to_other_schemas_are_refused``), and a connector
# SIGKILLed and restored through schema ids again and again (chaos ``registry-sigkill-short``).


@pytest.mark.slow  # two registry starts of its own: make chaos (CI time)
async def test_registry_restart_with_kept_storage(
    simulator, rig, own_registry, kafka_bootstrap: str
) -> None:
    """A registry with durable storage (as in production) stopped mid-run: the connector
    publishes on with the schema ids it registered; a connector (re)started meanwhile
    refuses to start, naming the registry; once it is back, everything resumes."""
    registry = await own_registry(persistent=True)
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1, 2])
    await past_settle()
    run = rig(registry.url)
    first = await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
    api = RegistryApi(registry.url)
    ids = {s: api.latest(s)["id"] for s in run.subjects.values()}

    await asyncio.to_thread(registry.down)
    await simulator.patch(a, status="confirmed")
    await run.log.wait_for(has(a, "CONFIRMED"), 30, "CONFIRMED of a, the registry down")
    assert first.process is not None
    assert first.process.returncode is None  # it published on
    assert await first.terminate() == 0

    line = await run.start_up_error()
    assert "MEETINGS_CDC_SCHEMA_REGISTRY_URL" in line
    assert f"cannot reach the schema registry {registry.url}" in line

    await asyncio.to_thread(registry.up)
    await run.start()
    await simulator.patch(a, start=T0 + 900)
    await run.log.wait_for(has(a, "RESCHEDULED"), 60, "RESCHEDULED of a, the registry back")

    assert {s: api.latest(s)["id"] for s in run.subjects.values()} == ids
    assert all(api.versions(s) == [1] for s in run.subjects.values())
    expected = [(a, "SNAPSHOT"), (a, "CONFIRMED"), (a, "RESCHEDULED")]
    assert changes(run.log.events) == expected
    assert tailed(await run_tail(kafka_bootstrap, run.topic, registry.url)) == expected


@pytest.mark.slow  # two registry starts of its own: make chaos (CI time)
async def test_registry_restart_in_memory_forgets_every_schema(
    simulator, rig, own_registry, kafka_bootstrap: str
) -> None:
    """Apicurio's default storage, in memory, restarted mid-run: what a user sees.

    The registry comes back empty. The running connector does not notice: it publishes on
    with the ids it registered, and a consumer that had fetched them decodes on; a consumer
    starting now cannot resolve any id and skips every record, naming the id. Restarting the
    connector registers the schemas again; in a registry nobody else wrote to meanwhile they
    get the same ids in the same order, so every record is readable again and nothing was lost.
    """
    registry = await own_registry()
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1, 2])
    await past_settle()
    run = rig(registry.url)
    first = await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
    api = RegistryApi(registry.url)
    ids = {s: api.latest(s)["id"] for s in run.subjects.values()}

    await asyncio.to_thread(registry.down)
    await asyncio.to_thread(registry.up)
    assert api.subjects() == []
    await simulator.patch(a, status="confirmed")
    await run.log.wait_for(has(a, "CONFIRMED"), 30, "CONFIRMED of a, the registry emptied")
    value_id = ids[f"{run.topic}-value"]
    assert raw_records(kafka_bootstrap, run.topic, 2)[-1].value()[:5] == header(value_id)

    fresh = await run_tail(kafka_bootstrap, run.topic, registry.url)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == ""
    skipped = [line for line in fresh.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2, fresh.stderr
    assert all("cannot fetch schema id" in line for line in skipped), fresh.stderr

    assert await first.terminate() == 0
    await run.start()
    await simulator.patch(a, start=T0 + 900)
    await run.log.wait_for(has(a, "RESCHEDULED"), 60, "RESCHEDULED of a, the connector restarted")

    assert {s: api.latest(s)["id"] for s in run.subjects.values()} == ids
    expected = [(a, "SNAPSHOT"), (a, "CONFIRMED"), (a, "RESCHEDULED")]
    assert tailed(await run_tail(kafka_bootstrap, run.topic, registry.url)) == expected


async def test_ids_a_restarted_registry_gave_to_other_schemas_are_refused(
    simulator, rig, own_registry, kafka_bootstrap: str
) -> None:
    """In-memory storage restarted, and another client registers first: the ids in the
    topics now name other schemas. Neither the connector nor ``tail`` may read a record with
    a schema that is not its record's: the connector refuses to restore (skipping its state
    would snapshot the event again from a new life), ``tail`` prints nothing of them."""
    registry = await own_registry()
    a = await simulator.create(event_id=EVENT, start=T0, participants=[1, 2])
    await past_settle()
    run = rig(registry.url)
    first = await run.start()
    await run.log.wait_for(has(a, "SNAPSHOT"), 60, "the snapshot of a")
    assert await first.terminate() == 0
    await asyncio.to_thread(registry.down)
    await asyncio.to_thread(registry.up)
    api = RegistryApi(registry.url)
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "string"}]}
    assert api.register(f"{run.name}.someone-else-value", other) == 1  # MeetingKey's id was 1

    second = await run.start()
    try:
        async with asyncio.timeout(60):
            while second.process is not None and second.process.returncode is None:
                await run.log.poll(0.5)
                if len(run.log.events) > 1 or "state restored" in second.log:
                    break
    except TimeoutError:
        pytest.fail(second.failure("the connector neither stopped nor restored within 60 s"))
    await run.log.settle(3)

    assert changes(run.log.events) == [(a, "SNAPSHOT")], "published again"
    assert await second.wait(30) != 0, "went on with the state it could not read"
    fresh = await run_tail(kafka_bootstrap, run.topic, registry.url)
    assert fresh.stdout == "", "printed a record decoded with another schema"
