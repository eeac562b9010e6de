"""Personal data under the field rules, end to end: the real broker, the simulator over HTTP,
``meetings-cdc run`` at DEBUG as a process, and ``meetings-cdc export``.

With ``participant.email=hash,participant.last_name=redact,notes=drop`` no record of the
changes, state or dead-letter topic (decoded with ``schemas/`` alone) and no log line holds
a simulator email, last name or note; an email changed upstream is still a
PARTICIPANTS_CHANGED; one person's email hashes alike in every event; and a restart under
other rules or another key is refused (exit 2) while the same ones publish nothing new.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError
from fastavro.schema import load_schema

import meetings_simulator.store as sim_store
from meetings_simulator.people import person_for
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, past_settle

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EVENT = 1
T0 = 1_900_000_000
KEY = "a-test-hash-key-of-some-32-bytes"
RULES = "participant.email=hash,participant.last_name=redact,notes=drop"
REDACTED = "[redacted]"
#: The meetings' participants: account 1 is in the first three meetings.
PARTICIPANTS = [[1, 2, 3], [1, 4], [1, 5, 6], [7, 8], [9, 10], [11, 12, 13], [14, 15]]
NEW_EMAIL = "ada.renamed.1@elsewhere.example"


def digest(value: str) -> str:
    return "hmac-sha256:" + hmac.digest(KEY.encode(), value.encode(), "sha256").hex()


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of ``topic`` (key, value), read to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.subscribe([topic])
        ends: set[int] = set()
        for _ in range(200):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is None:
                    records.append((msg.key(), msg.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends.add(msg.partition())
            assignment = consumer.assignment()
            if assignment and {p.partition for p in assignment} <= ends:
                return records
        raise AssertionError(f"never reached the end of {topic}")
    finally:
        consumer.close()


def decode(schema_file: str, data: bytes) -> Any:
    """A registry-less record decoded with the ``.avsc`` files alone (as README shows)."""
    assert data[:2] == b"\xc3\x01"
    schema = load_schema(str(SCHEMAS / schema_file))
    return fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)


def decoded_topics(bootstrap: str, env: dict[str, str]) -> dict[str, list[Any]]:
    """Every record of the three topics, keys and values decoded."""
    decoded: dict[str, list[Any]] = {}
    for name, key_schema, value_schema in (
        ("MEETINGS_CDC_CHANGES_TOPIC", "MeetingKey.avsc", "MeetingChange.avsc"),
        ("MEETINGS_CDC_STATE_TOPIC", "StateKey.avsc", "StateValue.avsc"),
        ("MEETINGS_CDC_DLQ_TOPIC", None, "DeadLetter.avsc"),
    ):
        records = []
        for key, value in read_topic(bootstrap, env[name]):
            records.append(
                {
                    "key": decode(key_schema, key) if key and key_schema else key,
                    "value": decode(value_schema, value) if value else None,
                    "raw": (key or b"") + (value or b""),
                }
            )
        decoded[name] = records
    return decoded


def clear_values(notes: list[str], accounts: set[int]) -> list[str]:
    """What must never show: every email, note and (distinctive) last name."""
    people = {a: person_for(a) for a in accounts}
    # a last name that is also part of a value no rule masks (a company, a first name)
    # would be found in clear legitimately: only the distinctive ones are searched
    unmasked = " ".join(f"{p.first_name} {p.company} {p.job_title}" for p in people.values())
    lasts = {p.last_name for p in people.values() if p.last_name not in unmasked}
    assert len(lasts) >= 5
    return [p.email for p in people.values()] + [NEW_EMAIL, *notes, *sorted(lasts)]


def leaks(text: str, values: list[str]) -> list[str]:
    return [v for v in values if v in text]


async def run_export(env: dict[str, str], tmp_path: Path) -> tuple[int, str, str]:
    dead = tmp_path / "dead.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "export",
        "--event-id",
        str(EVENT),
        "--dead-letters",
        str(dead),
        "--progress",
        "none",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode() + dead.read_text(), stderr.decode()


async def test_masked_fields_never_reach_kafka_logs_or_output(
    simulator, kafka_bootstrap, unique_name, monkeypatch, tmp_path
):
    notes = [f"confidential note {i}: call back re contract {4711 + i}" for i in range(7)]
    ids = [
        await simulator.create(
            event_id=EVENT,
            start=T0 + i * 600,
            participants=accounts,
            location=f"Table {i}",
            notes=notes[i],
        )
        for i, accounts in enumerate(PARTICIPANTS)
    ]
    accounts = {a for accounts in PARTICIPANTS for a in accounts} | {16, 17, 18, 19}
    clear = clear_values(notes, accounts)
    await past_settle()
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("pii"),
        MEETINGS_CDC_FIELD_RULES=RULES,
        MEETINGS_CDC_FIELD_HASH_KEY=KEY,
        MEETINGS_CDC_LOG_LEVEL="DEBUG",
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: {e["meeting_id"] for e in ev} >= set(ids), 60, "snapshot")
        # Malformed rows (they keep their emails and notes) while new meetings come.
        await simulator.set_faults(bad_row_rate=0.5, seed=7)
        for i in range(4):
            await simulator.create(
                event_id=EVENT, start=T0 + i, participants=[16 + i, 1], notes=notes[i]
            )
            await asyncio.sleep(0.7)
        await asyncio.sleep(2)
        await simulator.clear_faults()

        # Upstream, account 1's email changes, and its first meeting is touched (a note:
        # its rows are rendered again); the fourth meeting only gets a new note.
        changed_person = person_for(1)

        def participant_fields(participant: Any) -> dict[str, Any]:
            fields = original(participant)
            if participant.account_id == 1:
                fields["email"] = NEW_EMAIL
            return fields

        original = sim_store.participant_fields
        monkeypatch.setattr(sim_store, "participant_fields", participant_fields)
        simulator.store._tails.clear()  # the rendered participant rows, cached
        await simulator.patch(ids[0], notes="a new confidential note 0")
        await simulator.patch(ids[3], notes="a new confidential note 3")
        clear += ["a new confidential note 0", "a new confidential note 3"]
        marker = await simulator.create(event_id=EVENT, start=T0, participants=[2, 3])
        await log.wait_for(lambda ev: any(e["meeting_id"] == marker for e in ev), 60, "marker")
        await log.settle(1.5)
        assert await connector.terminate() == 0
    finally:
        await connector.stop_quietly()
        log.close()

    # The email change is a participants change, with both versions hashed.
    (changed,) = [e for e in log.of(ids[0]) if e["change_type"] != "SNAPSHOT"]
    assert changed["change_type"] == "PARTICIPANTS_CHANGED"
    assert changed["changed_fields"] == ["participants"]

    def email_of(meeting: dict[str, Any], account: int) -> str:
        (p,) = [p for p in meeting["participants"] if p["account_id"] == account]
        return str(p["extra"]["email"])

    assert email_of(changed["before"], 1) == digest(changed_person.email)
    assert email_of(changed["after"], 1) == digest(NEW_EMAIL)
    # A note alone (dropped) changed no content: only the touch is seen.
    (touched,) = [e for e in log.of(ids[3]) if e["change_type"] != "SNAPSHOT"]
    assert touched["change_type"] == "UPDATED"
    assert touched["changed_fields"] == ["modified_at"]
    # The meetings not touched published nothing but their snapshot.
    for meeting_id in ids[1:3] + ids[4:]:
        assert [e["change_type"] for e in log.of(meeting_id)] == ["SNAPSHOT"]
    # One person's email hashes alike in every event (account 1 in three meetings).
    snapshots = {e["meeting_id"]: e["after"] for e in log.events if e["change_type"] == "SNAPSHOT"}
    assert {email_of(snapshots[m], 1) for m in ids[:3]} == {digest(changed_person.email)}
    for after in snapshots.values():
        assert "notes" not in after["extra"]
        for p in after["participants"]:
            assert p["extra"]["last_name"] == REDACTED
            assert p["extra"]["email"].startswith("hmac-sha256:")
            assert p["extra"]["first_name"] == person_for(p["account_id"]).first_name

    # Nothing in clear in any record of the three topics, decoded or as bytes.
    topics = decoded_topics(kafka_bootstrap, env)
    for name, records in topics.items():
        assert records, name
        for record in records:
            text = json.dumps(record["value"], default=str, ensure_ascii=False)
            assert leaks(text, clear) == [], (name, text)
            assert leaks(record["raw"].decode(errors="replace"), clear) == [], name
    # Dead letters with emails in them reached the dead-letter topic, masked.
    letters = [json.loads(r["value"]["raw"]) for r in topics["MEETINGS_CDC_DLQ_TOPIC"]]
    with_email = [row for row in letters if isinstance(row, dict) and "email" in row]
    assert with_email
    hashed = {digest(person_for(a).email) for a in accounts} | {digest(NEW_EMAIL)}
    for row in with_email:
        assert row["email"] in hashed
        assert row["last_name"] == REDACTED
        assert "notes" not in row
    # The state records its rules (never the key).
    progress = [
        r["value"]["progress"]
        for r in topics["MEETINGS_CDC_STATE_TOPIC"]
        if r["value"] and r["value"]["progress"]
    ][-1]
    assert progress["field_rules"] == (
        "notes=drop,participant.email=hash,participant.last_name=redact"
    )
    assert len(progress["field_hash_key_check"]) == 32
    # ... and no log line, at DEBUG, holds a masked value or the key.
    assert '"level": "DEBUG"' in connector.log
    assert leaks(connector.log, [*clear, KEY]) == []

    # export prints the same masked meetings (and dead letters).
    kept = {"MEETINGS_CDC_API_BASE_URL", "MEETINGS_CDC_FIELD_RULES", "MEETINGS_CDC_FIELD_HASH_KEY"}
    export_env = {k: v for k, v in env.items() if k in kept or not k.startswith("MEETINGS_CDC_")}
    await simulator.set_faults(bad_row_rate=0.3, seed=3)
    code, output, stderr = await run_export(export_env, tmp_path)
    await simulator.clear_faults()
    assert code == 0, stderr
    assert digest(person_for(2).email) in output
    assert leaks(output + stderr, [*clear, KEY]) == []


async def test_a_start_under_other_rules_or_another_key_is_refused(
    simulator, kafka_bootstrap, unique_name
):
    for i in range(3):
        await simulator.create(event_id=EVENT, start=T0 + i * 600, participants=[1, 2])
    await past_settle()
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("rules"),
        MEETINGS_CDC_FIELD_RULES=RULES,
        MEETINGS_CDC_FIELD_HASH_KEY=KEY,
    )
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    connector = ConnectorProcess(env)
    try:
        await connector.start()
        await log.wait_for(lambda ev: len(ev) == 3, 60, "the snapshot")
        assert await connector.terminate() == 0

        for changed, setting in (
            ({"MEETINGS_CDC_FIELD_RULES": "participant.email=hash"}, "MEETINGS_CDC_FIELD_RULES"),
            ({"MEETINGS_CDC_FIELD_HASH_KEY": KEY[::-1]}, "MEETINGS_CDC_FIELD_HASH_KEY"),
        ):
            refused = ConnectorProcess({**env, **changed})
            await refused.start()
            assert await refused.wait(60) == 2, refused.tail
            last = refused.log.strip().splitlines()[-1]
            assert last.startswith(f"meetings-cdc run: {setting}: "), last
            assert "the state of event 1" in last
            assert KEY not in refused.log
            assert KEY[::-1] not in refused.log

        # Back under its own rules: it goes on, and publishes nothing new.
        await connector.start()
        await connector.mark("partitions assigned", 60)
        await log.settle(5)
        assert connector.process is not None
        assert connector.process.returncode is None, connector.tail
        assert len(log.events) == 3
    finally:
        await connector.stop_quietly()
        log.close()
