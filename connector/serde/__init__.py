"""Avro encoding and decoding of every Kafka record meetings-cdc writes.

- ``catalog``: the schema files of ``schemas/``, parsed once (fingerprints, inlined text);
- ``framing``: single-object encoding or the Confluent wire format (registry);
- ``records``: model values <-> Avro datums, JSON output;
- ``fastpath``: hand-encoded Avro longs, strings and Meeting bodies (``MeetingEncoder``);
- ``bodies``: Meeting bodies checked against fastavro, and the record bodies around them;
- ``state_scan``: state keys and meeting states read without decoding them;
- ``serdes``: ``Serdes`` and ``make_serdes``, what the rest of the connector uses.
"""

from connector.serde.catalog import RecordSchema, rabin_fingerprint
from connector.serde.framing import RegistryFraming, SingleObjectFraming, WriterSchemas
from connector.serde.serdes import (
    DeadLetterLike,
    Serdes,
    make_serdes,
    reader_serdes,
    registry_client,
    subjects,
)

__all__ = [
    "DeadLetterLike",
    "RecordSchema",
    "RegistryFraming",
    "Serdes",
    "SingleObjectFraming",
    "WriterSchemas",
    "make_serdes",
    "rabin_fingerprint",
    "reader_serdes",
    "registry_client",
    "subjects",
]
