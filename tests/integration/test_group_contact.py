"""The membership's group contact reaches readiness through a real broker outage (issue 30
item 1), fast: the replicas' group over a broker of this test's own, hung (SIGSTOP: no
answer, connections kept, the group coordinator still looks "up") and resumed, so no broker
restart is waited for.

What ``run`` wires: ``GroupMembership(on_contact=...)`` -> ``HealthState.group_contact``, and
a lost partition's events -> ``HealthState.events_lost``, here with an 8 s readiness limit
instead of 60 s so it fits ``make test`` (~45 s, the broker's start included). The full
connector through a 75 s outage of a stopped broker is ``tests/chaos/test_readiness_outage.py``
(``make chaos``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from connector.kafka.membership import Assignment, GroupMembership, group_config
from connector.ops.health import COMPONENTS, HealthState
from connector.ops.labels import MembershipChange
from tests.chaos.broker import OwnBroker

pytestmark = pytest.mark.integration

EVENT = 3
#: Not the chaos suite's broker (29192), nor the shared one.
PORT = 29492
LIMIT = 8.0


async def _apply(changes: asyncio.Queue[Assignment], health: HealthState) -> None:
    """What ``Ownership`` does for readiness, for one event living in partition 0."""
    owned: set[int] = set()
    while True:
        item = await changes.get()
        if item.change is MembershipChange.ASSIGNED:
            owned |= set(item.partitions)
        elif item.change is MembershipChange.LOST and 0 in item.partitions:
            health.events_lost([EVENT])
        if item.change is not MembershipChange.ASSIGNED:
            owned -= set(item.partitions)
        health.set_events([EVENT] if 0 in owned else [])
        item.done.set_result(None)
        if item.change is MembershipChange.CLOSED:
            return


async def _run_event(health: HealthState) -> None:
    """The main loop's heartbeat, and the event's commits while this replica owns it."""
    while True:
        health.beat()
        if EVENT in health.status()["owned_events"]:
            health.cycle_finished(EVENT, phase="incremental", ok=True, detail={})
        await asyncio.sleep(0.5)


async def _until(predicate, within: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state changes in callbacks: poll it
            await asyncio.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.timeout(240)
async def test_a_replica_out_of_the_group_is_unready_naming_kafka_and_its_lost_event(
    unique_name,
) -> None:
    broker = OwnBroker(PORT)
    await broker.up()
    topic = unique_name("state")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    health = HealthState([], poll_interval_seconds=0.5, ready_after_seconds=LIMIT, idle_ok=True)
    for component in COMPONENTS:
        health.set_ready(component, True)
    changes: asyncio.Queue[Assignment] = asyncio.Queue()
    membership = GroupMembership(
        group_config(
            {"bootstrap.servers": broker.bootstrap, "log_level": 0},
            unique_name("contact"),
            session_timeout_ms=6000,
            instance_id=None,
        ),
        topic,
        asyncio.get_running_loop(),
        changes,
        release_timeout=5,
        on_contact=lambda contact: health.group_contact(contact.in_group, contact.detail),
    )
    paused = False
    applying = asyncio.create_task(_apply(changes, health))
    running = asyncio.create_task(_run_event(health))
    membership.start()
    try:
        await _until(lambda: health.ready()[0] and health.status()["owned_events"], 60, "owner")

        pid = int(broker.pid_file.read_text().strip())
        os.kill(pid, signal.SIGSTOP)  # the broker hangs: no answer, no refused connection
        paused = True
        # The group takes the event after the session timeout (6 s): this replica owns
        # nothing any more, and used to be ready again then, for the rest of the outage.
        await _until(lambda: health.status()["owned_events"] == [], 30, "the loss")
        await _until(lambda: not health.ready()[0], LIMIT + 2, "unready")
        reasons = health.ready()[1]["reasons"]
        [reason] = reasons
        assert reason.startswith("Kafka: out of the replicas' group for "), reasons
        assert f"events last owned here, taken by the group: {EVENT} (" in reason, reason
        await asyncio.sleep(2)
        assert not health.ready()[0], "unready for as long as the outage lasts"

        os.kill(pid, signal.SIGCONT)
        paused = False
        await _until(lambda: health.ready()[0], 90, "ready again")
        assert health.status()["in_group"] is True
        assert health.status()["owned_events"] == [EVENT]
    finally:
        if paused:
            os.kill(pid, signal.SIGCONT)
        running.cancel()
        await membership.close()
        await asyncio.wait_for(applying, 30)
        await broker.down()
