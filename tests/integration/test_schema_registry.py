"""The Confluent wire format with a schema registry.

No real Confluent-compatible registry can be run here (docs/schemas.md, "Schema registry
testing", says what was tried), so two stand-ins:

- confluent-kafka's in-process ``mock://`` registry: the wire format byte for byte;
- ``_StubRegistry``: a minimal HTTP server implementing the three endpoints we use
  (register a version, fetch a schema by id, under TopicNameStrategy subjects) that
  enforces BACKWARD compatibility with Apache avro's ReaderWriterCompatibilityChecker, the
  same rules a real registry applies. It exercises the real HTTP client and our handling of
  its 409 at start-up, and serves ``meetings-cdc tail`` in another process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.config.settings import KafkaSettings
from connector.core.changes import Change, ChangeEvent, ChangeType, SourceInfo
from connector.core.model import Meeting, Participant
from connector.errors import ConfigError
from connector.serde import RegistryFraming, Serdes, WriterSchemas, make_serdes, subjects
from connector.serde.catalog import current

TAIL_ARGS = ("--from-beginning", "--max-messages", "2")


def sample_event(meeting_id: int = 7) -> ChangeEvent:
    after = Meeting(
        event_id=10,
        meeting_id=meeting_id,
        status="confirmed",
        start_at=1_767_261_600_000,
        end_at=1_767_263_400_000,
        location="Room 1",
        created_at=1_767_000_000_000,
        modified_at=1_767_100_000_000,
        participants=(Participant(1, "requester", "accepted"),),
    )
    before = dataclasses.replace(after, status="pending")
    return ChangeEvent(
        10,
        meeting_id,
        Change(ChangeType.CONFIRMED, ("status",), before, after),
        after.modified_at,
        1_767_100_001_000,
        2,
        SourceInfo("registry-test", "0.1.0", "modified", 1, 2),
    )


# --- mock:// ----------------------------------------------------------------------------------


def test_wire_format_with_the_mock_registry() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://wire-format"})
    names = subjects("t.changes", "t.state", "t.dlq")
    serdes = Serdes(RegistryFraming(client, "mock://wire-format", names), WriterSchemas(client))

    key = serdes.encode_change_key(10, 7)
    value = serdes.encode_change(sample_event())

    value_id = client.get_latest_version("t.changes-value").schema_id
    key_id = client.get_latest_version("t.changes-key").schema_id
    assert value[:5] == b"\x00" + value_id.to_bytes(4, "big")
    assert key[:5] == b"\x00" + key_id.to_bytes(4, "big")
    decoded = serdes.decode_change(value)
    assert decoded["change_type"] == "CONFIRMED"
    assert decoded["after"]["status"] == "confirmed"
    assert serdes.decode_change_key(key) == {"event_id": 10, "meeting_id": 7}
    assert serdes.decode_state_key(serdes.encode_state_key(10, None)) == (10, None)
    # What the registry holds is the fully inlined schema, parseable on its own.
    registered = client.get_latest_version("t.changes-value").schema.schema_str
    assert registered == current("MeetingChange").text
    parse(registered)


def test_make_serdes_uses_the_registry_when_configured() -> None:
    settings = KafkaSettings(schema_registry_url="mock://make-serdes")
    serdes = make_serdes(settings, "a", "b", "c")
    assert isinstance(serdes.framing, RegistryFraming)
    assert serdes.encode_change(sample_event())[0] == 0


# --- the stub registry over HTTP --------------------------------------------------------------


class _StubRegistry(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.schemas: list[str] = []  # id - 1 -> schema text
        self.versions: dict[str, list[int]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def register(self, subject: str, text: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            ids = self.versions.setdefault(subject, [])
            for schema_id in ids:
                if self.schemas[schema_id - 1] == text:
                    return 200, {"id": schema_id}
            if ids:
                latest = parse(self.schemas[ids[-1] - 1])
                result = ReaderWriterCompatibilityChecker().get_compatibility(parse(text), latest)
                if result.compatibility is not SchemaCompatibilityType.compatible:
                    return 409, {
                        "error_code": 409,
                        "message": "Schema being registered is incompatible with an earlier "
                        f'schema for subject "{subject}": {"; ".join(result.messages)}',
                    }
            self.schemas.append(text)
            ids.append(len(self.schemas))
            return 200, {"id": len(self.schemas)}


class _Handler(BaseHTTPRequestHandler):
    server: _StubRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        match = re.fullmatch(r"/subjects/([^/?]+)/versions(\?.*)?", self.path)
        if not match:
            return self._reply(404, {"error_code": 404, "message": "not found"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, reply = self.server.register(match.group(1), body["schema"])
        return self._reply(status, reply)

    def do_GET(self) -> None:
        match = re.fullmatch(r"/schemas/ids/(\d+)(\?.*)?", self.path)
        schema_id = int(match.group(1)) if match else 0
        if not 0 < schema_id <= len(self.server.schemas):
            return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
        return self._reply(200, {"schema": self.server.schemas[schema_id - 1]})


@pytest.fixture
def registry() -> Iterator[_StubRegistry]:
    server = _StubRegistry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_incompatible_schema_fails_start_up_with_a_clear_error(registry: _StubRegistry) -> None:
    # An earlier MeetingChange that lacks meeting_id: the current one (a reader needing
    # meeting_id, with no default) cannot read what it wrote, so BACKWARD refuses it.
    earlier = {
        "type": "record",
        "name": "MeetingChange",
        "namespace": "meetings_cdc",
        "fields": [{"name": "event_id", "type": "long"}],
    }
    registry.register("orders.changes-value", json.dumps(earlier))
    settings = KafkaSettings(schema_registry_url=registry.url)

    with pytest.raises(ConfigError) as caught:
        make_serdes(settings, "orders.changes", "orders.state", "orders.dlq")

    message = str(caught.value)
    assert "rejected schema MeetingChange for subject 'orders.changes-value'" in message
    assert "incompatible" in message
    assert "docs/schemas.md" in message


def test_compatible_start_up_registers_every_subject(registry: _StubRegistry) -> None:
    settings = KafkaSettings(schema_registry_url=registry.url)
    make_serdes(settings, "c", "s", "d")
    again = make_serdes(settings, "c", "s", "d")  # a restart registers nothing new

    assert sorted(registry.versions) == ["c-key", "c-value", "d-value", "s-key", "s-value"]
    assert all(len(ids) == 1 for ids in registry.versions.values())
    assert again.encode_change_key(1, 2)[:5] == b"\x00" + (1).to_bytes(4, "big")


def test_unreachable_registry_is_a_config_error() -> None:
    settings = KafkaSettings(schema_registry_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="MEETINGS_CDC_SCHEMA_REGISTRY_URL"):
        make_serdes(settings, "c", "s", "d")


def test_tail_decodes_the_wire_format_through_the_registry(
    registry: _StubRegistry, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("registry.changes")
    serdes = make_serdes(KafkaSettings(schema_registry_url=registry.url), topic, "s", "d")
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"registry-test-{topic}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for meeting_id in (1, 2):
        producer.produce(
            topic,
            key=serdes.encode_change_key(10, meeting_id),
            value=serdes.encode_change(sample_event(meeting_id)),
        )
    producer.commit_transaction(30)

    env = {
        **os.environ,
        "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MEETINGS_CDC_SCHEMA_REGISTRY_URL": registry.url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "connector", "tail", "--topic", topic, *TAIL_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["key"]["meeting_id"], line["change_type"]) for line in lines] == [
        (1, "CONFIRMED"),
        (2, "CONFIRMED"),
    ]
