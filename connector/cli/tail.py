"""``meetings-cdc tail``: print the records of a topic as JSON lines, decoded from Avro.

A read_committed consumer (so aborted transactions never show), in a group of its own
unless ``--group`` names one. Each line is the record's value, decoded with its writer
schema (single-object encoding or the Confluent wire format, told apart by the first
byte), with the decoded key under ``"key"``; date-times are printed as ``export`` prints
them (``connector.timestamps``). Ctrl-C or SIGTERM stop it with exit code 0.

Exit codes: 0 stopped, done (``--until-end``, ``--max-messages``, ``--idle-timeout``) or
the reader of stdout went away; 1 the broker cannot be reached, the topic does not exist
(after ``--topic-timeout``) or a fatal Kafka error; 2 bad flags or configuration.
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

from connector.cli.tail_lines import render, summary
from connector.config.settings import KafkaSettings, load_settings
from connector.errors import FatalPublishError, SerializationError
from connector.kafka.probe import BrokerUnreachableError, wait_for_brokers
from connector.ops.logs import configure_logging
from connector.serde import Serdes, reader_serdes
from connector.state.restore import drop_read_to_end, end_offsets

POLL_SECONDS = 0.5
BOOTSTRAP_VARIABLE = "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS"


class TailError(Exception):
    """Why tail cannot go on: printed as one line, exit code 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.epilog = (
        "Other Kafka settings (security, SASL, TLS, extra librdkafka properties, the schema "
        "registry) come from MEETINGS_CDC_KAFKA_* and MEETINGS_CDC_SCHEMA_REGISTRY_URL (see "
        "README, 'Watching the change events'). Exit codes: 0 stopped or done; 1 broker "
        "unreachable, topic missing or a fatal Kafka error; 2 bad flags or configuration."
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        default=None,
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_VARIABLE}, else 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--topic",
        help="topic to read (default: $MEETINGS_CDC_CHANGES_TOPIC, else expo.meetings.changes)",
        default=None,
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset (default: the group's committed offsets, else "
        "only records written from now on)",
    )
    parser.add_argument(
        "--until-end",
        action="store_true",
        help="exit 0 once every partition has been read to its end as it was at start "
        "(committed records only); pair with --from-beginning or --group",
    )
    parser.add_argument(
        "--event-id",
        type=int,
        default=None,
        help="print only records of this event id (default: all)",
    )
    parser.add_argument(
        "--max-messages",
        type=_positive_int,
        default=None,
        help="exit 0 after printing this many records (default: no limit)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="exit 0 when no record was printed for this long; records that --event-id "
        "filters out do not count (default: wait forever)",
    )
    parser.add_argument(
        "--topic-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="wait this long for the broker to answer and the topic to exist, then exit 1 "
        "(default %(default)s)",
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
    """Consume and print until stopped, the end, ``--max-messages`` or ``--idle-timeout``."""
    overrides: dict[str, Any] = {}
    if args.bootstrap_servers is not None:
        overrides["kafka_bootstrap_servers"] = args.bootstrap_servers
    settings = load_settings(KafkaSettings, **overrides)
    # librdkafka's lines go through the JSON logger, deduplicated (never raw on stderr).
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    serdes = reader_serdes(settings)
    topic = args.topic or settings.changes_topic
    consumer = new_consumer(settings, args)
    stopper = _Stopper()
    try:
        _await_broker(consumer, settings.kafka_bootstrap_servers, args.topic_timeout)
        partitions = _await_topic(consumer, topic, args.topic_timeout, settings, stopper)
        if partitions is None:  # stopped while waiting
            return 0
        ends: dict[int, int] | None = None
        if args.until_end:
            try:
                ends = end_offsets(consumer, topic, partitions)
            except FatalPublishError as exc:
                raise TailError(str(exc)) from None
            start = OFFSET_BEGINNING if args.from_beginning else OFFSET_STORED_OR_RESET
            consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        elif args.from_beginning:
            consumer.subscribe([topic], on_assign=_seek_to_beginning)
        else:
            consumer.subscribe([topic])
        return _loop(consumer, serdes, args, stopper, sys.stdout, (topic, ends))
    except TailError as exc:
        print(f"meetings-cdc tail: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tail ... | head`: the reader is gone, nothing to report
        return 0
    finally:
        stopper.restore()
        consumer.close()


# An assignment at this offset starts at the group's committed offset, else where
# auto.offset.reset says (latest: a new group has nothing before the end to read).
OFFSET_STORED_OR_RESET = -1000


def new_consumer(settings: KafkaSettings, args: argparse.Namespace) -> Consumer:
    """The one place tail builds its consumer."""
    return Consumer(_consumer_config(settings, args.group, args.from_beginning, args.until_end))


def _consumer_config(
    settings: KafkaSettings, group: str | None, from_beginning: bool, until_end: bool = False
) -> dict[str, Any]:
    conf: dict[str, Any] = dict(settings.kafka_client_config())
    conf.update(
        {
            "group.id": group or f"meetings-cdc-tail-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group is not None,
            # --until-end: an end-of-partition event also tells a partition whose last
            # offsets are transaction markers (no record to consume) has been read.
            "enable.partition.eof": until_end,
        }
    )
    return conf


def _await_broker(consumer: Consumer, servers: str, timeout: float) -> None:
    """The start-up check of ``run``, on tail's consumer: each address and why it fails."""
    try:
        wait_for_brokers(consumer, servers, timeout)
    except BrokerUnreachableError as exc:
        raise TailError(
            f"cannot reach the Kafka broker at {servers} ({BOOTSTRAP_VARIABLE} or "
            f"--bootstrap-servers) within {timeout:g} s: {exc.details}"
        ) from None


def _await_topic(
    consumer: Consumer,
    topic: str,
    timeout: float,
    settings: KafkaSettings,
    stopper: _Stopper,
) -> list[int] | None:
    """The topic's partitions once the broker lists it; TailError after ``timeout``."""
    deadline = time.monotonic() + timeout
    servers = settings.kafka_bootstrap_servers
    announced = False
    while not stopper.stopped:
        left = deadline - time.monotonic()
        try:
            metadata = consumer.list_topics(topic, timeout=max(0.1, min(left, 2.0)))
        except KafkaException as exc:
            if time.monotonic() < deadline:
                continue
            raise TailError(
                f"cannot reach the Kafka broker at {servers} ({BOOTSTRAP_VARIABLE} or "
                f"--bootstrap-servers) within {timeout:g} s: {exc.args[0].str()}"
            ) from None
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if time.monotonic() >= deadline:
            raise TailError(
                f"topic {topic} does not exist on {servers} (waited {timeout:g} s; "
                "--topic-timeout waits longer)"
            )
        if not announced:  # the connector creates its topics on start: wait for it a bit
            print(f"meetings-cdc tail: waiting for topic {topic}", file=sys.stderr)
            announced = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    return None


def _loop(
    consumer: Consumer,
    serdes: Serdes,
    args: argparse.Namespace,
    stopper: _Stopper,
    out: TextIO,
    until_end: tuple[str, dict[int, int] | None],
) -> int:
    """Print records; ``until_end`` is the topic and (with --until-end) the end offsets of
    the partitions not yet read to their end."""
    topic, ends = until_end
    printed = 0
    last_printed = time.monotonic()
    while not stopper.stopped:
        if args.max_messages is not None and printed >= args.max_messages:
            break
        if args.idle_timeout is not None and time.monotonic() - last_printed > args.idle_timeout:
            break
        if ends is not None:
            drop_read_to_end(consumer, topic, ends)
            if not ends:
                break
        msg = consumer.poll(POLL_SECONDS)
        if msg is None:
            continue
        error = msg.error()
        if error is not None:
            if error.fatal():
                print(f"meetings-cdc tail: fatal Kafka error: {error}", file=sys.stderr)
                return 1
            if error.code() == KafkaError._PARTITION_EOF:
                partition, offset = msg.partition(), msg.offset()
                if ends and partition is not None and (offset or 0) >= ends.get(partition, 0):
                    ends.pop(partition, None)
            elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                print(f"meetings-cdc tail: topic {msg.topic()} is gone", file=sys.stderr)
                return 1
            else:
                print(f"meetings-cdc tail: {error}", file=sys.stderr)
            continue
        try:
            line = render(serdes, msg.key(), msg.value(), args.event_id)
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
        last_printed = time.monotonic()
    return 0


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
