"""Group membership of the replicas of one connector: Kafka's group protocol assigns them
the state topic's partitions (like Kafka Streams tasks), no home-made coordination.

Replicas with the same ``MEETINGS_CDC_CONNECTOR_NAME`` join the consumer group
``<connector_name>.replicas`` subscribed to the state topic, with the cooperative-sticky
assignor: a rebalance moves only the partitions that must move, the others keep running.
The consumer reads no records (its partitions are paused as soon as they are assigned):
it exists for its heartbeats and its rebalance callbacks, which librdkafka runs from
``poll()``: a thread polls it with a short timeout.

The callbacks hand the change to the event loop (:class:`Assignment` items, in order). A
revocation waits until the loop has stopped the events of those partitions (their
in-flight transaction committed or aborted): only then does the group hand them on, so a
clean handover never overlaps. A replica that lost its partitions without knowing it (a
long pause, a partition of the network) is fenced by the transactional id of each event
when the new owner's producer runs ``init_transactions()``.

``MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS`` (default 10 s, librdkafka's is 45 s) bounds how
long a SIGKILLed replica's events wait before the group moves them: failover takes about
the session timeout plus the restore. Shorter makes a slow replica (GC, CPU starved)
lose its events more often; 6 s is the broker's minimum. With ``MEETINGS_CDC_INSTANCE_ID``
(static membership, e.g. the pod name) a replica restarted within the session timeout
(a crash, an OOM kill) takes its dead predecessor's place at once instead of waiting for its
session to time out; a static replica that stops on purpose still leaves the group
(``unsubscribe()`` before ``close()``), so a rollout hands its partitions over at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connector.kafka.group_contact import GroupContact, group_contact
from connector.ops.labels import MembershipChange

log = logging.getLogger("connector.membership")
#: How often the membership consumer reports whether it is in the group (statistics).
STATS_INTERVAL_MS = 1000
#: How long a static member's leaving may wait for its revocation to run.
_LEAVE_SECONDS = 3.0


def group_id(connector_name: str) -> str:
    """The consumer group of the replicas of one connector."""
    return f"{connector_name}.replicas"


def group_config(
    client_config: dict[str, Any],
    connector_name: str,
    *,
    session_timeout_ms: int,
    instance_id: str | None,
) -> dict[str, Any]:
    """librdkafka properties of the membership consumer."""
    conf: dict[str, Any] = {
        **client_config,
        "group.id": group_id(connector_name),
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 5),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
        "isolation.level": "read_committed",
        "statistics.interval.ms": STATS_INTERVAL_MS,
    }
    if instance_id:
        conf["group.instance.id"] = instance_id
    return conf


@dataclass(frozen=True, slots=True)
class Assignment:
    """One change of this replica's partitions, handed to the event loop.

    ``done`` is resolved by the loop once the change has been carried out; the polling
    thread waits for it on a revocation (so the partitions move only once released).
    """

    change: MembershipChange
    partitions: frozenset[int]
    done: concurrent.futures.Future[None]


class GroupMembership:
    """The membership consumer and its polling thread.

    ``changes`` receives every assignment, revocation and loss in the order the group made
    them. ``release_timeout`` bounds how long a revocation waits for the loop. ``on_contact``
    is called in the loop each time this replica enters or leaves the group (as librdkafka's
    statistics tell, every second): readiness reports a replica out of the group.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        loop: asyncio.AbstractEventLoop,
        changes: asyncio.Queue[Assignment],
        *,
        release_timeout: float,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        on_contact: Callable[[GroupContact], None] | None = None,
    ) -> None:
        self._config = config
        self._topic = topic
        self._loop = loop
        self._changes = changes
        self._release_timeout = release_timeout
        self._factory = consumer_factory
        self._on_contact = on_contact
        self._contact: GroupContact | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def start(self) -> None:
        """Join the group (in the polling thread)."""
        self._thread = threading.Thread(target=self._run, name="group-membership", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Leave the group: the remaining partitions are revoked (and released by the loop,
        which must keep serving ``changes`` until this returns)."""
        self._closing.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self._release_timeout + 15)

    # --- the polling thread -----------------------------------------------------------------

    def _run(self) -> None:
        consumer = self._factory({**self._config, "stats_cb": self._on_stats})
        try:
            consumer.subscribe(
                [self._topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._closing.is_set():
                msg = consumer.poll(0.1)
                error = None if msg is None else msg.error()
                if error is not None:
                    log.warning("group membership: %s", error.str())
        except Exception as exc:
            self.failure = exc
            log.error("group membership failed", extra={"error": str(exc)})
        finally:
            try:
                if "group.instance.id" in self._config:
                    self._leave_static(consumer)
                consumer.close()  # leaves the group: on_revoke runs for what is left
            except KafkaException as exc:
                log.warning("leaving the group failed", extra={"error": str(exc)})
            self._hand(
                Assignment(MembershipChange.CLOSED, frozenset(), concurrent.futures.Future()),
                wait=False,
            )

    @staticmethod
    def _leave_static(consumer: Consumer) -> None:
        """Leave the group although this member is static.

        A static member's ``close()`` does not leave the group (KIP-345: only its session
        timeout removes it), so a rollout's stopping replica would keep its partitions from
        the others for that long. ``unsubscribe()`` leaves, once the revocation it starts
        has run (in ``poll()``): ``close()`` right after it would terminate first and skip
        the LeaveGroup. Measured (librdkafka 2.x): the other member had the partitions 0.2 s
        later instead of after the 10 s session timeout.
        """
        consumer.unsubscribe()
        deadline = time.monotonic() + _LEAVE_SECONDS
        while consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.05)
        for _ in range(3):  # the LeaveGroup goes out once the unassignment is done
            consumer.poll(0.05)

    def _on_stats(self, stats_json: str) -> None:
        contact = group_contact(stats_json)
        if contact is None:
            return
        if self._contact is None and not contact.in_group:
            return  # still joining for the first time: the first assignment tells readiness
        self._report(contact)

    def _report(self, contact: GroupContact) -> None:
        if self._on_contact is None:
            return
        if self._contact == contact:
            return  # entering and leaving the group are handed on, and why it is out
        self._contact = contact
        # info, not warning: a rebalance passes through these states too
        if contact.in_group:
            log.info("in the replicas' group")
        else:
            log.info("out of the replicas' group: %s", contact.detail)
        try:
            self._loop.call_soon_threadsafe(self._on_contact, contact)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._report(GroupContact(True))  # an assignment comes only to a member of the group
        consumer.incremental_assign(partitions)
        if partitions:
            consumer.pause(partitions)  # membership only: never fetch records
        self._hand(self._change(MembershipChange.ASSIGNED, partitions), wait=False)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._hand(self._change(MembershipChange.REVOKED, partitions), wait=True)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group moved them already (session timed out): stop at once; whatever this
        # replica still sends is fenced by the new owner's init_transactions(). Out of the
        # group from now until it rejoins, whatever the statistics said last (a hung broker
        # keeps its connections "up").
        self._report(GroupContact(False, "session timed out: the group took its partitions"))
        self._hand(self._change(MembershipChange.LOST, partitions), wait=True)
        consumer.incremental_unassign(partitions)

    def _change(self, change: MembershipChange, partitions: list[TopicPartition]) -> Assignment:
        ids = frozenset(tp.partition for tp in partitions)
        log.info("group %s partitions", change, extra={"partitions": sorted(ids)})
        return Assignment(change, ids, concurrent.futures.Future())

    def _hand(self, item: Assignment, *, wait: bool) -> None:
        try:
            self._loop.call_soon_threadsafe(self._changes.put_nowait, item)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return
        if wait:
            try:
                item.done.result(timeout=self._release_timeout + 5)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                log.warning(
                    "partitions released before their events stopped",
                    extra={"partitions": sorted(item.partitions)},
                )
            except Exception as exc:
                log.debug("release failed", extra={"error": str(exc)})
