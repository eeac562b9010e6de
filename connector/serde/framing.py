"""How an Avro body is framed in a Kafka record, and how a frame's writer schema is found.

Two framings, chosen by settings:

- single-object encoding (no registry): ``0xC3 0x01``, the 8-byte little-endian
  CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the body;
- the Confluent wire format (with a registry): ``0x00``, the 4-byte big-endian schema id
  the registry gave the writer schema, then the body. Schemas are registered at start-up
  under TopicNameStrategy subjects (``<topic>-key`` / ``<topic>-value``), each subject's
  compatibility level set first where none is (:func:`ensure_compatibility`, called by
  ``make_serdes`` before the framing registers).

Decoding accepts either framing whatever the settings (the first byte tells them apart).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from connector.errors import ConfigError, SchemaMismatchError, SerializationError
from connector.serde import catalog
from connector.serde.catalog import SINGLE_OBJECT_MAGIC, RecordSchema

if TYPE_CHECKING:
    # Imported where a registry is used: the client and its HTTP, OAuth and JOSE libraries
    # took ~90 ms of every start (~15 % of the imports), registry or not (issue 30 item 3).
    from confluent_kafka.schema_registry import SchemaRegistryClient

log = logging.getLogger(__name__)

CONFLUENT_MAGIC = 0
_SINGLE_OBJECT_HEADER_LENGTH = 10
_CONFLUENT_HEADER_LENGTH = 5
_HTTP_CONFLICT = 409
_HTTP_UNPROCESSABLE = 422
_HTTP_NOT_FOUND = 404

#: The level the connector sets on each of its subjects. FULL_TRANSITIVE: consumers on any
#: released schema read new records, the current schema reads every old one, and during a
#: rolling update an old replica reads state a new one wrote (docs/schemas.md).
COMPATIBILITY = "FULL_TRANSITIVE"
#: What a registry answers for a subject without a level of its own, besides a 404: Apicurio
#: says NONE (Confluent 404s with 40408). A subject at NONE checks nothing, so it counts as
#: unset and gets the connector's level.
_UNSET_LEVELS = frozenset({"NONE"})
#: A registry's 404 for a subject without a level: no such subject (40401), no level (40408).
#: A 404 without a registry error code came from a server that is not the registry's API.
_NO_LEVEL_CODES = frozenset({40401, 40408})


class Framing(Protocol):
    """The encoding side: the header written before each record type's body."""

    description: str
    #: the ``content-type`` header of records framed so (CloudEvents ``datacontenttype``)
    content_type: str

    def header(self, name: str) -> bytes:
        """Header of records of the top-level schema ``name``."""
        ...


class SingleObjectFraming:
    """Avro single-object encoding: readable with the ``.avsc`` files alone."""

    description = "Avro single-object encoding"
    content_type = "application/avro; encoding=single-object"

    def header(self, name: str) -> bytes:
        """0xC3 0x01 and the fingerprint of the current schema ``name``."""
        return catalog.current(name).single_object_header


class RegistryFraming:
    """The Confluent wire format; registers the current schemas when it is created."""

    description = "Confluent wire format"
    content_type = "application/avro"

    def __init__(self, client: SchemaRegistryClient, url: str, subjects: Mapping[str, str]):
        """Register ``{schema name: subject}``; raise ``ConfigError`` if the registry
        refuses a schema (incompatible with what the subject already holds) or is down."""
        self._headers: dict[str, bytes] = {}
        for name, subject in subjects.items():
            schema_id = register(client, url, subject, catalog.current(name))
            self._headers[name] = bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")

    def header(self, name: str) -> bytes:
        """0x00 and the 4-byte big-endian id of the registered schema ``name``."""
        try:
            return self._headers[name]
        except KeyError:
            raise SerializationError(f"no subject registered for schema {name}") from None


def ensure_compatibility(client: SchemaRegistryClient, url: str, subject: str) -> str:
    """Set ``subject``'s compatibility to :data:`COMPATIBILITY` unless it has a level of its
    own; return the level in force. A level an operator set is kept (and logged, a warning
    when it is not the connector's): a registry's global default is not relied upon, since
    it differs between registries (Confluent BACKWARD, Apicurio NONE)."""
    from confluent_kafka.schema_registry import SchemaRegistryError

    try:
        level = _subject_level(client, subject)
        if level is None:
            client.set_compatibility(subject, COMPATIBILITY)
            log.info(
                "schema subject compatibility set",
                extra={"subject": subject, "compatibility": COMPATIBILITY},
            )
            return COMPATIBILITY
    except SchemaRegistryError as exc:
        if exc.http_status_code == _HTTP_NOT_FOUND and exc.error_code not in _NO_LEVEL_CODES:
            raise ConfigError(
                f"MEETINGS_CDC_SCHEMA_REGISTRY_URL: {url} answered 404 Not Found to the "
                "Confluent schema registry API (GET /config/SUBJECT): point it at the API's "
                "root (Apicurio Registry: http://HOST:PORT/apis/ccompat/v7)"
            ) from exc
        raise ConfigError(
            f"schema registry {url}: cannot read or set the compatibility of subject "
            f"'{subject}': {exc}"
        ) from exc
    except Exception as exc:  # HTTP client errors (connection refused, TLS...) at start-up
        raise _unreachable(url, exc) from exc
    if level != COMPATIBILITY:
        log.warning(
            "schema subject keeps the compatibility an operator set; the connector's is "
            f"{COMPATIBILITY} (docs/schemas.md)",
            extra={"subject": subject, "compatibility": level},
        )
    return level


