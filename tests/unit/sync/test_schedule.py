"""``connector.schedule``: what runs next, decided once from values."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from connector.core.kinds import CycleKind
from connector.core.progress import EventProgress, Phase
from connector.sync.schedule import (
    Idle,
    Run,
    next_action,
    reconcile_delay,
    reconcile_due,
    until_next_poll,
)

NOW = 1_800_000_000


def progress(phase: Phase = Phase.STREAMING, last_reconcile_at: int | None = NOW) -> EventProgress:
    return EventProgress(
        event_id=1,
        phase=phase,
        snapshot_upper=NOW - 100,
        created_through=NOW - 10,
        modified_through=NOW - 10,
        last_reconcile_at=last_reconcile_at,
        updated_at=0,
    )


def decide(p: EventProgress | None, **kw: object):
    args: dict[str, object] = {
        "api_now": NOW,
        "api_time": float(NOW),
        "last_started_api": None,
        "poll_interval_seconds": 1.0,
        "reconcile_interval_seconds": 60.0,
    }
    args.update(kw)
    return next_action(p, **args)  # type: ignore[arg-type]


def test_an_event_without_progress_or_in_its_snapshot_runs_the_snapshot():
    assert decide(None) == Run(CycleKind.SNAPSHOT)
    assert decide(progress(Phase.SNAPSHOT, None)) == Run(CycleKind.SNAPSHOT)
    # even with a poll not due yet: the snapshot goes on at once
    assert decide(progress(Phase.SNAPSHOT), last_started_api=float(NOW)) == Run(CycleKind.SNAPSHOT)


def test_a_due_reconciliation_runs_unless_the_last_cycle_was_one():
    due = progress(last_reconcile_at=NOW - 60)
    assert decide(due) == Run(CycleKind.RECONCILE)
    assert decide(due, reconciled_last=True) == Run(CycleKind.INCREMENTAL)
    assert decide(progress(last_reconcile_at=NOW - 59)) == Run(CycleKind.INCREMENTAL)
    assert decide(due, reconcile_interval_seconds=0) == Run(CycleKind.INCREMENTAL)
    assert decide(progress(last_reconcile_at=None)) == Run(CycleKind.INCREMENTAL)


def test_after_a_cycle_the_loop_idles_until_the_next_tick():
    action = decide(progress(), last_started_api=NOW + 0.15, api_time=NOW + 0.2)
    assert isinstance(action, Idle)
    assert math.isclose(action.seconds, 0.95, abs_tol=1e-6)
    assert decide(progress(), last_started_api=NOW + 0.15, api_time=NOW + 1.2) == Run(
        CycleKind.INCREMENTAL
    )


def test_reconcile_delay_counts_down_to_the_due_pass():
    assert reconcile_delay(progress(last_reconcile_at=NOW - 20), NOW, 60) == 40
    assert reconcile_delay(progress(last_reconcile_at=NOW - 80), NOW, 60) == 0
    assert reconcile_delay(progress(Phase.SNAPSHOT), NOW, 60) == math.inf
    assert reconcile_delay(progress(), NOW, 0) == math.inf
    assert reconcile_delay(progress(last_reconcile_at=None), NOW, 60) == math.inf


@given(
    last=st.integers(NOW - 10_000, NOW + 10_000),
    now=st.integers(NOW - 10_000, NOW + 10_000),
    interval=st.integers(-5, 5_000),
)
def test_a_pass_is_due_exactly_when_its_delay_is_over(last, now, interval):
    p = progress(last_reconcile_at=last)
    assert reconcile_due(p, now, interval) == (reconcile_delay(p, now, interval) == 0)


@given(
    started=st.floats(0, 1e6, allow_nan=False),
    elapsed=st.floats(-100, 100, allow_nan=False),
    interval=st.floats(0.05, 120, allow_nan=False),
)
def test_the_wait_for_a_poll_is_bounded_and_lands_just_after_a_tick(started, elapsed, interval):
    now = started + elapsed
    wait = until_next_poll(started, now, interval)
    assert 0 <= wait <= interval + 1.0
    if interval >= 1 and 0 < wait < interval + 1.0:
        frac = (now + wait) % 1
        assert math.isclose(frac, 0.15, abs_tol=1e-6)


@given(
    phase=st.sampled_from(list(Phase)),
    last_reconcile=st.one_of(st.none(), st.integers(NOW - 7200, NOW)),
    started=st.one_of(st.none(), st.floats(NOW - 5, NOW + 5, allow_nan=False)),
    reconciled_last=st.booleans(),
)
def test_exactly_one_action_and_it_is_consistent_with_the_rules(
    phase, last_reconcile, started, reconciled_last
):
    p = progress(phase, last_reconcile)
    action = decide(p, last_started_api=started, reconciled_last=reconciled_last)
    if phase is Phase.SNAPSHOT:
        assert action == Run(CycleKind.SNAPSHOT)
    elif isinstance(action, Idle):
        assert started is not None
        assert action.seconds > 0
    elif action == Run(CycleKind.RECONCILE):
        assert not reconciled_last
        assert reconcile_due(p, NOW, 60.0)
    else:
        assert action == Run(CycleKind.INCREMENTAL)
        assert reconciled_last or not reconcile_due(p, NOW, 60.0)
