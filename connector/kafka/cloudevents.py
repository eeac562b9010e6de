"""CloudEvents headers of a change event: the Kafka protocol binding, binary mode (pure).

In binary mode the record's value stays the event data (the Avro ``MeetingChange``) and
the CloudEvents attributes travel as headers, ``ce_<attribute>`` plus ``content-type``
for ``datacontenttype``, so a generic consumer (a CloudEvents SDK, Knative, an event
router) understands a record without decoding Avro. docs/events.md shows an example.

``ce_time`` is the occurrence: the meeting's upstream last-modified time (``modified_at``;
for DELETED, when the delete was detected). ``ce_id`` is deterministic,
``<event_id>-<meeting_id>-<version>``: a version never repeats for a meeting
(``connector.core.versions``), so neither does an id within its source, and a transaction
retried after a crash writes the same ids again (a consumer deduplicating by
``(ce_source, ce_id)`` is safe, as it is by ``(meeting, version)``).
"""

from __future__ import annotations

from connector.core.changes import ChangeEvent
from connector.core.timestamps import iso_millis
from connector.kafka.layout import Headers

SPEC_VERSION = "1.0"
#: ``ce_type`` is this prefix plus the change type in lower case.
TYPE_PREFIX = "com.expoplatform.meeting."


def cloudevent_source(connector_name: str, event_id: int) -> str:
    """``ce_source``: a URI reference naming the connector and the ExpoPlatform event."""
    return f"/meetings-cdc/{connector_name}/events/{event_id}"


def cloudevent_headers(event: ChangeEvent, connector_name: str, content_type: str) -> Headers:
    """The CloudEvents headers of ``event`` (``content_type``: how its value is encoded)."""
    return (
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", f"{event.event_id}-{event.meeting_id}-{event.version}".encode()),
        ("ce_source", cloudevent_source(connector_name, event.event_id).encode()),
        ("ce_type", (TYPE_PREFIX + event.change.change_type.value.lower()).encode()),
        ("ce_time", iso_millis(event.modified_at).encode()),
        ("ce_subject", f"meetings/{event.meeting_id}".encode()),
        ("content-type", content_type.encode()),
    )
