"""``meetings_cdc_delete_check_state``: the engine's delete check loop says whether the
check is scheduled, off or unavailable (issue 35: the alert must tell "off on purpose" from
"the API reports no totals"); a released event's series go with it.

The loop runs here with in-process stand-ins for the API and Kafka; the real thing over the
simulator and the broker: tests/integration/test_delete_check.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from connector.config.settings import Settings
from connector.core.progress import EventProgress
from connector.ops.health import HealthState
from connector.ops.labels import DeleteCheckState
from connector.ops.metrics import Metrics
from connector.serde import Serdes, SingleObjectFraming
from connector.source.limiter import RequestLimiter
from connector.source.windows import Window
from connector.state.store import EventState
from connector.sync.cycles import Collaborators
from connector.sync.engine import EventSync
from connector.sync.replicas import Ownership

EVENT = 5
NOW = 1_800_000_000
STATE = "meetings_cdc_delete_check_state"


@dataclass
class TotalsApi:
    """An export API that counts rows with ``totals`` (None: its pages carry no total)."""

    totals: Callable[[int], int | None]
    counted: list[Window] = field(default_factory=list)
    api_clock_known: bool = True
    limiter: RequestLimiter = field(default_factory=lambda: RequestLimiter(0, 4))

    async def count_rows(self, event_id: int, window: Window) -> int | None:
        self.counted.append(window)
        return self.totals(len(self.counted))

    def api_now(self) -> int:
        return NOW

    def api_step(self) -> tuple[int, int] | None:
        return None  # the API's clock never went back


@dataclass
class NoReads:
    """The window reader: never asked to read (the state tracks no rows, the counts say 0)."""

    per_page: int = 500


def states(metrics: Metrics, event_id: int = EVENT) -> dict[str, float | None]:
    get = metrics.registry.get_sample_value
    return {s: get(STATE, {"event_id": str(event_id), "state": s}) for s in DeleteCheckState}


def make_sync(interval: float, api: TotalsApi, state: EventState) -> tuple[EventSync, Metrics]:
    settings = Settings(
        api_base_url="http://api.invalid",
        event_ids=(EVENT,),
        delete_check_interval_seconds=interval,
        changes_topic="changes",
        state_topic="state",
        dlq_topic="dlq",
    )
    metrics = Metrics()
    metrics.prime([EVENT], poll_interval_seconds=1, now=NOW)
    deps = Collaborators(
        settings=settings,
        client=api,  # type: ignore[arg-type]
        reader=NoReads(),  # type: ignore[arg-type]
        serdes=Serdes(SingleObjectFraming()),
        metrics=metrics,
        health=HealthState([EVENT], poll_interval_seconds=1),
        state_partitions=3,
        changes_partitions=6,
        wall_clock=lambda: float(NOW),
    )
    return EventSync(EVENT, state, None, deps), metrics  # type: ignore[arg-type]


def streaming() -> EventState:
    state = EventState(EVENT)
    state.progress = EventProgress(
        event_id=EVENT,
        phase="streaming",
        snapshot_upper=NOW - 7200,
        created_through=NOW - 10,
        modified_through=NOW - 10,
        last_reconcile_at=NOW,
        updated_at=0,
    )
    return state


async def run_until(sync: EventSync, done: Callable[[], bool], within: float = 5) -> None:
    """Run the delete check loop until ``done()`` holds (or it returns), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(sync._delete_check_loop(stop))
    async with asyncio.timeout(within):
        while not done() and not task.done():  # noqa: ASYNC110 - a counter the loop moves
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_prime_creates_the_three_states_at_zero() -> None:
    metrics = Metrics()
    metrics.prime([EVENT], poll_interval_seconds=1, now=0)
    assert states(metrics) == {"scheduled": 0, "off": 0, "unavailable": 0}


def test_each_state_set_clears_the_others_and_forget_removes_all_three() -> None:
    metrics = Metrics()
    metrics.prime([EVENT, 6], poll_interval_seconds=1, now=0)
    metrics.set_delete_check_state(EVENT, DeleteCheckState.SCHEDULED)
    assert states(metrics) == {"scheduled": 1, "off": 0, "unavailable": 0}
    metrics.set_delete_check_state(EVENT, DeleteCheckState.UNAVAILABLE)
    assert states(metrics) == {"scheduled": 0, "off": 0, "unavailable": 1}
    metrics.set_delete_check_state(EVENT, DeleteCheckState.OFF)
    assert states(metrics) == {"scheduled": 0, "off": 1, "unavailable": 0}
    metrics.forget_delete_check_state(EVENT)
    assert states(metrics) == {"scheduled": None, "off": None, "unavailable": None}
    assert states(metrics, 6) == {"scheduled": 0, "off": 0, "unavailable": 0}  # untouched
    metrics.forget_delete_check_state(EVENT)  # twice: nothing left to remove, no error


