"""The API clock estimate from whole-second ``Date`` headers."""

from __future__ import annotations

import math
import random
from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import ApiSettings
from connector.source.client import ExportClient

SETTINGS = ApiSettings(api_base_url="http://api.invalid", event_ids=(1,))


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def client_with(clock: Clock) -> ExportClient:
    return ExportClient(None, SETTINGS, clock=clock, wall_clock=lambda: 1e9)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    offset=st.floats(min_value=1.7e9, max_value=1.9e9),
    rtt=st.floats(min_value=0.0, max_value=0.05),
    seed=st.integers(0, 2**32),
)
def test_estimate_converges_to_within_a_round_trip_and_never_runs_ahead(offset, rtt, seed):
    rng = random.Random(seed)
    clock = Clock()
    client = client_with(clock)
    first_error = None
    for _ in range(40):
        clock.now += rng.uniform(0.05, 1.5)  # the next request is sent
        header = formatdate(math.floor(clock.now + offset), usegmt=True)
        clock.now += rtt  # ... and its answer arrives
        client._observe_date(header)
        error = client.api_time() - (clock.now + offset)
        first_error = error if first_error is None else first_error
        assert error <= 1e-6, "the estimate ran ahead of the API's clock"
    assert first_error > -1.0 - rtt - 1e-6  # one header: up to a second behind
    assert error > -rtt - 0.25  # forty headers: within a round trip (and sampling luck)


def test_before_any_response_the_local_clock_stands_in():
    client = ExportClient(None, SETTINGS, wall_clock=lambda: 1_800_000_000.25)  # type: ignore[arg-type]

    assert not client.api_clock_known
    assert client.api_now() == 1_800_000_000


def test_a_clock_that_steps_back_is_followed_once_old_samples_age_out():
    clock = Clock()
    client = client_with(clock)
    for _ in range(70):
        clock.now += 0.37
        client._observe_date(formatdate(math.floor(clock.now + 2e9), usegmt=True))
    for _ in range(70):  # the API's clock is now 10 s behind where it was
        clock.now += 0.37
        client._observe_date(formatdate(math.floor(clock.now + 2e9 - 10), usegmt=True))

    assert abs(client.api_time() - (clock.now + 2e9 - 10)) < 1.0


def test_a_lone_date_far_in_the_future_does_not_move_the_clock():
    clock = Clock()
    client = client_with(clock)
    base = 1.8e9
    for i in range(20):
        clock.now += 0.4
        header = base + 3600 if i == 10 else clock.now + base  # one stray server, an hour ahead
        client._observe_date(formatdate(math.floor(header), usegmt=True))

    assert client.api_time() - (clock.now + base) < 0.01


def test_a_real_step_forward_is_followed_once_most_samples_agree():
    clock = Clock()
    client = client_with(clock)
    base = 1.8e9
    for _ in range(64):
        clock.now += 0.4
        client._observe_date(formatdate(math.floor(clock.now + base), usegmt=True))
    for _ in range(40):  # the API's clock is corrected 120 s forward
        clock.now += 0.4
        client._observe_date(formatdate(math.floor(clock.now + base + 120), usegmt=True))

    assert abs(client.api_time() - (clock.now + base + 120)) < 1.0
