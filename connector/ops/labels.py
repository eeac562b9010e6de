"""Label values of the metrics that are no other module's concept, as enums.

:meth:`connector.metrics.Metrics.prime` creates a series for every member, so a value used
in the code cannot be missing from the dashboards' zero lines. The other bounded labels
come from the enums of their own modules (``ChangeType``, ``CycleKind``, ``WindowKind``,
``Ask``, ``CheckOutcome``, ``membership.Change``).
"""

from __future__ import annotations

from enum import StrEnum


class StatusClass(StrEnum):
    """The ``status_class`` of an API response: 429 apart, ``error`` when none came."""

    OK = "2xx"
    REDIRECT = "3xx"
    CLIENT_ERROR = "4xx"
    RATE_LIMITED = "429"
    SERVER_ERROR = "5xx"
    ERROR = "error"  # no response: timeout, connection failure

    @classmethod
    def of(cls, status: int | None) -> StatusClass:
        """The class of HTTP ``status`` (None: no response came)."""
        if status is None or not 200 <= status < 600:
            return cls.ERROR
        if status == 429:
            return cls.RATE_LIMITED
        return cls(f"{status // 100}xx")


class RetryReason(StrEnum):
    """Why a request to the export API is retried."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    TRUNCATED = "truncated"  # the body was cut short
    MALFORMED = "malformed"  # the body is not JSON
    INVALID = "invalid"  # JSON, but not a well-formed page
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"


class WithheldReason(StrEnum):
    """Why a meeting read was not handed on (it is read again later)."""

    INCONSISTENT = "inconsistent"  # its rows disagreed
    MALFORMED_ROW = "malformed_row"  # one of its rows could not be parsed


class TransactionOutcome(StrEnum):
    """How a Kafka transaction ended."""

    COMMITTED = "committed"
    ABORTED = "aborted"


class CycleOutcome(StrEnum):
    """How a cycle ended."""

    OK = "ok"
    ERROR = "error"


class Ask(StrEnum):
    """What a request of the check asks (the ``request`` label of its metrics)."""

    COUNT = "count"  # the rows of a range: one per_page=1 request
    READ = "read"  # every row of a leaf range
    CONFIRM = "confirm"  # a candidate's first participant's rows (sent by the shell)


class CheckOutcome(StrEnum):
    """How a check ended (the ``outcome`` label of its metrics)."""

    CLEAN = "clean"  # every count matched the state: nothing read
    DIFFERED = "differed"  # some range differed and was read
    ERROR = "error"  # a request or the commit failed; the next check starts over


class DeleteCheckState(StrEnum):
    """Whether an event's delete check runs (the ``state`` label of its state gauge)."""

    SCHEDULED = "scheduled"  # the API reports row totals: a check every interval
    OFF = "off"  # MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS=0, on purpose
    UNAVAILABLE = "unavailable"  # the API reports no row totals: deletes wait for a pass


class MembershipChange(StrEnum):
    """A change of this replica's partitions (also the ``change`` label of the rebalances)."""

    ASSIGNED = "assigned"
    REVOKED = "revoked"
    LOST = "lost"
    CLOSED = "closed"  # the membership ended (left the group or failed); nothing follows it


__all__ = [
    "Ask",
    "CheckOutcome",
    "CycleOutcome",
    "DeleteCheckState",
    "MembershipChange",
    "RetryReason",
    "StatusClass",
    "TransactionOutcome",
    "WithheldReason",
]