async def test_interval_zero_is_off_without_a_request() -> None:
    api = TotalsApi(lambda n: 0)
    sync, metrics = make_sync(0, api, streaming())
    await run_until(sync, lambda: False)
    assert states(metrics) == {"scheduled": 0, "off": 1, "unavailable": 0}
    assert api.counted == []


async def test_an_api_without_totals_is_unavailable() -> None:
    api = TotalsApi(lambda n: None)
    sync, metrics = make_sync(1, api, streaming())
    await run_until(sync, lambda: False)  # the loop returns after the probe
    assert states(metrics) == {"scheduled": 0, "off": 0, "unavailable": 1}
    assert len(api.counted) == 1


@pytest.mark.parametrize("paused", [False, True], ids=["probe-in-flight", "paused"])
async def test_no_state_is_1_before_the_probe_is_answered(paused: bool) -> None:
    """Until the API answered whether it reports totals, all three states are 0: another
    event's probe in flight (its lock held), or the event paused before its probe."""
    state = streaming()
    if paused:
        assert state.progress is not None
        state.progress = replace(state.progress, paused=True)
    api = TotalsApi(lambda n: 0)
    sync, metrics = make_sync(1, api, state)
    lock = sync.deps.api_totals.lock
    if not paused:
        await lock.acquire()
    stop = asyncio.Event()
    task = asyncio.create_task(sync._delete_check_loop(stop))
    await asyncio.sleep(0.2)
    assert states(metrics) == {"scheduled": 0, "off": 0, "unavailable": 0}
    assert api.counted == []
    stop.set()
    if not paused:
        lock.release()
    await asyncio.wait_for(task, 5)


async def test_scheduled_then_unavailable_when_a_check_finds_no_total() -> None:
    """The probe saw a total; the check's own count comes back without one (the API
    changed): the check stops and the state moves from scheduled to unavailable."""
    seen: list[dict[str, float | None]] = []  # the states as each count is sent

    def totals(n: int) -> int | None:
        seen.append(states(metrics))
        return 0 if n == 1 else None

    api = TotalsApi(totals)
    sync, metrics = make_sync(0.05, api, streaming())
    await run_until(sync, lambda: False)  # the loop returns once the check found no total
    assert seen == [
        {"scheduled": 0, "off": 0, "unavailable": 0},  # the probe
        {"scheduled": 1, "off": 0, "unavailable": 0},  # the first check's count
    ]
    assert states(metrics) == {"scheduled": 0, "off": 0, "unavailable": 1}
    assert sync.deps.api_totals.reported is False


async def test_an_api_with_totals_stays_scheduled_while_checks_run() -> None:
    api = TotalsApi(lambda n: 0)  # the state tracks no rows: every count matches
    sync, metrics = make_sync(0.05, api, streaming())
    await run_until(sync, lambda: len(api.counted) >= 3)
    assert states(metrics) == {"scheduled": 1, "off": 0, "unavailable": 0}
    assert metrics.registry.get_sample_value(
        "meetings_cdc_delete_checks_total", {"event_id": str(EVENT), "outcome": "clean"}
    )


def test_a_released_event_takes_its_state_series_with_it() -> None:
    """Only the owner reports an event's state: the replica that released it removes all
    three series (the others it keeps for the events it still runs)."""
    sync, metrics = make_sync(1, TotalsApi(lambda n: 0), streaming())
    metrics.prime([6], poll_interval_seconds=1, now=NOW)
    metrics.set_delete_check_state(EVENT, DeleteCheckState.UNAVAILABLE)
    metrics.set_delete_check_state(6, DeleteCheckState.OFF)
    ownership = Ownership(sync.settings, sync.deps)
    ownership._forget(EVENT)
    assert states(metrics) == {"scheduled": None, "off": None, "unavailable": None}
    assert states(metrics, 6) == {"scheduled": 0, "off": 1, "unavailable": 0}
