"""``meetings-cdc signal --wait``'s reading of the notifications topic (``_follow``) with a
fake consumer: either framing, and a time-out that says why nothing could be read."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.cli.signal import EXIT_FAILED, EXIT_OK, _follow
from connector.core.notifications import Notification, NotificationStatus
from connector.serde import RegistryFraming, Serdes, SingleObjectFraming, WriterSchemas, subjects


@dataclass
class FakeMessage:
    data: bytes

    def value(self) -> bytes:
        return self.data

    def error(self) -> None:
        return None


class FakeConsumer:
    """Hands out ``values`` once, then nothing."""

    def __init__(self, *values: bytes) -> None:
        self._values = list(values)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        found, self._values = self._values, []
        return [FakeMessage(v) for v in found]


def note(signal_id: str, status: NotificationStatus) -> Notification:
    return Notification("pause", status, 1, signal_id, 1_767_261_600_000, "c", "r", "why")


def registry_serdes() -> tuple[Serdes, SchemaRegistryClient]:
    client = SchemaRegistryClient.new_client({"url": "mock://signal-follow"})
    named = subjects("c", "s", "d", "n", "h")
    return Serdes(
        RegistryFraming(client, "mock://signal-follow", named), WriterSchemas(client)
    ), client


@pytest.mark.parametrize("registry", [False, True])
def test_the_final_notification_of_the_signal_is_found_in_either_framing(
    registry: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    if registry:
        writer, client = registry_serdes()
        reader = Serdes(SingleObjectFraming(), WriterSchemas(client))
    else:
        writer = reader = Serdes(SingleObjectFraming())
    consumer = FakeConsumer(
        writer.encode_notification(note("other", NotificationStatus.COMPLETED)),
        writer.encode_notification(note("s-1", NotificationStatus.STARTED)),
        writer.encode_notification(note("s-1", NotificationStatus.REJECTED)),
    )

    assert _follow(consumer, reader, "s-1", 5) == EXIT_FAILED  # type: ignore[arg-type]
    assert capsys.readouterr().err == "meetings-cdc signal: REJECTED: why\n"

    consumer = FakeConsumer(writer.encode_notification(note("s-2", NotificationStatus.COMPLETED)))
    assert _follow(consumer, reader, "s-2", 5) == EXIT_OK  # type: ignore[arg-type]


def test_registry_records_without_a_registry_say_so_at_the_time_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    writer, _ = registry_serdes()
    consumer = FakeConsumer(writer.encode_notification(note("s-1", NotificationStatus.COMPLETED)))

    assert _follow(consumer, Serdes(SingleObjectFraming()), "s-1", 0.3) == EXIT_FAILED  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "no final notification within 0.3 s" in err
    assert "set MEETINGS_CDC_SCHEMA_REGISTRY_URL" in err
