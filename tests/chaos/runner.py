"""Running one chaos scenario: a real ``meetings-cdc run`` process under faults, then the oracle.

Every scenario: seed an in-process simulator, start the connector (``python -m connector
run``, fast settings), churn the meetings while the chaos happens (SIGKILLs, broker outages,
API fault phases, clock skew, small pages), then stop the churn, clear the faults and wait
(bounded) until a reconciliation ran and every meeting's last event matches the ground truth.
Finally read everything a read_committed consumer sees and let :mod:`tests.chaos.oracle`
judge it against ``GET /admin/history``.

Times are recorded on the wall clock and handed to the oracle on the API's clock (wall plus
the scenario's skew). The connector's own JSON log tells when it was polling healthily:
from "state restored" (or "snapshot complete") until it was killed or stopped, minus fault
phases, broker outages and the back-off after each failed cycle.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.serde import Serdes, SingleObjectFraming, WriterSchemas
from connector.serde.catalog import NOTIFICATION
from meetings_simulator.app import SimulatorConfig
from tests.chaos.broker import OwnBroker
from tests.chaos.oracle import (
    Timing,
    Verdict,
    content_of_admin_meeting,
    content_of_event_meeting,
    dead_letter_problems,
    judge,
)
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env
from tests.registry_process import RegistryChangeLog
from tests.simulator_harness import EmbeddedSimulator

EVENT = 1
POLL_SECONDS = 0.5
SETTLE_SECONDS = 1


@dataclass(frozen=True, slots=True)
class Phase:
    """A period with one fault set of the simulator (``PUT /admin/faults`` body)."""

    name: str
    seconds: float
    faults: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One chaos run. The chaos lasts ``seconds`` or until ``kills`` kills are done."""

    name: str
    meetings: int = 200
    churn: float = 20.0
    seconds: float = 15.0
    kills: int = 0
    kill_after: tuple[float, float] = (0.5, 5.0)
    phases: tuple[Phase, ...] = ()
    broker_outages: int = 0
    outage_seconds: tuple[float, float] = (2.0, 6.0)
    skew: float = 0.0
    #: (seconds after the start, seconds the API's clock moves: negative = back), e.g. an
    #: NTP correction upstream; applied to the running simulator clock (``advance``).
    clock_steps: tuple[tuple[float, int], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: Connector processes with one connector name (a group sharing the events); each kill
    #: hits one of them at random (the owner of the event or a standby).
    replicas: int = 1
    #: With a schema registry (``run_scenario``'s ``registry_url``): every record in the
    #: Confluent wire format, the state restored after each kill through its schema ids.
    registry: bool = False
    #: A ``resnapshot`` signal once the snapshot is done, its owner SIGKILLed half-way (the
    #: event moves to another replica, which goes on from the committed cursor); judged by
    #: ``resnapshot_problems`` besides the oracle.
    resnapshot: bool = False
    seed: int = 1
    converge_within: float = 150.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"scenario name {self.name!r}: it names topics and the connector")


@dataclass(slots=True)
class Run:
    """One connector process's life."""

    started: float
    ended: float | None = None
    how: str = ""
    log: str = ""


@dataclass(slots=True)
class Result:
    """What a scenario did and what the oracle found."""

    scenario: str
    verdict: Verdict
    kills: int = 0
    exits: list[str] = field(default_factory=list)
    outages: int = 0
    dead_letters: int = 0
    bad_rows: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    reconciled: int = 0
    back_to_back: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    exits_allowed: bool = False

    @property
    def ok(self) -> bool:
        """No oracle violation, no unexplained dead letter, no crash, converged."""
        return (
            self.verdict.ok
            and not self.problems
            and (self.exits_allowed or not self.exits)
            and self.verdict.published > 0
        )

    def report(self) -> str:
        """Everything wrong, for an assertion message."""
        lines = [f"scenario {self.scenario}: {'ok' if self.ok else 'FAILED'}"]
        if not self.verdict.ok:
            lines.append(self.verdict.summary())
        lines += [f"problem: {p}" for p in self.problems]
        if not self.exits_allowed:
            lines += [f"unexpected exit: {e}" for e in self.exits]
        if self.verdict.published == 0:
            lines.append("nothing was published: the scenario did not run")
        return "\n".join(lines)


