"""The API clock estimate from whole-second ``Date`` headers (``connector.source.api_clock``)."""

from __future__ import annotations

import itertools
import math
import random
from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config.settings import ApiSettings
from connector.ops.metrics import Metrics
from connector.source.api_clock import ApiClock
from connector.source.client import ExportClient

SETTINGS = ApiSettings(api_base_url="http://api.invalid", event_ids=(1,))
BASE = 1.8e9  # the API's clock minus our monotonic clock, in these tests


class Api:
    """An API whose clock is ``offset`` ahead of a simulated monotonic clock."""

    def __init__(self, offset: float = BASE, rtt: float = 0.004) -> None:
        self.offset = offset
        self.rtt = rtt
        self.now = 5_000.0  # our monotonic clock

    def request(self, clock: ApiClock) -> None:
        """One request sent now, stamped half-way, answered a round trip later."""
        sent = self.now
        stamped = math.floor(sent + self.rtt / 2 + self.offset)
        self.now += self.rtt
        clock.observe(stamped, sent, self.now)

    def error(self, clock: ApiClock) -> float:
        """The estimate minus the truth (negative: behind)."""
        offset = clock.offset(self.now)
        assert offset is not None
        return offset - self.offset


@settings(max_examples=50, deadline=None)
@given(
    offset=st.floats(min_value=1.7e9, max_value=1.9e9),
    rtt=st.floats(min_value=0.0, max_value=0.05),
    seed=st.integers(0, 2**32),
)
def test_estimate_converges_to_within_a_round_trip_and_never_runs_ahead(offset, rtt, seed):
    rng = random.Random(seed)
    api, clock = Api(offset, rtt), ApiClock()
    first_error = None
    for _ in range(40):
        api.now += rng.uniform(0.05, 1.5)  # requests at random phases
        api.request(clock)
        error = api.error(clock)
        first_error = error if first_error is None else first_error
        assert error <= 1e-6, "the estimate ran ahead of the API's clock"
    assert first_error is not None
    assert first_error > -1.0 - rtt - 1e-6
    assert error > -rtt - 0.25  # forty headers: within a round trip (and sampling luck)


def _poll_schedule(clock: ApiClock, api: Api, seconds: int, probes: bool) -> list[float]:
    """The engine's pattern: a poll of three requests just after each second ends on the
    estimated API clock, and (if ``probes``) the clock probe when one is due before it.
    Returns the estimate's error at every poll."""
    errors = []
    for _ in range(seconds):
        offset = clock.offset(api.now)
        assert offset is not None
        poll = math.floor(api.now + offset) + 1 + 0.15 - offset  # monotonic time of the poll
        probe = clock.probe_at(api.now) if probes else None
        if probe is not None and probe < poll:
            api.now = max(api.now, probe)
            clock.probed(api.now)
            api.request(clock)
        api.now = max(api.now, poll)
        errors.append(api.error(clock))
        for _ in range(3):
            api.request(clock)
            api.now += 0.01
    return errors


def test_polls_scheduled_by_the_estimate_cannot_correct_it_so_probes_do():
    """The first response came late in a second: 0.6 s behind. Polls then all go out at
    the same phase (0.15 s after each estimated tick) and teach nothing; probes, bisecting
    the bounds, pull the estimate to within a round trip in a few probes."""
    api = Api(rtt=0.004)
    api.now += 0.6 - (api.now + api.offset) % 1  # at phase 0.6 of an API second
    clock = ApiClock()
    api.request(clock)
    assert -0.61 < api.error(clock) < -0.59

    without = _poll_schedule(clock, api, 60, probes=False)
    assert min(without) < -0.5  # still about as far behind as it started

    with_probes = _poll_schedule(clock, api, 120, probes=True)
    assert all(e <= 1e-9 for e in with_probes)  # never ahead
    assert all(e > -0.03 for e in with_probes[60:])  # six probes: 1/64 s + a round trip
    uncertainty = clock.uncertainty(api.now)
    assert uncertainty is not None
    assert uncertainty < 0.03


def test_the_best_estimate_outlives_many_phase_locked_samples():
    """Under a steady poll, thousands of late-phase samples do not erode a good estimate
    (with a fixed number of samples remembered, the estimate slid a second behind)."""
    api = Api()
    clock = ApiClock()
    api.now += 1 - (api.now + api.offset) % 1  # just after an API second began
    api.request(clock)
    errors = _poll_schedule(clock, api, 250, probes=False)
    assert min(errors) > -0.01


def test_probes_are_spaced_and_aimed_at_the_middle_of_the_bounds():
    api = Api()
    clock = ApiClock(probe_interval=10)
    assert clock.probe_at(api.now) is None  # nothing known: nothing to aim at
    api.request(clock)
    at = clock.probe_at(api.now)
    offset, uncertainty = clock.offset(api.now), clock.uncertainty(api.now)
    assert at is not None
    assert offset is not None
    assert uncertainty is not None
    assert api.now <= at < api.now + 1
    middle = offset + uncertainty / 2
    assert math.isclose((at + middle) % 1, 0, abs_tol=1e-6) or math.isclose(
        (at + middle) % 1, 1, abs_tol=1e-6
    )
    clock.probed(at)
    assert clock.probe_at(at + 9.9) is None
    assert clock.probe_at(at + 10.0) is not None


