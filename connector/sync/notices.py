"""Notifications of an event's own steps: a snapshot done, a reconcile pass done, a delete
check that found deletes (``connector.core.notifications``).

Sent through the event's committer right after the step's last transaction committed, as a
transaction of its own: a consumer that sees one sees everything the step committed. Unlike
a signal's notification (in the same transaction as its effect: exactly once), one of these
may be missing after a crash between the two transactions: at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from connector.config.settings import Settings
from connector.core.notifications import Notification, NotificationStatus
from connector.errors import RetriablePublishError
from connector.kafka.layout import Record
from connector.serde.operations import encode_notification
from connector.sync.committer import Committer
from connector.sync.signals import replica_name

log = logging.getLogger("connector.signals")


class Notices:
    """Sends the notifications of one event's steps."""

    def __init__(
        self,
        event_id: int,
        committer: Committer,
        settings: Settings,
        wall_clock: Callable[[], float],
        *,
        enabled: bool = True,
    ) -> None:
        self._enabled = enabled
        self._event_id = event_id
        self._committer = committer
        self._settings = settings
        self._wall_clock = wall_clock
        self._owner = replica_name(settings)

    async def send(
        self,
        kind: str,
        counts: Mapping[str, int],
        *,
        status: NotificationStatus = NotificationStatus.COMPLETED,
        reason: str | None = None,
    ) -> None:
        """One notification of the step ``kind``; a failure to send it is only logged (the
        step itself committed). Nothing when not ``enabled``."""
        if not self._enabled:
            return
        note = Notification(
            kind,
            status,
            self._event_id,
            None,
            int(self._wall_clock() * 1000),
            self._settings.connector_name,
            self._owner,
            reason,
            dict(counts),
        )
        record = Record(self._settings.notifications_topic, note.key, encode_notification(note))
        try:
            await self._committer.send([record])
        except RetriablePublishError as exc:
            log.warning(
                "notification not sent",
                extra={"event_id": self._event_id, "kind": kind, "error": str(exc)},
            )


__all__ = ["Notices"]
