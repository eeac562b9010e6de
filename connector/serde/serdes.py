"""``Serdes``: every Kafka key and value meetings-cdc writes or reads, as bytes."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import fastavro

from connector.config.settings import KafkaSettings
from connector.core.changes import ChangeEvent
from connector.core.model import Meeting
from connector.core.notifications import Heartbeat, Notification
from connector.core.progress import EventProgress
from connector.errors import SchemaMismatchError, SerializationError
from connector.serde import catalog, records
from connector.serde.bodies import FastEncoder, MeetingBodies
from connector.serde.catalog import (
    DEAD_LETTER,
    HEARTBEAT,
    MEETING_CHANGE,
    MEETING_KEY,
    NOTIFICATION,
    STATE_KEY,
    STATE_VALUE,
    RecordSchema,
)
from connector.serde.fastpath import fastavro_bytes
from connector.serde.framing import (
    Framing,
    RegistryFraming,
    SingleObjectFraming,
    WriterSchemas,
    ensure_compatibility,
)
from connector.serde.state_scan import read_created_and_rows, read_state_key

if TYPE_CHECKING:  # imported by registry_client(), only when a registry is configured
    from confluent_kafka.schema_registry import SchemaRegistryClient

log = logging.getLogger(__name__)

# fastavro reports a datum that does not fit the schema with these.
_DATUM_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
_READ_ERRORS = (*_DATUM_ERRORS, EOFError, IndexError, UnicodeDecodeError)


class WindowLike(Protocol):
    """A window read (``connector.source.windows.Window``): bounds in unix seconds."""

    @property
    def kind(self) -> str:  # noqa: D102
        ...

    @property
    def start(self) -> int:  # noqa: D102
        ...

    @property
    def end(self) -> int:  # noqa: D102
        ...


class DeadLetterLike(Protocol):
    """A rejected row (``connector.source.rows.DeadLetter``)."""

    @property
    def event_id(self) -> int:  # noqa: D102
        ...

    @property
    def raw(self) -> str:
        """The rejected row as JSON text."""
        ...

    @property
    def reason(self) -> str:
        """Why the row was rejected."""
        ...

    @property
    def window(self) -> WindowLike:  # noqa: D102
        ...


class Serdes:
    """Encoders and decoders of the change, state, dead-letter, notifications and heartbeats
    topics.

    Encoding frames bodies with ``framing`` (single-object encoding or the Confluent wire
    format); decoding accepts either. Schemas are parsed once; the state hot path reads
    with logical types stripped, so timestamps stay epoch-ms ints.
    """

    def __init__(self, framing: Framing, writers: WriterSchemas | None = None) -> None:
        """Use ``framing`` to encode; ``writers`` finds writer schemas when decoding."""
        self.framing = framing
        self._writers = writers or WriterSchemas()
        self._schemas = {name: catalog.current(name) for name in catalog.WRITTEN}
        self._headers = {name: framing.header(name) for name in catalog.WRITTEN}
        self._change = self._encoder(MEETING_CHANGE)
        self._state_key = self._encoder(STATE_KEY)
        self._state_value = self._encoder(STATE_VALUE)
        self._dead_letter = self._encoder(DEAD_LETTER)
        self._notification = self._encoder(NOTIFICATION)
        self._heartbeat = self._encoder(HEARTBEAT)
        self._fast = _checked_fast_encoder(self._schemas)

    @property
    def description(self) -> str:
        """Which framing this encodes with, for logs."""
        return self.framing.description

    @property
    def content_type(self) -> str:
        """The media type of the records this encodes (the ``content-type`` header)."""
        return self.framing.content_type

    # --- change topic -----------------------------------------------------------------------

    def encode_change_key(self, event_id: int, meeting_id: int) -> bytes:
        """The ``MeetingKey`` of a change event."""
        return self.frame_change_key(self.change_key_body(event_id, meeting_id))

    def change_key_body(self, event_id: int, meeting_id: int) -> bytes:
        """The canonical key of a change event: the Avro binary body of ``MeetingKey``,
        without framing (what its partition is computed from)."""
        if self._fast is not None:
            return self._fast.change_key(event_id, meeting_id)
        return fastavro_bytes(
            self._schemas[MEETING_KEY].plain, {"event_id": event_id, "meeting_id": meeting_id}
        )

    def frame_change_key(self, body: bytes) -> bytes:
        """The ``MeetingKey`` record of the canonical key ``body``, framed."""
        return self._headers[MEETING_KEY] + body

    def encode_change(
        self, event: ChangeEvent, states: tuple[bytes | None, bytes | None] = (None, None)
    ) -> bytes:
        """The ``MeetingChange`` value of a change event.

        ``states``: the state record values (``encode_meeting_state``) of the change's
        ``before`` and ``after`` where the caller has them; their Meeting bodies are reused
        instead of encoding the meetings again.
        """
        if self._fast is not None:
            before, after = (self._body_in_state(state) for state in states)
            return self._headers[MEETING_CHANGE] + self._fast.change(event, before, after)
        return self._change(records.change_datum(event))

    def decode_change(self, data: bytes) -> dict[str, Any]:
        """A change event (or any framed record) as a JSON-ready dict, read with its
        writer schema: timestamps as ISO-8601 UTC strings, enums as their names."""
        return self.decode_json(data)

    def decode_change_key(self, data: bytes) -> dict[str, Any]:
        """A change event's key as a JSON-ready dict."""
        return self.decode_json(data)

    def decode_json(self, data: bytes) -> dict[str, Any]:
        """Any framed record as a JSON-ready dict, read with its own writer schema."""
        writer, offset = self._writers.resolve(data)
        value = _read(data, offset, writer.parsed, None)
        result: dict[str, Any] = records.jsonable(value)
        return result

    # --- state topic ------------------------------------------------------------------------

    def encode_state_key(self, event_id: int, meeting_id: int | None) -> bytes:
        """The ``StateKey`` of a meeting's state, or of an event's progress (meeting None)."""
        if self._fast is not None:
            return self._headers[STATE_KEY] + self._fast.state_key(event_id, meeting_id)
        return self._state_key({"event_id": event_id, "meeting_id": meeting_id})

    def decode_state_key(self, data: bytes) -> tuple[int, int | None]:
        """(event_id, meeting_id or None) of a state key."""
        header = self._headers[STATE_KEY]
        if self._fast is not None and data[: len(header)] == header:
            key = read_state_key(data, len(header))  # restore reads one per record
            if key is not None:
                return key
        datum = self._read_current(STATE_KEY, data)
        return datum["event_id"], datum["meeting_id"]

    def encode_meeting_state(self, meeting: Meeting, version: int) -> bytes:
        """The ``StateValue`` of a meeting: its last published version and version number."""
        if self._fast is not None:
            return self._headers[STATE_VALUE] + self._fast.meeting_state(meeting, version)
        return self._state_value(records.meeting_state_datum(meeting, version))

    def _body_in_state(self, state: bytes | None) -> bytes | None:
        """The Meeting body inside a meeting ``StateValue`` of the current schema, else
        None (then the meeting is encoded afresh)."""
        header = self._headers[STATE_VALUE]
        if state is None or self._fast is None or state[: len(header)] != header:
            return None
        return self._fast.meeting_body_in_state(state[len(header) :])

    def state_holds(self, state: bytes, meeting: Meeting) -> bool:
        """Whether the meeting ``StateValue`` ``state`` holds exactly ``meeting``: its
        Meeting body is the bytes ``meeting`` encodes to. Encoding is much cheaper than
        decoding, and equal bodies mean equal meetings (every field is encoded); False
        when unsure (another schema, another order of an extra map): then decode."""
        body = self._body_in_state(state)
        return (
            body is not None
            and self._fast is not None
            and (body == self._fast.bodies.body(meeting))
        )

    def meeting_state_rows(self, data: bytes) -> tuple[int, int]:
        """(created_at ms, participants) of a meeting's ``StateValue``: read in place when
        it is in the current schema, else decoded."""
        header = self._headers[STATE_VALUE]
        if data[: len(header)] == header:
            found = read_created_and_rows(data, len(header))
            if found is not None:
                return found
        meeting, _ = self.decode_meeting_state(data)
        return meeting.created_at, len(meeting.participants)

    def decode_meeting_state(self, data: bytes) -> tuple[Meeting, int]:
        """(meeting, version) of a meeting's ``StateValue``."""
        header = self._headers[STATE_VALUE]
        current = data[: len(header)] == header
        if current:
            datum = _read(data, len(header), self._schemas[STATE_VALUE].plain, None)
        else:
            datum = self._read_current(STATE_VALUE, data)
        state = records.expect(datum, "meeting", "a meeting")
        try:
            meeting = records.meeting_from_datum(state["meeting"])
        except _DATUM_ERRORS as exc:
            raise SerializationError(f"cannot rebuild a meeting from state: {exc}") from exc
        version: int = state["version"]
        return meeting, version

    def encode_progress(self, progress: EventProgress) -> bytes:
        """The ``StateValue`` of an event's progress."""
        return self._state_value(records.progress_datum(progress))

    def decode_progress(self, data: bytes) -> EventProgress:
        """The ``EventProgress`` of an event's progress ``StateValue``."""
        datum = records.expect(self._read_current(STATE_VALUE, data), "progress", "a progress")
        return records.progress_from_datum(datum)

    # --- dead-letter topic ------------------------------------------------------------------

    def encode_dead_letter(
        self, letter: DeadLetterLike, *, detected_at: int, connector: str
    ) -> bytes:
        """The ``DeadLetter`` value of a rejected row (``detected_at`` in epoch ms)."""
        window = letter.window
        return self._dead_letter(
            {
                "event_id": letter.event_id,
                "raw": letter.raw,
                "reason": letter.reason,
                "window_kind": str(window.kind),
                "window_start": window.start,
                "window_end": window.end,
                "detected_at": detected_at,
                "connector": connector,
            }
        )

    def decode_dead_letter(self, data: bytes) -> dict[str, Any]:
        """A dead letter as a JSON-ready dict."""
        return self.decode_json(data)

    # --- notifications and heartbeats topics --------------------------------------------------
    # Their keys are UTF-8 text (``Notification.key``, ``Heartbeat.key``), so a console
    # consumer shows them as they are.

    def encode_notification(self, notification: Notification) -> bytes:
        """The ``Notification`` value of a notification."""
        return self._notification(records.notification_datum(notification))

    def encode_heartbeat(self, heartbeat: Heartbeat) -> bytes:
        """The ``Heartbeat`` value of a heartbeat."""
        return self._heartbeat(records.heartbeat_datum(heartbeat))

    def decode_as(self, name: str, data: bytes) -> dict[str, Any]:
        """A record of the schema ``name`` (``Notification``, ``Heartbeat``) in either
        framing as a JSON-ready dict, read as the current schema: times as ISO-8601 UTC
        strings. ``SerializationError`` when ``data`` is not a record of that schema."""
        writer, offset = self._writers.resolve(data)
        current = self._schemas[name]
        if writer.name != current.name:
            raise SerializationError(f"not a {name} record: written with schema {writer.name}")
        reader = None if writer.fingerprint == current.fingerprint else current.parsed
        result: dict[str, Any] = records.jsonable(_read(data, offset, writer.parsed, reader))
        return result

    # --- internals --------------------------------------------------------------------------

    def _encoder(self, name: str) -> Callable[[dict[str, Any]], bytes]:
        header = self._headers[name]
        schema = self._schemas[name].plain
        writer = fastavro.schemaless_writer

        def encode(datum: dict[str, Any]) -> bytes:
            buffer = io.BytesIO()
            buffer.write(header)
            try:
                writer(buffer, schema, datum)
            except _DATUM_ERRORS as exc:
                raise SerializationError(f"cannot encode a {name} record: {exc!r}") from exc
            return buffer.getvalue()

        return encode

    def _read_current(self, name: str, data: bytes) -> Any:
        """Read ``data`` as the current schema ``name`` (resolving an older writer's)."""
        current = self._schemas[name]
        header = self._headers[name]
        if data[: len(header)] == header:
            return _read(data, len(header), current.plain, None)
        writer, offset = self._writers.resolve(data)
        if writer.fingerprint == current.fingerprint:
            return _read(data, offset, current.plain, None)
        if writer.name != current.name:  # another record's schema: its bytes mean nothing here
            raise SchemaMismatchError(
                f"a {name} record written with schema {writer.name}: the schema registry no "
                "longer holds the ids the topics were written with (an in-memory registry "
                "restarted?); restore its storage, or move to new topics (docs/schemas.md)"
            )
        return _read(data, offset, writer.plain, current.plain)