def test_a_clock_that_steps_back_is_followed_at_the_next_response():
    api = Api()
    clock = ApiClock()
    for _ in range(70):
        api.now += 0.37
        api.request(clock)
    api.offset -= 10  # the API's clock is put 10 s back
    api.now += 0.37
    api.request(clock)

    assert -1.0 < api.error(clock) <= 0
    assert clock.steps_back == 1


@settings(max_examples=50, deadline=None)
@given(
    step=st.floats(min_value=2.0, max_value=600.0),
    gap=st.floats(min_value=0.01, max_value=30.0),
    at=st.floats(min_value=0.0, max_value=1.0),
)
def test_the_step_floor_is_never_after_a_write_made_since_the_step(step, gap, at):
    """Writes after a step back carry the new clock's time: the floor the windows rewind to
    must not be later than any of them, or polling would skip them."""
    api = Api()
    clock = ApiClock()
    for _ in range(20):
        api.now += 0.37
        api.request(clock)
    assert clock.step_floor(api.now) is None
    stepped_at = api.now + at * gap  # somewhere between the last response and the next
    api.offset -= step
    earliest_write = stepped_at + api.offset  # on the API's new clock
    api.now += gap
    api.request(clock)

    floor = clock.step_floor(api.now)
    assert floor is not None
    assert floor <= earliest_write
    assert floor >= earliest_write - gap - 1.5  # and not needlessly far back
    ceiling = clock.step_ceiling(api.now)
    assert ceiling is not None
    assert ceiling >= stepped_at + api.offset + step  # the old clock when the step happened
    assert clock.step_floor(api.now + 61) is None  # forgotten once the polls have used it


def test_a_lone_date_far_in_the_future_does_not_move_the_clock():
    api = Api()
    clock = ApiClock()
    for i in range(20):
        api.now += 0.4
        if i == 10:  # one stray server, an hour ahead
            clock.observe(math.floor(api.now + api.offset + 3600), api.now, api.now)
        else:
            api.request(clock)

    assert api.error(clock) < 0.01


def test_a_real_step_forward_is_followed_once_most_samples_agree():
    api = Api()
    clock = ApiClock()
    for _ in range(64):
        api.now += 0.4
        api.request(clock)
    api.offset += 120  # the API's clock is corrected 120 s forward
    for _ in range(40):
        api.now += 0.4
        api.request(clock)

    assert abs(api.error(clock)) < 1.0


# --- through the client ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def test_before_any_response_the_local_clock_stands_in():
    client = ExportClient(None, SETTINGS, Metrics(), wall_clock=lambda: 1_800_000_000.25)  # type: ignore[arg-type]

    assert not client.api_clock_known
    assert client.api_now() == 1_800_000_000
    assert client.clock_probe_delay() is None


def test_the_client_reads_date_headers_into_its_clock():
    clock = Clock()
    client = ExportClient(None, SETTINGS, Metrics(), clock=clock, wall_clock=lambda: 1e9)  # type: ignore[arg-type]
    sent = clock.now
    clock.now += 0.01
    client._observe_date(formatdate(math.floor(sent + BASE), usegmt=True), sent)
    client._observe_date("not a date", sent)

    assert client.api_clock_known
    assert -1.0 < client.api_time() - (clock.now + BASE) <= 0
    delay = client.clock_probe_delay()
    assert delay is not None
    assert 0 <= delay <= 2.0


def test_probes_become_rare_once_the_estimate_has_settled():
    """API budget: bisection probes every ``probe_interval`` until the uncertainty is down
    to about a round trip, then every ``settled_probe_interval`` (still renewing the
    bounds well within their horizon, so the estimate stays within a round trip)."""
    api = Api(rtt=0.004)
    api.now += 0.6 - (api.now + api.offset) % 1  # a first response late in a second
    clock = ApiClock(probe_interval=5, settled_probe_interval=60)
    api.request(clock)
    assert not clock.settled(api.now)
    probes: list[float] = []
    errors: list[float] = []
    for _ in range(600):  # ten minutes of 1 s polls
        offset = clock.offset(api.now)
        assert offset is not None
        poll = math.floor(api.now + offset) + 1 + 0.15 - offset
        probe = clock.probe_at(api.now)
        if probe is not None and probe < poll:
            api.now = max(api.now, probe)
            clock.probed(api.now)
            probes.append(api.now)
            api.request(clock)
        api.now = max(api.now, poll)
        errors.append(api.error(clock))
        api.request(clock)
    start = probes[0]
    settling = [p for p in probes if p - start < 60]
    assert len(settling) <= 8  # a few bisection probes, 5 s apart
    assert clock.settled(api.now)
    later = [p for p in probes if p - start >= 120]
    minutes = (api.now - start - 120) / 60
    # about one a minute, and a few bisection probes again when the best bounds of the
    # settling probes age out of the horizon
    assert minutes / 2 <= len(later) <= 2 * minutes
    assert all(b - a >= 5 for a, b in itertools.pairwise(probes))
    assert all(-0.03 < e <= 1e-9 for e in errors[120:])
