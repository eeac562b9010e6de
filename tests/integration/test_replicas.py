"""Replicas sharing events through the consumer group over the state topic (real broker)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

from confluent_kafka import Producer

from meetings_simulator.app import SimulatorConfig
from tests.chaos.oracle import Timing, judge
from tests.chaos.runner import Run, committed_cycles, converged, log_lines
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env
from tests.simulator_harness import EmbeddedSimulator

T0 = 1_900_000_000


def _has(meeting_id: int, change_type: str):
    return lambda events: any(
        e["meeting_id"] == meeting_id and e["change_type"] == change_type for e in events
    )


async def test_a_fenced_event_stops_alone_and_the_process_runs_on(
    simulator, kafka_bootstrap, unique_name
):
    """Another producer with one event's transactional id fences it: that event stops here,
    the replica keeps running its other event (it used to exit 1)."""
    name = unique_name("fenced")
    env = connector_env(
        api_base_url=simulator.base_url, event_ids="1,2", bootstrap=kafka_bootstrap, name=name
    )
    await simulator.create(event_id=1, start=T0, participants=[1])
    await simulator.create(event_id=2, start=T0, participants=[2])
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: len(ev) == 2, 60, "both snapshots")
        usurper = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{name}.1"})
        await asyncio.to_thread(usurper.init_transactions, 30)
        # the next commit of event 1 is rejected: wait for it to be noticed
        await simulator.create(event_id=1, start=T0, participants=[3])
        await _wait_for_log(connector, "fenced by another replica", 30)
        meeting = await simulator.create(event_id=2, start=T0, participants=[4])
        await log.wait_for(_has(meeting, "CREATED"), 30, "event 2 goes on")
        assert connector.process is not None
        assert connector.process.returncode is None
        assert await connector.terminate() == 0
    finally:
        log.close()
        await connector.stop_quietly()


async def _wait_for_log(connector: ConnectorProcess, text: str, within: float) -> None:
    async with asyncio.timeout(within):
        while text not in connector.log:  # noqa: ASYNC110 - polling a growing buffer
            await asyncio.sleep(0.2)


# --- three replicas, twelve events, churn, kills -------------------------------------------

EVENTS = tuple(range(1, 13))
SETTLE = 1


async def test_replicas_share_events_through_kills_joins_and_stops(kafka_bootstrap, unique_name):
    """3 replicas, 12 events, churn: SIGKILL one, restart it, add a fourth, SIGTERM one.
    The chaos oracle finds nothing lost, duplicated or misclassified, and at no moment do
    two replicas commit for one event (each commit comes from the event's latest owner)."""
    name = unique_name("replicas")
    config = SimulatorConfig(event_ids=EVENTS, meetings=120, seed=16)
    async with EmbeddedSimulator(config) as sim:
        env = connector_env(
            api_base_url=sim.base_url,
            event_ids=",".join(map(str, EVENTS)),
            bootstrap=kafka_bootstrap,
            name=name,
            MEETINGS_CDC_STATE_TOPIC_PARTITIONS="6",
            MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS="6",
            MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS="10",
        )
        churn = sim.server.sim.churn
        assert churn is not None
        first_start = time.time()
        replicas = [await ConnectorProcess(env).start() for _ in range(3)]
        ended: list[ConnectorProcess] = []
        changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
        churning = asyncio.create_task(churn.run(15))
        try:
            await changes.wait_for(
                lambda ev: {e["event_id"] for e in ev} >= set(EVENTS), 90, "every snapshot"
            )
            await asyncio.sleep(4)
            await replicas[0].kill()  # its events move after the session timeout
            ended.append(replicas[0])
            await asyncio.sleep(12)
            replicas[0] = await ConnectorProcess(env).start()  # back again
            await asyncio.sleep(8)
            replicas.append(await ConnectorProcess(env).start())  # a fourth joins
            await asyncio.sleep(8)
            assert await replicas[1].terminate() == 0  # hands its events on
            ended.append(replicas.pop(1))
            await asyncio.sleep(6)
        finally:
            churning.cancel()
            await asyncio.gather(churning, return_exceptions=True)
        try:
            truths = {e: await sim.truth(e) for e in EVENTS}
            deleted = {
                h["meeting_id"]
                for e in EVENTS
                for h in await sim.history(e)
                if h["meeting"] is None
            }
            await changes.wait_for(
                lambda ev: all(
                    converged(truths[e], deleted)([x for x in ev if x["event_id"] == e])
                    for e in EVENTS
                ),
                120,
                "every event converged",
            )
            for replica in replicas:
                assert replica.process is not None
                assert replica.process.returncode is None, replica.log[-2000:]
            for replica in list(replicas):
                assert await replica.terminate() == 0
                ended.append(replica)
            await changes.settle(2)
            end = time.time()
            problems: list[str] = []
            moved = 0
            for event_id in EVENTS:
                owners = _starts(event_id, ended)
                assert owners, f"event {event_id} never started"
                moved += len(owners) - 1
                runs = [_run_of(p, event_id) for p in ended]
                timing = Timing(
                    settle=SETTLE,
                    end=end,
                    cycles=tuple(committed_cycles(runs, [])),
                    snapshot_before=first_start - SETTLE - 1,
                )
                events = [x for x in changes.events if x["event_id"] == event_id]
                verdict = judge(await sim.history(event_id), events, truths[event_id], timing)
                if not verdict.ok:
                    problems.append(f"event {event_id}: {verdict.summary()}")
                problems += _overlapping_owners(event_id, ended)
            assert not problems, "\n".join(problems)
            # the kill, the join and the stop each moved events between replicas
            assert moved >= 3, f"only {moved} ownership moves"
        finally:
            changes.close()
            for replica in replicas:
                await replica.stop_quietly()


def _json_lines(process: ConnectorProcess) -> list[dict]:
    return log_lines(process.log)


def _run_of(process: ConnectorProcess, event_id: int) -> Run:
    """One replica's life as the chaos runner's Run, its log reduced to one event."""
    lines = [json.dumps(x) for x in _json_lines(process) if x.get("event_id") == event_id]
    return Run(started=0.0, log="\n".join(lines))


def _starts(event_id: int, processes: list[ConnectorProcess]) -> list[tuple[float, int]]:
    """(time, replica) of every start of ``event_id``, in time order."""
    starts = []
    for number, process in enumerate(processes):
        for line in _json_lines(process):
            if line.get("msg") == "partitions assigned" and event_id in line.get(
                "started_events", []
            ):
                starts.append((datetime.fromisoformat(line["ts"]).timestamp(), number))
    return sorted(starts)


def _overlapping_owners(event_id: int, processes: list[ConnectorProcess]) -> list[str]:
    """Commits of ``event_id`` not made by its latest owner (the latest replica to start it:
    its init_transactions() fenced the one before, whose commits must all come earlier)."""
    starts = _starts(event_id, processes)
    commits: list[tuple[float, int]] = []
    for number, process in enumerate(processes):
        for line in _json_lines(process):
            if line.get("msg") == "cycle committed" and line.get("event_id") == event_id:
                commits.append((datetime.fromisoformat(line["ts"]).timestamp(), number))
    problems = []
    for ts, number in commits:
        owners = [owner for at, owner in starts if at <= ts]
        if not owners or owners[-1] != number:
            problems.append(
                f"event {event_id}: replica {number} committed at {ts:.3f} while "
                f"{owners[-1] if owners else 'nobody'} owned it"
            )
    return problems
