"""Exception tree of meetings-cdc, organised by how an error is handled.

- ``ConfigError``: bad settings; the CLI prints one line and exits 2.
- ``RetriableSourceError`` / ``FatalSourceError``: the upstream API; retriable ones are
  retried with backoff, fatal ones stop the event's loop with an operator-facing message.
- ``MalformedRowError``: one upstream row that cannot be parsed; it is dead-lettered.
- ``SerializationError``: a value that does not fit the Avro schema (a bug or a schema
  mismatch, never retried).
- ``RetriablePublishError`` / ``FatalPublishError``: Kafka; retriable ones redo the cycle
  from the last committed state, fatal ones (fenced producer included) stop the connector.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every error raised by meetings-cdc."""


class ConfigError(ConnectorError):
    """Invalid configuration. The message names the setting and what is wrong."""


class SourceError(ConnectorError):
    """An error reading the upstream export API."""


class RetriableSourceError(SourceError):
    """A transient upstream failure (5xx, 429, timeout, connection error, bad body)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """An upstream failure that retrying cannot fix (401/403/404, bad request)."""


class MalformedRowError(SourceError):
    """One upstream row that cannot be mapped to a participant of a meeting."""


class SerializationError(ConnectorError):
    """A value could not be encoded or decoded with the Avro schemas."""


class SchemaMismatchError(SerializationError):
    """A record's schema id names another schema than the record's type: the registry lost or
    reassigned its ids (an in-memory registry restarted). Never decoded, never skipped."""


class PublishError(ConnectorError):
    """A failure writing to Kafka."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetriablePublishError(PublishError):
    """The transaction was aborted or could not complete; the cycle can be redone."""


class FatalPublishError(PublishError):
    """The producer cannot continue (fenced by another instance, or a fatal error)."""


class ProducerFencedError(FatalPublishError):
    """Another instance with the same connector name took over this event's producer."""
