"""Replicas (issue 16): how long an event goes unserved when its owner dies or a replica joins.

One event (300 meetings, 20 changes/s of churn) served by two replicas of one connector
name, session timeout 10 s (``MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS``, the default):

- ``failover_seconds``: SIGKILL of the event's owner to the first committed cycle of the
  event on the other replica (target: session timeout + restore + 2 s);
- ``scale_up_pause_seconds``: the longest gap between the event's commits (on any replica)
  while two more replicas join, beside the longest gap of the same length of time before;
- ``rolling_update_gap_seconds``: one step of a Kubernetes rollout (RollingUpdate, max
  surge 1, max unavailable 0): a new replica joins, then the event's owner gets SIGTERM;
  the longest gap in the event's commits from the join to 20 s after the SIGTERM. Measured
  twice: with dynamic membership (the default) and with static membership
  (``MEETINGS_CDC_INSTANCE_ID`` unique per replica, as a pod name is):
  ``rolling_update_gap_static_seconds``. A Deployment's new pod has a new name, so a static
  member that stops used to wait for the session timeout; it now leaves the group on
  SIGTERM (``unsubscribe()`` before ``close()``).
- ``crash_restart_gap_seconds``: one replica, 20,000 meetings tracked (``no_data``
  snapshot), 5 changes/s: SIGKILL, then the same command started again at once, with the
  same settings; the kill to the first committed cycle of the new process. With static
  membership (``MEETINGS_CDC_INSTANCE_ID``, as a container restarted in its pod keeps its
  pod name) the new process takes the dead member's place at once; without it
  (``crash_restart_gap_dynamic_seconds``) the group waits for the dead member's session
  timeout first.

Times come from the replicas' own JSON log lines (``cycle committed``, ``partitions
assigned``), so process start-up is not counted.

    python -m bench.failover [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from datetime import datetime
from typing import Any

from bench.common import bootstrap, delete_topics, record, unique_name
from bench.connectors import topics_of
from tests.chaos.runner import log_lines
from tests.connector_process import ConnectorProcess
from tests.integration.harness import connector_env
from tests.simulator_harness import SimulatorProcess

EVENT = 1
SESSION_TIMEOUT_S = 10
RUNS = 3
WARM_UP_S = 20.0
SCALE_WINDOW_S = 20.0


def _commits(process: ConnectorProcess) -> list[float]:
    return [
        datetime.fromisoformat(line["ts"]).timestamp()
        for line in log_lines(process.log)
        if line.get("msg") == "cycle committed" and line.get("event_id") == EVENT
    ]


def _owns(process: ConnectorProcess) -> bool:
    lines = log_lines(process.log)
    started = sum(
        1
        for line in lines
        if line.get("msg") == "partitions assigned" and EVENT in line.get("started_events", [])
    )
    stopped = sum(
        1
        for line in lines
        if str(line.get("msg", "")).startswith("partitions ")
        and EVENT in line.get("stopped_events", [])
    )
    return started > stopped


def _longest_gap(times: list[float]) -> float:
    times = sorted(times)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def _replica_env(sim: SimulatorProcess, name: str) -> dict[str, str]:
    """Settings of the replicas of connector ``name`` serving the event."""
    return connector_env(
        api_base_url=sim.base_url,
        event_ids=str(EVENT),
        bootstrap=bootstrap(),
        name=name,
        MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_S * 1000),
        MEETINGS_CDC_STATE_TOPIC_PARTITIONS="6",
        MEETINGS_CDC_LOG_LEVEL="DEBUG",  # quiet cycles log their commit at DEBUG only
    )


async def _once(sim: SimulatorProcess, run: int) -> dict[str, float]:
    name = unique_name(f"failover{run}")
    env = _replica_env(sim, name)
    replicas = [await ConnectorProcess(env).start() for _ in range(2)]
    try:
        await asyncio.sleep(WARM_UP_S)
        owner = next(p for p in replicas if _owns(p))
        other = next(p for p in replicas if p is not owner)
        killed = time.time()
        await owner.kill()
        async with asyncio.timeout(120):
            while not any(t > killed for t in _commits(other)):  # noqa: ASYNC110
                await asyncio.sleep(0.2)  # the log is a growing buffer: poll it
        failover = min(t for t in _commits(other) if t > killed) - killed

        await asyncio.sleep(5)
        before = [t for t in _commits(other) if t > time.time() - SCALE_WINDOW_S]
        joined = time.time()
        replicas += [await ConnectorProcess(env).start() for _ in range(2)]
        await asyncio.sleep(SCALE_WINDOW_S)
        during = [t for p in replicas if p is not owner for t in _commits(p) if t > joined]
        pause = _longest_gap([joined, *during])
        quiet = _longest_gap(before)
        print(
            f"  run {run + 1}: failover {failover:.2f} s, scale-up pause {pause:.2f} s "
            f"(longest gap before the join {quiet:.2f} s)",
            flush=True,
        )
        return {"failover": failover, "pause": pause, "quiet_gap": quiet}
    finally:
        for process in replicas:
            await process.stop_quietly()
        await asyncio.to_thread(delete_topics, topics_of(name))


async def _rollout(sim: SimulatorProcess, run: int, *, static: bool) -> float:
    """One rollout step (a surge replica joins, the owner is terminated): the longest gap."""
    name = unique_name(f"rollout{run}{'s' if static else 'd'}")
    env = _replica_env(sim, name)

    def replica(n: int) -> ConnectorProcess:
        pod = {"MEETINGS_CDC_INSTANCE_ID": f"{name}-pod-{n}"} if static else {}
        return ConnectorProcess({**env, **pod})

    replicas = [await replica(n).start() for n in range(2)]
    try:
        await asyncio.sleep(WARM_UP_S)
        joined = time.time()
        replicas.append(await replica(2).start())
        await asyncio.sleep(SCALE_WINDOW_S / 2)  # the surge pod is ready
        # the event's owner now (the join may have moved the event to the new replica)
        await next(p for p in replicas if _owns(p)).terminate()
        await asyncio.sleep(SCALE_WINDOW_S)
        commits = [t for p in replicas for t in _commits(p) if t > joined]
        gap = _longest_gap([joined, *commits, time.time()])
        kind = "static" if static else "dynamic"
        print(f"  run {run + 1}: rolling update ({kind} membership) gap {gap:.2f} s", flush=True)
        return gap
    finally:
        for process in replicas:
            await process.stop_quietly()
        await asyncio.to_thread(delete_topics, topics_of(name))


CRASH_MEETINGS = 20_000
CRASH_RUNS = 3


async def _crash_restart(sim: SimulatorProcess, run: int, *, static: bool) -> float:
    """SIGKILL the only replica and start it again at once: the kill to its next commit."""
    name = unique_name(f"crash{run}{'s' if static else 'd'}")
    env = {
        **_replica_env(sim, name),
        "MEETINGS_CDC_SNAPSHOT_MODE": "no_data",
        **({"MEETINGS_CDC_INSTANCE_ID": f"{name}-pod-0"} if static else {}),
    }
    process = await ConnectorProcess(env).start()
    try:
        async with asyncio.timeout(180):
            while not any(  # noqa: ASYNC110 - the log is a growing buffer: poll it
                line.get("msg") == "cycle committed" and line.get("cycle") == "incremental"
                for line in log_lines(process.log)
            ):
                await asyncio.sleep(0.2)
        await asyncio.sleep(3)
        killed = time.time()
        await process.kill()
        await process.start()  # the same command, the same settings
        async with asyncio.timeout(120):
            while not _commits(process):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        gap = min(_commits(process)) - killed
        kind = "static" if static else "dynamic"
        print(f"  run {run + 1}: crash restart ({kind} membership) gap {gap:.2f} s", flush=True)
        return gap
    finally:
        await process.stop_quietly()
        await asyncio.to_thread(delete_topics, topics_of(name))


async def measure_crash_restart(runs: int = CRASH_RUNS) -> dict[str, list[float]]:
    """``crash_restart`` (static membership) and ``crash_restart_dynamic`` in every run."""
    args = ["--meetings", str(CRASH_MEETINGS), "--event-id", str(EVENT)]
    async with SimulatorProcess([*args, "--churn-per-second", "5"]) as sim:
        found: dict[str, list[float]] = {"crash_restart": [], "crash_restart_dynamic": []}
        for r in range(runs):
            found["crash_restart"].append(await _crash_restart(sim, r, static=True))
            found["crash_restart_dynamic"].append(await _crash_restart(sim, r, static=False))
    return found


FIGURES = ("failover", "pause", "quiet_gap", "rollout", "rollout_static")


async def measure(runs: int = RUNS) -> dict[str, list[float]]:
    """Each figure's value in every run."""
    args = ["--meetings", "300", "--event-id", str(EVENT), "--churn-per-second", "20"]
    async with SimulatorProcess(args) as sim:
        found = []
        for r in range(runs):
            figures = await _once(sim, r)
            figures["rollout"] = await _rollout(sim, r, static=False)
            figures["rollout_static"] = await _rollout(sim, r, static=True)
            found.append(figures)
    return {key: [f[key] for f in found] for key in FIGURES}


