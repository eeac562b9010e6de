"""``meetings-cdc state show --event-id N``: what the state topic holds of an event, as one
JSON object.

It reads the event's state partition to its end with a read_committed consumer of its own
(no group joined, nothing written), exactly as an owner restores it, so it is safe while the
connector runs: it shows the last committed transaction.

Exit codes: 0 shown; 1 the broker cannot be reached, the state topic does not exist or
holds nothing of the event; 2 bad flags or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException

from connector.config.settings import KafkaSettings, load_settings
from connector.core.progress import EventProgress, Resnapshot
from connector.errors import FatalPublishError
from connector.kafka.layout import state_partition
from connector.ops.logs import configure_logging
from connector.serde import reader_serdes
from connector.state.restore import restore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``state``'s one action, ``show``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print one JSON object: phase, watermarks, meetings tracked, paused, "
        "last committed cycle",
        description="Print what the state topic holds of an event (safe while it runs).",
    )
    show.add_argument("--event-id", type=int, required=True, help="the event to show")
    show.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        default=None,
        help="Kafka bootstrap servers (default: $MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS, "
        "else 127.0.0.1:19092)",
    )
    show.epilog = (
        "The state topic comes from MEETINGS_CDC_STATE_TOPIC. Exit codes: 0 shown; 1 broker "
        "unreachable, topic missing or no state of the event; 2 bad flags or configuration."
    )


def main(args: argparse.Namespace) -> int:
    """Print the event's state as one JSON object."""
    overrides: dict[str, Any] = {}
    if args.bootstrap_servers is not None:
        overrides["kafka_bootstrap_servers"] = args.bootstrap_servers
    settings = load_settings(KafkaSettings, **overrides)
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    topic = settings.state_topic
    config = settings.kafka_client_config()
    try:
        partitions = _partitions(config, topic)
        serdes = reader_serdes(settings)
        partition = state_partition(args.event_id, partitions)
        states, _ = restore(config, topic, [partition], [args.event_id], serdes, timeout=60)
    except (KafkaException, FatalPublishError, _Missing) as exc:
        print(f"meetings-cdc state show: {exc}", file=sys.stderr)
        return 1
    state = states[args.event_id]
    if state.progress is None and not len(state.meetings):
        print(
            f"meetings-cdc state show: {topic} holds no state of event {args.event_id}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(shown(args.event_id, state.progress, len(state.meetings), topic)))
    return 0


def shown(
    event_id: int, progress: EventProgress | None, meetings: int, topic: str
) -> dict[str, Any]:
    """The JSON object ``state show`` prints."""
    result: dict[str, Any] = {"event_id": event_id, "state_topic": topic}
    result["meetings_tracked"] = meetings
    if progress is None:
        return {**result, "phase": None}
    return {
        **result,
        "phase": str(progress.phase),
        "snapshot_upper": _iso(progress.snapshot_upper),
        "watermarks": {
            "created_through": _iso(progress.created_through),
            "modified_through": _iso(progress.modified_through),
        },
        "last_reconcile_at": _iso(progress.last_reconcile_at),
        "paused": progress.paused,
        "paused_by": progress.paused_by,
        "last_committed_at": datetime.fromtimestamp(progress.updated_at / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "handled_signals": list(progress.handled_signals),
        "signal_offsets": (
            None
            if progress.signal_offsets is None
            else {str(p): o for p, o in progress.signal_offsets}
        ),
        "resnapshot": _resnapshot(progress.resnapshot),
    }


def _resnapshot(running: Resnapshot | None) -> dict[str, Any] | None:
    """The re-snapshot running for the event, if one is: its signal, bounds and counts."""
    if running is None:
        return None
    return {
        "signal_id": running.signal_id,
        "upper": _iso(running.upper),
        "through": _iso(running.through),
        "meeting_ids": list(running.meeting_ids),
        "counts": dict(running.counts),
    }


def _iso(seconds: int | None) -> str | None:
    if seconds is None or seconds < 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class _Missing(Exception):
    """The state topic is not there."""


def _partitions(config: dict[str, Any], topic: str) -> int:
    consumer = Consumer({**config, "group.id": "meetings-cdc-state-show"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
    finally:
        consumer.close()
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise _Missing(f"state topic {topic} does not exist (MEETINGS_CDC_STATE_TOPIC)")
    return len(found.partitions)