class Supervisor:
    """Keeps one connector process running (like a Deployment); records every run."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.runs: list[Run] = []
        self.exits: list[str] = []
        self.current: ConnectorProcess | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # a kill is not an unexpected exit
        self._stopped = False

    async def start(self) -> None:
        """Start the first process and watch for unexpected exits."""
        await self._spawn()
        self._watch = asyncio.create_task(self._watch_exits())

    async def _spawn(self) -> None:
        self.current = await ConnectorProcess(self.env).start()
        self.runs.append(Run(time.time()))

    def _finish(self, how: str) -> None:
        run = self.runs[-1]
        run.ended, run.how = time.time(), how
        assert self.current is not None
        run.log = self.current.log

    async def _watch_exits(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            async with self._lock:
                process = self.current.process if self.current else None
                if process is None or process.returncode is None:
                    continue
                assert self.current is not None
                await self.current.wait(10)
                self._finish(f"exited {process.returncode}")
                tail = " | ".join(self.current.log.strip().splitlines()[-3:])
                self.exits.append(f"exit {process.returncode}: {tail[-600:]}")
                if process.returncode == 2:  # bad configuration: restarting cannot help
                    return
                await self._spawn()

    async def kill(self) -> None:
        """SIGKILL the running process and start the next one at once."""
        async with self._lock:
            assert self.current is not None
            if self._watch is not None and self._watch.done():
                return  # gave up after a configuration error
            await self.current.kill()
            self._finish("killed")
            await self._spawn()

    def log(self) -> str:
        """The running process's log so far."""
        return self.current.log if self.current else ""

    async def stop(self) -> None:
        """SIGTERM the running process (SIGKILL if it hangs); stop watching."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.current is None or self._stopped:
            return
        self._stopped = True
        try:
            code = await self.current.terminate(within=40)
        except TimeoutError:
            await self.current.kill()
            code = -9
        if self.runs[-1].ended is None:
            self._finish(f"stopped {code}")
        if code != 0:
            self.exits.append(f"SIGTERM gave exit {code}")


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a connector's stderr (others skipped)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def _ts(line: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(line["ts"]).timestamp()


def committed_cycles(
    runs: list[Run], excluded: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """(A, B) wall times of commits of one process: B an incremental cycle's, A the last
    commit (of any concern) before that cycle began (so it read its fresh windows after A).

    From each run's JSON log: "cycle committed" (phase streaming; logged when a commit
    published something; ``cycle`` names its kind and ``seconds`` the time since its cycle
    began: an incremental cycle commits its fresh seconds, then, if they found late rows,
    its look-back), "reconciliation complete" (after a pass's last commit: a pass does not
    read recent changes, so it is never a B). Since issue 14 a pass runs beside polling, so
    the order of the lines alone no longer says which cycle began after which commit: the
    start of B's cycle does. Pairs overlapping ``excluded`` (bad-row phases: a withheld
    version is legitimately skipped) are dropped.
    """
    pairs: list[tuple[float, float]] = []
    for run in runs:
        commits: list[float] = []  # wall times of every commit (and pass end) so far
        for line in log_lines(run.log):
            message = line.get("msg")
            if message == "starting event":
                commits = []
            elif message == "reconciliation complete":
                commits.append(_ts(line))
            elif message == "cycle committed" and line.get("phase") == "streaming":
                at = _ts(line)
                if line.get("cycle") == "incremental":
                    began = at - float(line.get("seconds", 0))
                    before = [c for c in commits if c <= began]
                    if before:
                        pairs.append((max(before), at))
                commits.append(at)
    return [
        (a, b)
        for a, b in sorted(set(pairs))
        if not any(a < hole_end and b > hole_start for hole_start, hole_end in excluded)
    ]


def back_to_back_reconciliations(runs: list[Run]) -> int:
    """Reconciliations that began right after the previous one ended: no incremental cycle
    can have run in between (cycles start a poll interval apart, so a pass and the
    incremental cycle after it take at least that long together)."""
    count = 0
    for run in runs:
        previous: float | None = None
        for line in log_lines(run.log):
            if line.get("msg") == "starting event":
                previous = None
            if line.get("msg") != "reconciliation complete":
                continue
            ended = _ts(line)
            began = ended - float(line.get("seconds", 0))
            if previous is not None and began - previous < POLL_SECONDS * 0.8:
                count += 1
            previous = ended
    return count


def converged(truth: list[dict[str, Any]], deleted: set[int]) -> Callable[[list[dict]], bool]:
    """Whether every meeting's last event is its final version (or DELETED)."""
    final = {m["meeting_id"]: content_of_admin_meeting(m) for m in truth}

    def check(events: list[dict[str, Any]]) -> bool:
        last: dict[int, dict[str, Any]] = {}
        for event in events:
            last[event["meeting_id"]] = event
        for meeting_id, content in final.items():
            event = last.get(meeting_id)
            if event is None or event["after"] is None:
                return False
            if content_of_event_meeting(event["after"]) != content:
                return False
        return all(
            last[m]["change_type"] == "DELETED" for m in deleted if m in last and m not in final
        )

    return check