def _checked_fast_encoder(schemas: dict[str, RecordSchema]) -> FastEncoder | None:
    """The fast encoder, if it writes exactly fastavro's bytes for the current schemas
    (a schema change it does not know about turns it off rather than corrupting data)."""
    try:
        fast = FastEncoder(MeetingBodies())
        for event_id, meeting_id in ((1, -2), (0, 2**40), (-(2**63), 2**63 - 1), (7, None)):
            key = {"event_id": event_id, "meeting_id": meeting_id}
            body = fast.state_key(event_id, meeting_id)
            if body != fastavro_bytes(schemas[STATE_KEY].plain, key):
                raise ValueError("StateKey bytes differ")
            if read_state_key(body, 0) != (event_id, meeting_id):
                raise ValueError("StateKey decodes differently")
            if meeting_id is not None and fast.change_key(event_id, meeting_id) != fastavro_bytes(
                schemas[MEETING_KEY].plain, key
            ):
                raise ValueError("MeetingKey bytes differ")
        for event in records.self_check_events():
            expected = fastavro_bytes(schemas[MEETING_CHANGE].plain, records.change_datum(event))
            if fast.change(event) != expected:
                raise ValueError("MeetingChange bytes differ")
            after = event.change.after
            if after is not None:
                state = records.meeting_state_datum(after, event.version)
                if fast.meeting_state(after, event.version) != fastavro_bytes(
                    schemas[STATE_VALUE].plain, state
                ):
                    raise ValueError("StateValue bytes differ")
    except (ValueError, KeyError, StopIteration, SerializationError) as exc:
        log.warning("fast Avro encoder disabled, using fastavro for everything: %s", exc)
        return None
    return fast


