"""Notifications of an event's own steps: a snapshot begun, in progress (in its own
transactions: ``connector.sync.snapshot``) and done, a reconcile pass begun, done or failed,
a delete check that found deletes or failed (``connector.core.notifications``).

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
from connector.sync.committer import Committer
from connector.sync.signals import replica_name

log = logging.getLogger("connector.signals")

#: A notification record of a step or a signal: (status, reason, counts) -> record.
NoteRecord = Callable[[NotificationStatus, str | None, Mapping[str, int]], Record]


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
        #: whether the steps are notified (``Collaborators.notify_steps``)
        self.enabled = enabled
        self._event_id = event_id
        self._committer = committer
        self._settings = settings
        self._wall_clock = wall_clock
        self._owner = replica_name(settings)

    def record_of(self, kind: str, signal_id: str | None = None) -> NoteRecord:
        """How a notification of ``kind`` (about ``signal_id``) becomes a record, for a
        step that puts it in a transaction of its own making (a re-snapshot's last part).
        Sent whether or not the steps are notified: a signal's outcome always is."""

        def record(
            status: NotificationStatus, reason: str | None, counts: Mapping[str, int]
        ) -> Record:
            note = Notification(
                kind,
                status,
                self._event_id,
                signal_id,
                int(self._wall_clock() * 1000),
                self._settings.connector_name,
                self._owner,
                reason,
                dict(counts),
            )
            topic = self._settings.notifications_topic
            return Record(topic, note.key, self._committer.serdes.encode_notification(note))

        return record

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
        if not self.enabled:
            return
        if reason is not None:  # an error's text: never a secret, as in the logs
            for secret in self._settings.secret_values():
                if secret:
                    reason = reason.replace(secret, "***")
        record = self.record_of(kind)(status, reason, counts)
        try:
            await self._committer.send([record])
        except RetriablePublishError as exc:
            log.warning(
                "notification not sent",
                extra={"event_id": self._event_id, "kind": kind, "error": str(exc)},
            )


__all__ = ["NoteRecord", "Notices"]