def run(results: dict[str, Any], quick: bool = False) -> None:
    """Measure and add ``failover_seconds`` and ``scale_up_pause_seconds`` to ``results``."""
    print(f"failover: 2 replicas, session timeout {SESSION_TIMEOUT_S} s", flush=True)
    m = asyncio.run(measure(runs=1 if quick else RUNS))
    record(results, "failover_seconds", m["failover"], 2)
    record(results, "scale_up_pause_seconds", m["pause"], 2)
    record(results, "scale_up_quiet_gap_seconds", m["quiet_gap"], 2)
    record(results, "rolling_update_gap_seconds", m["rollout"], 2)
    record(results, "rolling_update_gap_static_seconds", m["rollout_static"], 2)
    crash = asyncio.run(measure_crash_restart(runs=1 if quick else CRASH_RUNS))
    record(results, "crash_restart_gap_seconds", crash["crash_restart"], 2)
    record(results, "crash_restart_gap_dynamic_seconds", crash["crash_restart_dynamic"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--crash-only", action="store_true", help="only the crash restart figures")
    args = parser.parse_args()
    m = {} if args.crash_only else asyncio.run(measure(args.runs))
    m.update(asyncio.run(measure_crash_restart(args.runs)))
    for key, values in m.items():
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{key}: median {statistics.median(values):.2f} s ({spread})")


if __name__ == "__main__":
    main()