def _read(data: bytes, offset: int, writer: Any, reader: Any) -> Any:
    buffer = io.BytesIO(data)
    buffer.seek(offset)
    try:
        return fastavro.schemaless_reader(buffer, writer, reader)
    except _READ_ERRORS as exc:
        raise SerializationError(f"cannot decode an Avro record: {exc!r}") from exc
    except Exception as exc:  # fastavro's SchemaResolutionError has no common base
        raise SerializationError(f"cannot decode an Avro record: {exc!r}") from exc


def subjects(
    changes_topic: str,
    state_topic: str,
    dlq_topic: str,
    notifications_topic: str,
    heartbeats_topic: str,
) -> dict[str, str]:
    """TopicNameStrategy subjects of every schema: ``<topic>-key`` / ``<topic>-value`` (the
    notifications' and heartbeats' keys are text: no subject)."""
    return {
        MEETING_KEY: f"{changes_topic}-key",
        MEETING_CHANGE: f"{changes_topic}-value",
        STATE_KEY: f"{state_topic}-key",
        STATE_VALUE: f"{state_topic}-value",
        DEAD_LETTER: f"{dlq_topic}-value",
        NOTIFICATION: f"{notifications_topic}-value",
        HEARTBEAT: f"{heartbeats_topic}-value",
    }