async def run_scenario(
    scenario: Scenario,
    bootstrap: str,
    *,
    registry_url: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Result:
    """Run ``scenario`` against ``bootstrap`` (its own broker when it has outages), and the
    schema registry at ``registry_url`` when the scenario has ``registry``."""
    if scenario.registry and registry_url is None:
        raise ValueError(f"scenario {scenario.name} needs a schema registry: registry_url")
    registry = registry_url if scenario.registry else None
    started = time.monotonic()
    broker = OwnBroker() if scenario.broker_outages else None
    if broker is not None:
        await broker.up()
        bootstrap = broker.bootstrap
    try:
        config = SimulatorConfig(
            meetings=scenario.meetings, seed=scenario.seed, clock_skew_seconds=scenario.skew
        )
        async with EmbeddedSimulator(config) as sim:
            result = await _run(scenario, sim, bootstrap, broker, registry, say)
    finally:
        if broker is not None:
            await broker.down()
    result.seconds = time.monotonic() - started
    return result


async def _run(
    scenario: Scenario,
    sim: EmbeddedSimulator,
    bootstrap: str,
    broker: OwnBroker | None,
    registry: str | None,
    say: Callable[[str], None],
) -> Result:
    rng = random.Random(scenario.seed)
    name = f"chaos.{scenario.name}.{uuid.uuid4().hex[:8]}"
    settings = {
        "MEETINGS_CDC_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        "MEETINGS_CDC_SETTLE_SECONDS": str(SETTLE_SECONDS),
        "MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS": "4",
        # deletes found by the delete check between passes, under the same faults (issue 15)
        "MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS": "1",
        "MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS": "10",
        **dict(scenario.env),
    }
    if registry is not None:
        settings["MEETINGS_CDC_SCHEMA_REGISTRY_URL"] = registry
    env = connector_env(
        api_base_url=sim.base_url, event_ids=str(EVENT), bootstrap=bootstrap, name=name, **settings
    )
    churn = sim.server.sim.churn
    assert churn is not None
    excluded: list[tuple[float, float]] = []
    supervisor = Supervisor(env)
    others = [Supervisor(env) for _ in range(scenario.replicas - 1)]
    supervisors = [supervisor, *others]
    result = Result(scenario.name, Verdict(), exits_allowed=scenario.broker_outages > 0)
    churning = asyncio.create_task(churn.run(scenario.churn))
    first_start = time.time()
    steps: list[_Step] = []
    stepping: asyncio.Task[None] | None = None
    try:
        for each in supervisors:
            await each.start()
        chaos_ends = time.monotonic() + scenario.seconds
        if scenario.clock_steps:
            stepping = asyncio.create_task(_clock_steps(scenario, sim, steps, say))
        if scenario.broker_outages:
            assert broker is not None
            result.outages = await _broker_outages(scenario, broker, supervisor, rng, say)
        for phase in scenario.phases:
            say(f"{scenario.name}: phase {phase.name} ({phase.seconds:.0f} s)")
            begun = time.time()
            await sim.set_faults(**phase.faults)
            await asyncio.sleep(phase.seconds)
            await sim.clear_faults()
            if phase.faults.get("bad_row_rate"):
                excluded.append((begun - 1, time.time() + 1))
        if scenario.resnapshot:
            resent = await _resnapshot_with_a_kill(env, sim, supervisors, result, say)
        for number in range(scenario.kills):
            await asyncio.sleep(rng.uniform(*scenario.kill_after))
            await rng.choice(supervisors).kill()
            result.kills += 1
            if number % 10 == 9:
                say(f"{scenario.name}: {number + 1} kills")
        await asyncio.sleep(max(0.0, chaos_ends - time.monotonic()))
        if stepping is not None:
            await stepping
    finally:
        if stepping is not None:
            stepping.cancel()
            await asyncio.gather(stepping, return_exceptions=True)
        churning.cancel()
        await asyncio.gather(churning, return_exceptions=True)
        with contextlib.suppress(Exception):
            await sim.clear_faults()
    # Consumers only now: during broker outages they would only log connection errors.
    changes = _change_log(bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"], registry)
    dead = _change_log(bootstrap, env["MEETINGS_CDC_DLQ_TOPIC"], registry)
    try:
        await _quiet(scenario, sim, supervisors, changes, result, say)
        for each in supervisors:
            await each.stop()
        await changes.settle(2)
        await dead.settle(2)
        history = await sim.history(EVENT)
        truth = await sim.truth(EVENT)
        faults = await sim.get_faults()
        end = time.time()
    finally:
        for each in supervisors:
            await each.stop()
        changes.close()
        dead.close()
    runs = [run for each in supervisors for run in each.runs]
    _keep_logs(scenario.name, runs)
    skew = scenario.skew
    # The oracle judges on one monotonic timeline, the API's clock as it was before any step:
    # versions written after a step are moved back onto it (cycles that straddle a step are
    # dropped: their windows were planned on the clock before it).
    history = _before_steps(history, steps)
    step_holes = [(at - 1, at + 1) for at, _, _ in steps]
    cycles = tuple((a + skew, b + skew) for a, b in committed_cycles(runs, excluded + step_holes))
    timing = Timing(
        settle=SETTLE_SECONDS,
        end=end + skew,
        cycles=cycles,
        snapshot_before=first_start + skew - SETTLE_SECONDS - 1,
    )
    judged = changes.events
    if scenario.resnapshot:
        result.problems += resnapshot_problems(changes.events, *resent, truth)
        judged = [e for e in changes.events if not _resent(e)]  # same versions, re-sent
    result.verdict = judge(history, judged, truth, timing)
    result.exits = [exit for each in supervisors for exit in each.exits]
    result.injected = dict(faults.get("injected", {}))
    result.bad_rows = result.injected.get("bad_row", 0)
    result.dead_letters = len(dead.events)
    result.problems += dead_letter_problems(dead.events, result.bad_rows)
    result.reconciled = sum(
        1
        for e in changes.events
        if e["source"]["window_kind"] == "reconcile" and e["change_type"] != "DELETED"
    )
    # Diagnostic only: the gap between passes is timing, and the engine's poll scheduling
    # (cycles a poll interval apart on the API's clock estimate) can shrink it legitimately.
    # The regression guard of the starvation it reveals is a unit test of the engine.
    result.back_to_back = back_to_back_reconciliations(runs)
    withheld = any(phase.faults.get("bad_row_rate") for phase in scenario.phases)
    if result.reconciled and not withheld:
        # Reconciliation exists for deletes and for versions withheld for bad rows; any other
        # version it had to publish is one the incremental cycles missed.
        result.problems.append(
            f"{result.reconciled} versions were published only by reconciliation: "
            "incremental polling missed them"
        )
    return result


def _change_log(bootstrap: str, topic: str, registry: str | None) -> ChangeLog:
    """A reader of ``topic``: in the Confluent wire format when there is a ``registry``."""
    if registry is None:
        return ChangeLog(bootstrap, topic)
    return RegistryChangeLog(bootstrap, topic, registry)


#: A step of the API's clock: (wall time, seconds it moved, each meeting's versions before).
_Step = tuple[float, int, collections.Counter[int]]


async def _clock_steps(
    scenario: Scenario, sim: EmbeddedSimulator, steps: list[_Step], say: Callable[[str], None]
) -> None:
    """Move the simulator's clock as ``scenario.clock_steps`` says; note when, and how many
    versions every meeting had then (in the same instant: churn runs on this event loop)."""
    started = time.monotonic()
    for after, delta in scenario.clock_steps:
        await asyncio.sleep(max(0.0, started + after - time.monotonic()))
        say(f"{scenario.name}: the API's clock moves {delta:+d} s")
        versions = collections.Counter(e.meeting_id for e in sim.store.history(EVENT))
        sim.clock.advance(delta)
        steps.append((time.time(), delta, versions))


def _before_steps(history: list[dict[str, Any]], steps: list[_Step]) -> list[dict[str, Any]]:
    """``history`` with every version's ``at`` on the API's clock before the steps."""
    if not steps:
        return history
    moved = []
    for entry in history:
        index = entry["version"] - 1  # versions are numbered 1.. per meeting
        shift = sum(d for _, d, before in steps if index >= before.get(entry["meeting_id"], 0))
        moved.append({**entry, "at": entry["at"] - shift})
    return moved


def _keep_logs(name: str, runs: list[Run]) -> None:
    """Write every run's log to ``$MEETINGS_CDC_CHAOS_LOGS/<scenario>.<n>.log`` if set."""
    directory = os.environ.get("MEETINGS_CDC_CHAOS_LOGS")
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for number, run in enumerate(runs, 1):
        with open(os.path.join(directory, f"{name}.{number}.log"), "w") as out:
            out.write(f"# {run.how}\n{run.log}")


async def _quiet(
    scenario: Scenario,
    sim: EmbeddedSimulator,
    supervisors: list[Supervisor],
    changes: ChangeLog,
    result: Result,
    say: Callable[[str], None],
) -> None:
    """No churn, no faults: wait for a reconciliation and the final state of every meeting."""
    quiet = time.time()
    truth = await sim.truth(EVENT)
    deleted = {h["meeting_id"] for h in await sim.history(EVENT) if h["kind"] == "deleted"}
    done = converged(truth, deleted)
    say(f"{scenario.name}: quiet, waiting for the final state of {len(truth)} meetings")

    def reconciled_since_quiet() -> bool:
        return any(
            line.get("msg") == "reconciliation complete" and _ts(line) > quiet + SETTLE_SECONDS + 1
            for each in supervisors
            for line in log_lines(each.log())
        )

    try:
        async with asyncio.timeout(scenario.converge_within):
            while not (reconciled_since_quiet() and done(changes.events)):
                await changes.poll(0.5)
    except TimeoutError:
        result.problems.append(
            f"no convergence within {scenario.converge_within:.0f} s of quiet "
            f"(reconciled: {reconciled_since_quiet()})"
        )
    await changes.settle(3)  # what arrives now would be a duplicate


async def _broker_outages(
    scenario: Scenario,
    broker: OwnBroker,
    supervisor: Supervisor,
    rng: random.Random,
    say: Callable[[str], None],
) -> int:
    """Stop the broker (SIGKILL, or a clean stop every other time) and restart it.

    The first outage hits the snapshot's big transaction, the others random cycles.
    """
    outages = 0
    for number in range(scenario.broker_outages):
        if number == 0:
            await _wait_for_log(supervisor, "starting event", within=60)
            await asyncio.sleep(rng.uniform(0.05, 0.6))
        else:
            await asyncio.sleep(rng.uniform(2.0, 6.0))
        hard = number % 2 == 0
        say(f"{scenario.name}: broker {'SIGKILL' if hard else 'stop'} #{number + 1}")
        await (broker.kill() if hard else broker.down())
        await asyncio.sleep(rng.uniform(*scenario.outage_seconds))
        await broker.up()
        outages += 1
    return outages


def _resent(event: Mapping[str, Any]) -> bool:
    """A re-snapshot's re-send: a SNAPSHOT carrying its signal id (the version repeats)."""
    return event["change_type"] == "SNAPSHOT" and bool(event["source"].get("signal_id"))


async def _resnapshot_with_a_kill(
    env: Mapping[str, str],
    sim: EmbeddedSimulator,
    supervisors: list[Supervisor],
    result: Result,
    say: Callable[[str], None],
) -> tuple[str, set[int], list[dict[str, Any]]]:
    """Send a re-snapshot once the snapshot is done, SIGKILL its owner once it has committed
    a part, wait for its final notification: (signal id, meetings live when it was sent,
    its notifications)."""
    await _wait_for_log(supervisors, "snapshot complete", within=120)
    signal_id = f"chaos-resnapshot-{uuid.uuid4().hex[:8]}"
    # the meetings the re-snapshot must re-send: created before polling's created watermark
    # when it is accepted (settle and a poll or two behind the API's clock)
    sent_at = time.time()
    live = {m["meeting_id"] for m in await sim.truth(EVENT) if m["created_at"] <= sent_at - 5}
    await sim.set_faults(latency_ms=120)  # slow reads: a kill lands half-way
    value = json.dumps({"type": "resnapshot", "event_id": EVENT}).encode()
    await asyncio.to_thread(_produce, env, env["MEETINGS_CDC_SIGNALS_TOPIC"], signal_id, value)
    say(f"resnapshot {signal_id} sent ({len(live)} meetings)")
    owner: Supervisor | None = None
    async with asyncio.timeout(90):
        while owner is None:
            await asyncio.sleep(0.1)
            owner = next(
                (
                    each
                    for each in supervisors
                    if sum(
                        1
                        for line in log_lines(each.log())
                        if line.get("msg") == "cycle committed"
                        and line.get("cycle") == "resnapshot"
                    )
                    >= 1
                ),
                None,
            )
    await owner.kill()
    result.kills += 1
    say("resnapshot owner killed after its first part")
    await sim.clear_faults()
    notes = NotificationLog(env)
    try:
        async with asyncio.timeout(120):
            while not any(n["status"] in ("COMPLETED", "FAILED") for n in notes.of(signal_id)):
                await asyncio.to_thread(notes.poll)
    except TimeoutError:
        result.problems.append(f"re-snapshot {signal_id}: no final notification in 120 s")
    await asyncio.to_thread(notes.settle, 2.0)
    found = notes.of(signal_id)
    notes.close()
    return signal_id, live, found


def resnapshot_problems(
    events: list[dict[str, Any]],
    signal_id: str,
    live: set[int],
    notes: list[dict[str, Any]],
    truth: list[dict[str, Any]],
) -> list[str]:
    """What a re-snapshot got wrong: not COMPLETED exactly once, a meeting live throughout
    not re-sent or re-sent twice, a re-send that is not a version published before (same
    number, same content), or a change only the re-snapshot published (polling missed it)."""
    problems: list[str] = []
    finals = [n["status"] for n in notes if n["status"] in ("COMPLETED", "FAILED", "REJECTED")]
    if finals != ["COMPLETED"]:
        problems.append(f"re-snapshot {signal_id}: final notifications {finals}, not one COMPLETED")
    published: dict[tuple[int, int], tuple[Any, ...]] = {}
    sent: collections.Counter[int] = collections.Counter()
    for event in events:
        key = (event["meeting_id"], event["version"])
        if event["source"].get("signal_id") != signal_id:
            if event["after"] is not None:
                published[key] = content_of_event_meeting(event["after"])
            continue
        sent[event["meeting_id"]] += 1
        if not _resent(event):
            if event["change_type"] != "DELETED":
                problems.append(
                    f"meeting {event['meeting_id']}: {event['change_type']} published only by "
                    "the re-snapshot: polling missed it"
                )
            continue
        if published.get(key) != content_of_event_meeting(event["after"]):
            problems.append(
                f"meeting {event['meeting_id']}: re-sent v{event['version']} is not the "
                "version published under that number"
            )
    still = live & {m["meeting_id"] for m in truth}
    missing = sorted(still - set(sent))
    if missing:
        created = {m["meeting_id"]: m["created_at"] for m in truth}
        examples = [(m, created[m]) for m in missing[:5]]
        problems.append(
            f"{len(missing)} live meetings never re-sent, e.g. (id, created_at) {examples}"
        )
    twice = sorted(m for m, n in sent.items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} meetings re-sent more than once, e.g. {twice[:5]}")
    return problems


class NotificationLog:
    """Every notification on the connector's notifications topic (read_committed), in
    either framing (the connector's registry, when ``env`` names one)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.records: list[dict[str, Any]] = []
        registry = env.get("MEETINGS_CDC_SCHEMA_REGISTRY_URL")
        self._registry = SchemaRegistryClient({"url": registry}) if registry else None
        self._serdes = Serdes(SingleObjectFraming(), WriterSchemas(self._registry))
        self._consumer = Consumer(
            {
                "bootstrap.servers": env["MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS"],
                "group.id": f"chaos-notes-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self._consumer.subscribe([env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"]])

    def poll(self, seconds: float = 0.5) -> None:
        for message in self._consumer.consume(num_messages=500, timeout=seconds):
            if message.error() is None:
                self.records.append(self._serdes.decode_as(NOTIFICATION, message.value()))

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(0.3)

    def of(self, signal_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("signal_id") == signal_id]

    def close(self) -> None:
        self._consumer.close()
        if self._registry is not None:
            self._registry.close()


def _produce(env: Mapping[str, str], topic: str, key: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": env["MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS"]})
    producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(15) == 0


async def _wait_for_log(
    supervisors: Supervisor | list[Supervisor], message: str, within: float
) -> None:
    """Until the log of one of ``supervisors``' running processes has ``message``."""
    watched = supervisors if isinstance(supervisors, list) else [supervisors]
    for _ in range(int(within / 0.05)):
        if any(line.get("msg") == message for each in watched for line in log_lines(each.log())):
            return
        await asyncio.sleep(0.05)
