"""The Avro schemas of ``schemas/``: loaded once, in every form the codecs need.

Each top-level ``.avsc`` references shared named types kept in ``<namespace>.<Name>.avsc``
files beside it; ``fastavro.schema.load_schema`` resolves them, giving the fully inlined
schema (each named type defined once, referenced by name after) that a registry receives.
``schemas/released/<version>/`` keeps the schemas of every release, so records written by
an older version are still decoded (their writer schema is found by fingerprint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from connector.errors import SerializationError

SCHEMAS_DIR_VARIABLE = "MEETINGS_CDC_SCHEMAS_DIR"

# The top-level record schemas, one file each.
MEETING_KEY = "MeetingKey"
MEETING_CHANGE = "MeetingChange"
STATE_KEY = "StateKey"
STATE_VALUE = "StateValue"
DEAD_LETTER = "DeadLetter"
TOP_LEVEL: tuple[str, ...] = (MEETING_KEY, MEETING_CHANGE, STATE_KEY, STATE_VALUE, DEAD_LETTER)
# What operators read (the notifications and heartbeats topics): not released yet, so not
# in TOP_LEVEL (every schema there has a released copy).
NOTIFICATION = "Notification"
HEARTBEAT = "Heartbeat"
OPERATIONS: tuple[str, ...] = (NOTIFICATION, HEARTBEAT)
#: Every top-level schema the connector writes records of (a subject each with a registry).
WRITTEN: tuple[str, ...] = (*TOP_LEVEL, *OPERATIONS)

# Single-object encoding marker (Avro spec, "Single-object encoding").
SINGLE_OBJECT_MAGIC = b"\xc3\x01"


@dataclass(frozen=True, slots=True, eq=False)
class RecordSchema:
    """One record schema in every form the codecs need.

    ``parsed`` keeps logical types (timestamps read as datetimes, for JSON output);
    ``plain`` has them stripped (timestamps are epoch-ms ints in and out: the hot path).
    Both have the same parsing canonical form, so the same fingerprint.
    """

    name: str
    text: str
    parsed: Any
    plain: Any
    canonical: str
    fingerprint: bytes

    @property
    def single_object_header(self) -> bytes:
        """0xC3 0x01 and the 8-byte little-endian CRC-64-AVRO fingerprint."""
        return SINGLE_OBJECT_MAGIC + self.fingerprint


def schemas_dir() -> Path:
    """The directory of the schema files: ``$MEETINGS_CDC_SCHEMAS_DIR``, else the repo's
    ``schemas/`` (source tree or editable install), else the copy shipped in the package."""
    override = os.environ.get(SCHEMAS_DIR_VARIABLE)
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "schemas", package / "schemas"):
        if (candidate / f"{MEETING_CHANGE}.avsc").is_file():
            return candidate
    raise SerializationError(
        f"Avro schema files not found next to the package; set {SCHEMAS_DIR_VARIABLE} "
        "to the directory holding MeetingChange.avsc"
    )


def rabin_fingerprint(data: bytes) -> bytes:
    """CRC-64-AVRO (Rabin) of ``data`` as 8 little-endian bytes, as the Avro spec defines it."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def _table() -> tuple[int, ...]:
    rows = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        rows.append(fp)
    return tuple(rows)


_EMPTY = 0xC15D213AA4D7A795
_TABLE = _table()


def _clean(node: Any) -> Any:
    """A copy without fastavro's private ``__*`` annotations."""
    if isinstance(node, Mapping):
        return {k: _clean(v) for k, v in node.items() if not str(k).startswith("__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _strip_logical(node: Any) -> Any:
    if isinstance(node, Mapping):
        stripped = {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
        if set(stripped) == {"type"} and isinstance(stripped["type"], str):
            return stripped["type"]
        return stripped
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


def record_schema_from_json(schema: Any) -> RecordSchema:
    """Build a ``RecordSchema`` from a fully inlined schema (a dict or its JSON text)."""
    raw = json.loads(schema) if isinstance(schema, str) else _clean(schema)
    try:
        parsed = fastavro.parse_schema(raw)
        plain = fastavro.parse_schema(_strip_logical(raw))
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SerializationError(f"invalid Avro schema: {exc}") from exc
    name = str(raw.get("name", "")).rsplit(".", 1)[-1] if isinstance(raw, dict) else ""
    return RecordSchema(
        name=name,
        text=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        parsed=parsed,
        plain=plain,
        canonical=canonical,
        fingerprint=rabin_fingerprint(canonical.encode()),
    )


def load_file(path: Path) -> RecordSchema:
    """Load one top-level ``.avsc`` with its referenced named types, fully inlined."""
    try:
        loaded = fastavro.schema.load_schema(str(path))
    except (OSError, fastavro.schema.SchemaParseException, ValueError) as exc:
        raise SerializationError(f"cannot load Avro schema {path}: {exc}") from exc
    return record_schema_from_json(loaded)


@cache
def current(name: str) -> RecordSchema:
    """The current schema of the top-level record ``name`` (cached for the process)."""
    return load_file(schemas_dir() / f"{name}.avsc")


def released_versions() -> list[str]:
    """The released schema versions kept in ``schemas/released/``, oldest first."""
    base = schemas_dir() / "released"
    if not base.is_dir():
        return []
    names = [p.name for p in base.iterdir() if p.is_dir()]
    return sorted(names, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")))


def released(name: str) -> Iterator[tuple[str, RecordSchema]]:
    """(version, schema) of ``name`` for every release that has it, oldest first."""
    base = schemas_dir() / "released"
    for version in released_versions():
        path = base / version / f"{name}.avsc"
        if path.is_file():
            yield version, load_file(path)


@cache
def known_writers() -> Mapping[bytes, RecordSchema]:
    """Every schema records may have been written with, by fingerprint: current and released."""
    found: dict[bytes, RecordSchema] = {}
    for name in TOP_LEVEL:
        for _, schema in released(name):
            found[schema.fingerprint] = schema
        schema = current(name)
        found[schema.fingerprint] = schema
    for name in OPERATIONS:
        schema = current(name)
        found[schema.fingerprint] = schema
    return found
