"""``meetings-cdc tail``: print the records of a topic as JSON lines, decoded from Avro.

A read_committed consumer (so aborted transactions never show), in a group of its own
unless ``--group`` names one. Each line is the record's value, decoded with its writer
schema (single-object encoding or the Confluent wire format, told apart by the first
byte), with the decoded key under ``"key"``. Ctrl-C or SIGTERM stop it with exit code 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connector.config import KafkaSettings, load_settings
from connector.errors import SerializationError
from connector.serde import Serdes, SingleObjectFraming, WriterSchemas, registry_client

POLL_SECONDS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument(
        "--topic", help="topic to read (default: MEETINGS_CDC_CHANGES_TOPIC)", default=None
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset (default: only records written from now on)",
    )
    parser.add_argument(
        "--event-id", type=int, default=None, help="print only records of this event id"
    )
    parser.add_argument(
        "--max-messages",
        type=_positive_int,
        default=None,
        help="exit after printing this many records",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="exit when no record arrived for this long",
    )
    parser.add_argument(
        "--format",
        choices=("json", "summary"),
        default="json",
        help="json: the whole decoded record per line (default); summary: one short line "
        "per change event (type, meeting, version, changed fields)",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="consumer group id (commits offsets); default: a new group per run",
    )


def main(args: argparse.Namespace) -> int:
    """Consume and print until stopped, ``--max-messages`` or ``--idle-timeout``."""
    settings = load_settings(KafkaSettings)
    serdes = Serdes(SingleObjectFraming(), WriterSchemas(registry_client(settings)))
    topic = args.topic or settings.changes_topic
    consumer = Consumer(_consumer_config(settings, args.group, args.from_beginning))
    stopper = _Stopper()
    try:
        on_assign = _seek_to_beginning if args.from_beginning else None
        if on_assign is None:
            consumer.subscribe([topic])
        else:
            consumer.subscribe([topic], on_assign=on_assign)
        return _loop(consumer, serdes, args, stopper, sys.stdout)
    except BrokenPipeError:  # `tail ... | head`: the reader is gone, nothing to report
        return 0
    finally:
        stopper.restore()
        consumer.close()


def _loop(
    consumer: Consumer,
    serdes: Serdes,
    args: argparse.Namespace,
    stopper: _Stopper,
    out: TextIO,
) -> int:
    printed = 0
    waiting = False
    last_activity = time.monotonic()
    while not stopper.stopped:
        if args.max_messages is not None and printed >= args.max_messages:
            break
        if args.idle_timeout is not None and time.monotonic() - last_activity > args.idle_timeout:
            break
        msg = consumer.poll(POLL_SECONDS)
        if msg is None:
            continue
        error = msg.error()
        if error is not None:
            if error.fatal():
                print(f"meetings-cdc tail: fatal Kafka error: {error}", file=sys.stderr)
                return 1
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                if not waiting:  # the connector creates its topics on start: wait for it
                    print(f"meetings-cdc tail: waiting for topic {msg.topic()}", file=sys.stderr)
                    waiting = True
            elif error.code() != KafkaError._PARTITION_EOF:
                print(f"meetings-cdc tail: {error}", file=sys.stderr)
            continue
        last_activity = time.monotonic()
        try:
            line = _render(serdes, msg.key(), msg.value(), args.event_id)
        except SerializationError as exc:
            print(
                f"meetings-cdc tail: skipped {msg.topic()}[{msg.partition()}]@{msg.offset()}: "
                f"{exc}",
                file=sys.stderr,
            )
            continue
        if line is None:
            continue
        text = summary(line) if args.format == "summary" else json.dumps(line, ensure_ascii=False)
        out.write(text + "\n")
        out.flush()
        printed += 1
    return 0


def _render(
    serdes: Serdes, key: bytes | None, value: bytes | None, event_id: int | None
) -> dict[str, Any] | None:
    """The JSON object of one record, or None when ``event_id`` filters it out."""
    decoded_key = serdes.decode_json(key) if key else None
    if value is None:
        line: dict[str, Any] = {"key": decoded_key, "tombstone": True}
    else:
        line = {"key": decoded_key, **serdes.decode_json(value)}
    if event_id is not None:
        owner = line.get("event_id")
        if owner is None and isinstance(decoded_key, dict):
            owner = decoded_key.get("event_id")
        if owner != event_id:
            return None
    return line


def _consumer_config(
    settings: KafkaSettings, group: str | None, from_beginning: bool
) -> dict[str, Any]:
    conf: dict[str, Any] = dict(settings.kafka_client_config())
    conf.update(
        {
            "group.id": group or f"meetings-cdc-tail-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group is not None,
            "enable.partition.eof": False,
        }
    )
    return conf


def _seek_to_beginning(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    # A named group may have committed offsets; --from-beginning means the beginning.
    for partition in partitions:
        partition.offset = OFFSET_BEGINNING
    try:
        consumer.assign(partitions)
    except KafkaException as exc:  # pragma: no cover - assignment races a rebalance
        print(f"meetings-cdc tail: cannot seek to the beginning: {exc}", file=sys.stderr)


class _Stopper:
    """SIGINT/SIGTERM set a flag; the loop finishes its poll and exits 0."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def summary(line: dict[str, Any]) -> str:
    """One human line of a decoded change event (falls back to JSON for other records)."""
    if "change_type" not in line:
        return json.dumps(line, ensure_ascii=False)
    after = line.get("after") or line.get("before") or {}
    fields = ",".join(line.get("changed_fields") or []) or "-"
    start = str(after.get("start_at", ""))[:16].replace("T", " ")
    return (
        f"{line['change_type']:<20} event {line['event_id']} meeting {line['meeting_id']:<7} "
        f"v{line['version']:<3} {after.get('status', ''):<9} {start}  "
        f"{after.get('location') or ''}  changed: {fields}"
    )
