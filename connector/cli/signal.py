"""``meetings-cdc signal KIND --event-id N``: write one signal record, optionally wait for
its outcome.

The record goes to the signals topic (``MEETINGS_CDC_SIGNALS_TOPIC``): key a fresh signal id,
value ``{"type", "event_id", "meeting_ids"?, "to"?}`` (``connector.core.signals``). The id is
printed on stdout. With ``--wait`` the command then reads the notifications topic (from its
end as it was before the signal was written) for the signal's final notification, in either
framing (with a registry, ``MEETINGS_CDC_SCHEMA_REGISTRY_URL``, its schemas fetched by id).

Exit codes: 0 written (with ``--wait``: COMPLETED); 1 FAILED, REJECTED, no final
notification in time, or Kafka unreachable / a topic missing; 2 bad flags or configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from connector.config.settings import KafkaSettings, load_settings
from connector.core.notifications import FINAL, NotificationStatus
from connector.core.signals import SignalKind, parse_time, signal_json
from connector.errors import SerializationError
from connector.ops.logs import configure_logging
from connector.serde import Serdes, reader_serdes
from connector.serde.catalog import NOTIFICATION

EXIT_OK, EXIT_FAILED = 0, 1


class SignalError(Exception):
    """Why the signal could not be sent or followed: one line, exit 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.epilog = (
        "Topics come from MEETINGS_CDC_SIGNALS_TOPIC and MEETINGS_CDC_NOTIFICATIONS_TOPIC, "
        "Kafka security from MEETINGS_CDC_KAFKA_*, and for --wait the schema registry of a "
        "connector that has one from MEETINGS_CDC_SCHEMA_REGISTRY_URL (see README, 'Operating "
        "a running connector'). Exit codes: 0 sent (with --wait: COMPLETED); 1 FAILED, REJECTED, "
        "time-out or Kafka unreachable; 2 bad flags or configuration."
    )
    parser.add_argument("kind", choices=[k.value for k in SignalKind], help="what to ask for")
    parser.add_argument("--event-id", type=int, required=True, help="the event to steer")
    parser.add_argument(
        "--meeting-id",
        type=int,
        action="append",
        default=[],
        dest="meeting_ids",
        help="a meeting the signal is about (resnapshot; repeatable)",
    )
    parser.add_argument(
        "--to",
        type=_instant,
        default=None,
        metavar="ISO-DATE-TIME",
        help="rewind: where the watermarks move back to (e.g. 2026-12-07T09:00:00Z; "
        "no offset means UTC)",
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        default=None,
        help="Kafka bootstrap servers (default: $MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS, "
        "else 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--wait",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="wait this long for the signal's final notification: exit 0 on COMPLETED, "
        "1 on FAILED, REJECTED or time-out",
    )


def main(args: argparse.Namespace) -> int:
    """Write the signal; with ``--wait``, follow it to its final notification."""
    overrides: dict[str, Any] = {}
    if args.bootstrap_servers is not None:
        overrides["kafka_bootstrap_servers"] = args.bootstrap_servers
    settings = load_settings(KafkaSettings, **overrides)
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    kind = SignalKind(args.kind)
    if kind is SignalKind.REWIND and args.to is None:
        print("meetings-cdc signal: rewind needs --to ISO-DATE-TIME", file=sys.stderr)
        return 2
    signal_id = str(uuid.uuid4())
    value = signal_json(kind, args.event_id, meeting_ids=tuple(args.meeting_ids), to=args.to)
    consumer = _notifications(settings) if args.wait is not None else None
    try:
        _send(settings, signal_id, value)
        print(signal_id, flush=True)
        if consumer is None:
            return EXIT_OK
        return _follow(consumer, reader_serdes(settings), signal_id, args.wait)
    except SignalError as exc:
        print(f"meetings-cdc signal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if consumer is not None:
            consumer.close()


def _notifications(settings: KafkaSettings) -> Consumer:
    """A consumer of the notifications topic at its current end (before the signal)."""
    topic = settings.notifications_topic
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"meetings-cdc-signal-{uuid.uuid4().hex[:12]}",  # assigned, no commit
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise SignalError(
                f"notifications topic {topic} does not exist (MEETINGS_CDC_NOTIFICATIONS_TOPIC;"
                " a running connector creates it)"
            )
        starts = []
        for partition in sorted(found.partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            starts.append(TopicPartition(topic, partition, high))
        consumer.assign(starts)
    except KafkaException as exc:
        consumer.close()
        raise SignalError(f"cannot read {topic}: {exc}") from None
    except SignalError:
        consumer.close()
        raise
    return consumer


def _send(settings: KafkaSettings, signal_id: str, value: bytes) -> None:
    topic = settings.signals_topic
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True})
    errors: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(error.str())

    try:
        metadata = producer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise SignalError(f"Kafka not reachable: {exc}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise SignalError(
            f"signals topic {topic} does not exist (MEETINGS_CDC_SIGNALS_TOPIC; a running "
            "connector creates it)"
        )
    producer.produce(topic, key=signal_id.encode(), value=value, on_delivery=delivered)
    if producer.flush(15) > 0:
        raise SignalError(f"the signal was not acknowledged by Kafka within 15 s ({topic})")
    if errors:
        raise SignalError(f"the signal was not written to {topic}: {errors[0]}")


def _follow(consumer: Consumer, serdes: Serdes, signal_id: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    undecoded: SerializationError | None = None  # the last record that could not be read
    while (left := deadline - time.monotonic()) > 0:
        for message in consumer.consume(num_messages=100, timeout=min(0.5, left)):
            data = message.value()
            if message.error() is not None or data is None:
                continue
            try:
                note = serdes.decode_as(NOTIFICATION, data)
            except SerializationError as exc:
                undecoded = exc
                continue
            if note.get("signal_id") != signal_id or note.get("status") not in FINAL:
                continue
            status = NotificationStatus(note["status"])
            reason = f": {note['reason']}" if note.get("reason") else ""
            print(f"meetings-cdc signal: {status}{reason}", file=sys.stderr)
            return EXIT_OK if status is NotificationStatus.COMPLETED else EXIT_FAILED
    # A registry not configured here, or not reachable, shows as notifications not decoded.
    why = "" if undecoded is None else f"; a record there could not be decoded: {undecoded}"
    print(
        f"meetings-cdc signal: no final notification within {seconds:g} s (is a connector "
        f"running that serves this event?){why}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _instant(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(parse_time(text), UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value