def registry_client(settings: KafkaSettings) -> SchemaRegistryClient | None:
    """A client of the configured schema registry (``mock://`` gives confluent-kafka's
    in-process mock), or None when none is configured."""
    url = settings.schema_registry_url
    if not url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, str] = {"url": url}
    if settings.schema_registry_basic_auth is not None:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth.get_secret_value()
    client: SchemaRegistryClient = SchemaRegistryClient.new_client(conf)
    return client


def make_serdes(
    settings: KafkaSettings,
    changes_topic: str,
    state_topic: str,
    dlq_topic: str,
    notifications_topic: str,
    heartbeats_topic: str,
) -> Serdes:
    """Serdes for the configured encoding: the Confluent wire format when
    ``MEETINGS_CDC_SCHEMA_REGISTRY_URL`` is set (each subject's compatibility set where it
    has none, then the schemas registered now, so an incompatible schema fails start-up with
    a ``ConfigError``), else single-object encoding."""
    client = registry_client(settings)
    if client is None:
        return Serdes(SingleObjectFraming())
    url = str(settings.schema_registry_url)
    named = subjects(changes_topic, state_topic, dlq_topic, notifications_topic, heartbeats_topic)
    for subject in named.values():
        ensure_compatibility(client, url, subject)
    framing = RegistryFraming(client, url, named)
    return Serdes(framing, WriterSchemas(client))


def reader_serdes(settings: KafkaSettings) -> Serdes:
    """Serdes for a process that only reads (``tail``, ``state show``, ``signal --wait``):
    it decodes either framing, fetching schemas by id from the configured registry, and
    registers nothing."""
    return Serdes(SingleObjectFraming(), WriterSchemas(registry_client(settings)))