def _unreachable(url: str, exc: Exception) -> ConfigError:
    """What a start-up request to a registry that cannot be reached says."""
    return ConfigError(
        f"MEETINGS_CDC_SCHEMA_REGISTRY_URL: cannot reach the schema registry {url}: {exc}"
    )


def _subject_level(client: SchemaRegistryClient, subject: str) -> str | None:
    """The subject's own compatibility level, or None when it has none."""
    from confluent_kafka.schema_registry import SchemaRegistryError

    try:
        level = str(client.get_compatibility(subject)).upper()
    except SchemaRegistryError as exc:
        if exc.http_status_code == _HTTP_NOT_FOUND and exc.error_code in _NO_LEVEL_CODES:
            return None
        raise
    return None if level in _UNSET_LEVELS else level


def register(client: SchemaRegistryClient, url: str, subject: str, schema: RecordSchema) -> int:
    """Register ``schema`` under ``subject``; return its id. Errors become ``ConfigError``."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryError

    try:
        schema_id: int = client.register_schema(subject, Schema(schema.text, "AVRO"))
    except SchemaRegistryError as exc:
        if exc.http_status_code == _HTTP_CONFLICT:
            raise ConfigError(
                f"schema registry {url} rejected schema {schema.name} for subject '{subject}': "
                f"incompatible with the versions already registered ({exc.error_message}). "
                "Evolve schemas/ compatibly (docs/schemas.md: new fields optional with "
                "defaults), or point MEETINGS_CDC_CHANGES_TOPIC / MEETINGS_CDC_STATE_TOPIC "
                "at new topics"
            ) from exc
        if exc.http_status_code == _HTTP_UNPROCESSABLE:
            raise ConfigError(
                f"schema registry {url} rejected schema {schema.name} for subject '{subject}' "
                f"as invalid: {exc.error_message}"
            ) from exc
        raise ConfigError(
            f"schema registry {url}: cannot register schema {schema.name} for subject "
            f"'{subject}': {exc}"
        ) from exc
    except Exception as exc:  # HTTP client errors (connection refused, TLS...) at start-up
        raise _unreachable(url, exc) from exc
    log.info(
        "schema registered", extra={"subject": subject, "schema": schema.name, "id": schema_id}
    )
    return schema_id


class WriterSchemas:
    """Finds the writer schema of a framed record: by fingerprint among the current and
    released schemas, or by id from the registry (fetched once, then cached)."""

    def __init__(self, registry: SchemaRegistryClient | None = None) -> None:
        """``registry`` is needed only to read records in the Confluent wire format."""
        self._registry = registry
        self._by_fingerprint = catalog.known_writers()
        self._by_id: dict[int, RecordSchema] = {}
        self._lock = threading.Lock()
        #: the record names a meetings-cdc record may be written with
        self._names = frozenset(schema.name for schema in self._by_fingerprint.values())

    def resolve(self, data: bytes) -> tuple[RecordSchema, int]:
        """(writer schema, offset of the body) of the framed record ``data``."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            fingerprint = data[2:_SINGLE_OBJECT_HEADER_LENGTH]
            schema = self._by_fingerprint.get(fingerprint)
            if schema is None:
                raise SerializationError(
                    f"single-object record written with an unknown schema (fingerprint "
                    f"{fingerprint.hex()}): not one of schemas/ or schemas/released/"
                )
            return schema, _SINGLE_OBJECT_HEADER_LENGTH
        if data[:1] == bytes([CONFLUENT_MAGIC]) and len(data) >= _CONFLUENT_HEADER_LENGTH:
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER_LENGTH], "big")
            return self._by_registry_id(schema_id), _CONFLUENT_HEADER_LENGTH
        raise SerializationError(
            f"not an Avro record of meetings-cdc: starts with {data[:2].hex() or 'nothing'}, "
            "expected c301 (single-object encoding) or 00 (Confluent wire format)"
        )

    def _by_registry_id(self, schema_id: int) -> RecordSchema:
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._registry is None:
            raise SerializationError(
                f"record in the Confluent wire format (schema id {schema_id}) but no schema "
                "registry is configured: set MEETINGS_CDC_SCHEMA_REGISTRY_URL"
            )
        try:
            fetched: Any = self._registry.get_schema(schema_id)
        except Exception as exc:  # registry client errors: HTTP, not found
            raise SerializationError(
                f"cannot fetch schema id {schema_id} from the schema registry: {exc}"
            ) from exc
        schema = catalog.record_schema_from_json(fetched.schema_str)
        if schema.name not in self._names:
            raise SchemaMismatchError(
                f"schema id {schema_id} in the schema registry is record '{schema.name}', not a "
                "schema of meetings-cdc: the registry no longer holds the ids the topics were "
                "written with (an in-memory registry restarted?); restore its storage, or "
                "move to new topics (docs/schemas.md)"
            )
        with self._lock:
            self._by_id[schema_id] = schema
        return schema
