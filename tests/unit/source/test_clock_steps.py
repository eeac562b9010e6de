"""Polls across a step back of the API's clock: the pure planner and the clock estimate in a
loop (``follow_api_clock``, ``plan_incremental``, ``advance``, ``ApiClock``), design 4.10.

A simulated API whose clock steps back 60-300 s at a random moment (before a poll's first
response, between its windows, while it idles), answering every request a random round trip
later, with other requests of the process (a reconciliation pass, probes, other events) in
flight around it whose answers arrive out of order. Meetings change all the time. Polls plan
as the engine does: the estimate's "now", the step it remembers, the watermarks committed
after the fresh windows, look-back windows after them. Every write, before the step or
after it (stamped by the new clock, below the watermarks already committed), must be in a
window read after it was written, within a few polls: none is left to reconciliation. The
process may also be restarted soon after the step (SIGKILL: the estimate and the step it
saw are lost, the committed watermarks and their commit time are not).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.source.api_clock import ApiClock
from connector.source.windows import Watermarks, Window, advance, follow_api_clock, plan_incremental

API = 1_800_000_000.0  # the API's clock minus our monotonic clock before the step
START = 1_000.0  # our monotonic clock when the first poll plans


@dataclass
class SteppingApi:
    """The API's clock (``API`` ahead of ours, ``back`` seconds less from ``step_at`` on),
    and the responses of the process's requests as the client observes them."""

    back: int
    step_at: float
    noise: random.Random
    clock: ApiClock = field(default_factory=ApiClock)
    #: other requests of the process: (arrived, sent, stamped), answered in arrival order
    others: list[tuple[float, float, float]] = field(default_factory=list)
    #: what the polls read: (the moment the response was stamped, the window)
    reads: list[tuple[float, Window]] = field(default_factory=list)

    def time(self, moment: float) -> float:
        return moment + API - (self.back if moment >= self.step_at else 0)

    def _observe_others(self, until: float) -> None:
        while self.others and self.others[0][0] <= until:
            arrived, sent, stamped = self.others.pop(0)
            self.clock.observe(math.floor(self.time(stamped)), sent, arrived)

    def request(self, sent: float, window: Window | None = None) -> float:
        """One request of a poll; returns when its response arrived."""
        round_trip = self.noise.uniform(0.001, 0.3)
        stamped = sent + self.noise.uniform(0.0, round_trip)
        arrived = sent + round_trip
        self._observe_others(arrived)
        self.clock.observe(math.floor(self.time(stamped)), sent, arrived)
        if window is not None:
            self.reads.append((stamped, window))
        return arrived

    def planning_inputs(
        self, moment: float, committed: float
    ) -> tuple[int, tuple[int, int] | None, int]:
        """What ``ExportClient.api_now`` and ``api_step`` answer at ``moment``, and the
        API's second (on the clock as estimated now) of a commit at ``committed``."""
        self._observe_others(moment)
        offset = self.clock.offset(moment)
        assert offset is not None
        floor, ceiling = self.clock.step_floor(moment), self.clock.step_ceiling(moment)
        step = None if floor is None or ceiling is None else (int(floor), math.ceil(ceiling))
        return int(moment + offset), step, int(committed + offset)


@settings(max_examples=150, deadline=None)
@given(
    back=st.integers(60, 300),
    step_after=st.floats(0.0, 8.0),  # seconds after the first poll: any moment of a poll
    settle=st.integers(1, 3),
    overlap=st.integers(0, 5),
    interval=st.sampled_from([0.2, 0.5, 1.0, 2.0, 5.0]),
    restart_after=st.none() | st.floats(0.0, 6.0),  # seconds after the step
    downtime=st.floats(0.5, 5.0),
    seed=st.integers(0, 2**32),  # round trips, write and poll times, the other requests
)
def test_every_write_around_a_step_back_is_read_by_a_poll_soon_after(
    back: int,
    step_after: float,
    settle: int,
    overlap: int,
    interval: float,
    restart_after: float | None,
    downtime: float,
    seed: int,
) -> None:
    noise = random.Random(seed)
    api = SteppingApi(back, START + step_after, noise)
    moment = START - 2.0
    while moment < api.step_at + 60:  # the process's other requests, up to 1.5 s long
        round_trip = noise.uniform(0.001, 1.5)
        api.others.append((moment + round_trip, moment, moment + noise.uniform(0, round_trip)))
        moment += noise.uniform(0.01, 0.5)
    api.others.sort()
    writes: list[tuple[float, int]] = []  # (moment, second stamped)
    moment = START - 1.0
    while moment < api.step_at + 20:
        writes.append((moment, math.floor(api.time(moment))))
        moment += noise.uniform(0.01, 0.2)

    moment = api.request(START - 1.5)  # the clock is learnt before the first poll
    first, _, _ = api.planning_inputs(moment, moment)
    committed = Watermarks(first - settle, first - settle)  # the snapshot's bound
    committed_moment = moment
    writes = [(at, second) for at, second in writes if second > committed.modified_through]
    moment = max(moment, START)
    while moment < api.step_at + 25:
        if restart_after is not None and moment >= api.step_at + restart_after:
            restart_after = None
            api.clock = ApiClock()  # a new process: restored watermarks, a new estimate
            moment = api.request(moment + downtime)  # it learns the clock first
        now, step, committed_at = api.planning_inputs(moment, committed_moment)
        followed = follow_api_clock(committed, now, settle, overlap, step, committed_at)
        plan = plan_incremental(
            followed.watermarks,
            now,
            settle,
            overlap,
            followed.ahead,
            created_windows=False,
            fused=noise.random() < 0.5,
        )
        marks = followed.watermarks
        for window in plan.fresh:
            moment = api.request(moment, window)
            marks = advance(marks, window, creations_in_modified=True)
        committed, committed_moment = marks, moment  # the fresh windows' transaction
        for window in plan.lookback:
            moment = api.request(moment, window)
        moment += noise.uniform(0.01, interval)
        if noise.random() < 0.2:  # a clock probe between polls
            moment = api.request(moment)

    soon = settle + 2 * interval + 2 + downtime
    for written, second in writes:
        read_at = [at for at, w in api.reads if at >= written and w.start <= second <= w.end]
        assert read_at, (
            f"written {written - api.step_at:+.2f} s from the step ({second}): never read"
        )
        assert min(read_at) - written <= soon, (
            f"written {written - api.step_at:+.2f} s from the step ({second}): "
            f"read {min(read_at) - written:.2f} s later"
        )
