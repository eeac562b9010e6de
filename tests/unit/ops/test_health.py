"""HealthState: liveness, readiness and status, driven by a fake clock."""

from __future__ import annotations

import dataclasses
import enum
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.ops.health import COMPONENTS, HealthState, live_max_age, ready_max_age


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, events: tuple[int, ...] = (7, 8), poll: float = 5.0) -> HealthState:
    return HealthState(events, poll_interval_seconds=poll, clock=clock)


def all_ready(health: HealthState, events: tuple[int, ...] = (7, 8)) -> None:
    for component in COMPONENTS:
        health.set_ready(component, True)
    for event_id in events:
        health.cycle_finished(event_id, phase="incremental", ok=True, detail={})


@pytest.mark.parametrize(
    ("poll", "live", "ready"),
    [(0.1, 30.0, 60.0), (1.0, 30.0, 60.0), (5.0, 30.0, 60.0), (10.0, 60.0, 100.0)],
)
def test_thresholds_are_multiples_of_the_poll_interval_with_floors(
    poll: float, live: float, ready: float
) -> None:
    assert live_max_age(poll) == live
    assert ready_max_age(poll) == ready
    health = HealthState([1], poll_interval_seconds=poll, clock=FakeClock())
    assert health.live_after_seconds == live
    assert health.ready_after_seconds == ready


def test_thresholds_can_be_overridden(clock: FakeClock) -> None:
    health = HealthState(
        [1],
        poll_interval_seconds=5,
        clock=clock,
        live_after_seconds=3,
        ready_after_seconds=4,
    )
    clock.advance(3.5)
    assert not health.live()


def test_rejects_non_positive_poll_interval(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="poll_interval_seconds"):
        HealthState([1], poll_interval_seconds=0, clock=clock)


# --- liveness ----------------------------------------------------------------------------


def test_a_new_process_is_live(clock: FakeClock) -> None:
    assert make(clock).live()


def test_live_until_the_heartbeat_is_older_than_the_limit(clock: FakeClock) -> None:
    health = make(clock)  # limit 30 s
    clock.advance(30)
    assert health.live()
    clock.advance(0.001)
    assert not health.live()
    health.beat()
    assert health.live()
    assert health.heartbeat_age() == 0


def test_live_accepts_an_explicit_now(clock: FakeClock) -> None:
    health = make(clock)
    assert health.live(clock.now + 29)
    assert not health.live(clock.now + 31)


def test_liveness_ignores_components_and_cycles(clock: FakeClock) -> None:
    """Kafka or API trouble shows as not ready, never as not live (no restart storms)."""
    health = make(clock)
    health.set_ready("producer", False)
    for _ in range(100):
        health.cycle_finished(7, phase="incremental", ok=False, detail={"error": "broker down"})
    assert health.live()


def test_heartbeat_age_is_never_negative(clock: FakeClock) -> None:
    health = make(clock)
    assert health.heartbeat_age(clock.now - 100) == 0


# --- readiness ---------------------------------------------------------------------------


def test_not_ready_at_start_with_every_reason(clock: FakeClock) -> None:
    ready, body = make(clock).ready()
    assert not ready
    assert body["ready"] is False
    assert "state not ready" in body["reasons"]
    assert "producer not ready" in body["reasons"]
    assert "event 7: no successful cycle yet" in body["reasons"]
    assert "event 8: no successful cycle yet" in body["reasons"]
    assert body["components"] == {"state": False, "producer": False}
    assert body["events"]["7"] == {"ready": False, "last_success_age_seconds": None}


def test_ready_when_everything_is(clock: FakeClock) -> None:
    health = make(clock)
    all_ready(health)
    ready, body = health.ready()
    assert ready
    assert body["reasons"] == []
    assert body["events"]["7"] == {"ready": True, "last_success_age_seconds": 0.0}


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_gates_readiness(clock: FakeClock, component: str) -> None:
    health = make(clock)
    all_ready(health)
    health.set_ready(component, False)
    ready, body = health.ready()
    assert not ready
    assert body["reasons"] == [f"{component} not ready"]


def test_unknown_component_is_rejected(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="unknown component"):
        make(clock).set_ready("kafka", True)


def test_every_event_needs_a_successful_cycle(clock: FakeClock) -> None:
    health = make(clock)
    for component in COMPONENTS:
        health.set_ready(component, True)
    health.cycle_finished(7, phase="snapshot", ok=True, detail={})
    ready, body = health.ready()
    assert not ready
    assert body["reasons"] == ["event 8: no successful cycle yet"]
    health.cycle_finished(8, phase="snapshot", ok=False, detail={})
    assert not health.ready()[0]
    health.cycle_finished(8, phase="snapshot", ok=True, detail={})
    assert health.ready()[0]


def test_a_stale_last_success_makes_it_unready(clock: FakeClock) -> None:
    health = make(clock)  # ready limit 60 s
    all_ready(health)
    health.beat()
    clock.advance(60)
    health.beat()
    assert health.ready()[0]
    clock.advance(1)
    health.beat()
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    health.cycle_finished(8, phase="incremental", ok=False, detail={})
    ready, body = health.ready()
    assert not ready
    assert body["reasons"] == ["event 8: last successful cycle 61.0s ago (limit 60s)"]
    assert body["events"]["8"]["ready"] is False
    assert body["events"]["7"]["ready"] is True


def test_a_dead_main_loop_is_not_ready_either(clock: FakeClock) -> None:
    health = make(clock)
    all_ready(health)
    ready, body = health.ready(clock.now + 31)
    assert not ready
    assert body["reasons"][0] == "main loop heartbeat is 31.0s old"


def test_no_events_is_not_ready(clock: FakeClock) -> None:
    health = make(clock, events=())
    for component in COMPONENTS:
        health.set_ready(component, True)
    ready, body = health.ready()
    assert not ready
    assert body["reasons"] == ["no events assigned"]


def test_a_replica_without_events_is_ready_when_idle_is_allowed(clock: FakeClock) -> None:
    health = HealthState((), poll_interval_seconds=5, clock=clock, idle_ok=True)
    for component in COMPONENTS:
        health.set_ready(component, True)
    ready, body = health.ready()
    assert ready, body
    assert health.status()["owned_events"] == []


def test_status_lists_the_owned_events(clock: FakeClock) -> None:
    health = make(clock)
    health.set_events([8])
    assert health.status()["owned_events"] == [8]


def test_set_events_keeps_known_events_and_drops_others(clock: FakeClock) -> None:
    health = make(clock)
    all_ready(health)
    health.set_events([8, 9])
    _, body = health.ready()
    assert set(body["events"]) == {"8", "9"}
    assert body["events"]["8"]["ready"] is True
    assert body["events"]["9"]["ready"] is False


def test_a_cycle_of_an_unknown_event_adds_it(clock: FakeClock) -> None:
    health = make(clock, events=(7,))
    health.cycle_finished(99, phase="incremental", ok=True, detail={})
    assert "99" in health.status()["events"]


# --- status ------------------------------------------------------------------------------


class Kind(enum.Enum):
    CREATED = "created"


@dataclasses.dataclass(frozen=True)
class Watermarks:
    created_through: int
    modified_through: int


def test_status_shows_last_cycle_last_success_and_counts(clock: FakeClock) -> None:
    health = HealthState(
        [7],
        poll_interval_seconds=5,
        clock=clock,
        info={"connector_name": "c1", "version": "0.1.0"},
    )
    all_ready(health, (7,))
    clock.advance(5)
    health.cycle_finished(
        7,
        phase="incremental",
        ok=True,
        detail={
            "watermarks": Watermarks(100, 200),
            "source_lag_seconds": 3.5,
            "counts": {"rows": 10, "events": 2},
            "window": (Kind.CREATED, 90, 100),
        },
    )
    clock.advance(5)
    health.cycle_finished(7, phase="incremental", ok=False, detail={"error": ValueError("boom")})
    clock.advance(1)
    status = health.status()
    json.dumps(status, allow_nan=False)  # JSON-ready
    assert status["connector_name"] == "c1"
    assert status["version"] == "0.1.0"
    assert status["live"] is True
    assert status["ready"] is True
    assert status["uptime_seconds"] == 11
    assert status["poll_interval_seconds"] == 5
    event = status["events"]["7"]
    assert event["cycles_ok"] == 2
    assert event["cycles_failed"] == 1
    assert event["consecutive_failures"] == 1
    assert event["last_success_age_seconds"] == 6
    assert event["last_cycle"] == {
        "phase": "incremental",
        "ok": False,
        "finished_at": 1_010.0,
        "detail": {"error": "boom"},
    }
    assert event["last_successful_cycle"]["finished_at"] == 1_005.0
    assert event["last_successful_cycle"]["detail"] == {
        "watermarks": {"created_through": 100, "modified_through": 200},
        "source_lag_seconds": 3.5,
        "counts": {"rows": 10, "events": 2},
        "window": ["created", 90, 100],
    }


def test_success_resets_consecutive_failures(clock: FakeClock) -> None:
    health = make(clock)
    for _ in range(3):
        health.cycle_finished(7, phase="incremental", ok=False, detail={})
    assert health.status()["events"]["7"]["consecutive_failures"] == 3
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    assert health.status()["events"]["7"]["consecutive_failures"] == 0


def test_status_detail_is_a_snapshot(clock: FakeClock) -> None:
    health = make(clock)
    counts = {"rows": 1}
    health.cycle_finished(7, phase="incremental", ok=True, detail={"counts": counts})
    counts["rows"] = 999
    assert health.status()["events"]["7"]["last_cycle"]["detail"] == {"counts": {"rows": 1}}


def test_status_replaces_non_finite_floats(clock: FakeClock) -> None:
    health = make(clock)
    health.cycle_finished(7, phase="incremental", ok=True, detail={"lag": float("inf")})
    status = health.status()
    json.dumps(status, allow_nan=False)
    assert status["events"]["7"]["last_cycle"]["detail"] == {"lag": None}


def test_status_is_redacted(clock: FakeClock) -> None:
    health = HealthState(
        [7],
        poll_interval_seconds=5,
        clock=clock,
        redact=lambda text: text.replace("s3cret", "***"),
        info={"url": "http://x?key=s3cret"},
    )
    health.cycle_finished(
        7,
        phase="incremental",
        ok=False,
        detail={
            "error": RuntimeError("auth failed with s3cret"),
            "s3cret-key": ["s3cret", ("nested s3cret",)],
        },
    )
    text = json.dumps(health.status())
    assert "s3cret" not in text
    assert "***" in text


# --- properties --------------------------------------------------------------------------

reports = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=100)),
        st.tuples(st.just("beat"), st.none()),
        st.tuples(st.just("cycle"), st.tuples(st.sampled_from([7, 8]), st.booleans())),
        st.tuples(st.just("ready"), st.tuples(st.sampled_from(COMPONENTS), st.booleans())),
    ),
    max_size=40,
)


@given(reports)
def test_ready_implies_live_and_reasons_explain_not_ready(ops: list[tuple[str, object]]) -> None:
    clock = FakeClock()
    health = make(clock)
    for op, arg in ops:
        if op == "advance":
            assert isinstance(arg, float)
            clock.advance(arg)
        elif op == "beat":
            health.beat()
        elif op == "cycle":
            assert isinstance(arg, tuple)
            health.cycle_finished(arg[0], phase="incremental", ok=arg[1], detail={})
        else:
            assert isinstance(arg, tuple)
            health.set_ready(arg[0], arg[1])
    ready, body = health.ready()
    assert ready == (body["reasons"] == [])
    if ready:
        assert health.live()
        assert all(body["components"].values())
        assert all(e["ready"] for e in body["events"].values())
    status = health.status()
    json.dumps(status, allow_nan=False)
    assert status["ready"] == ready
    assert status["live"] == health.live()
    for event in status["events"].values():
        assert event["cycles_ok"] + event["cycles_failed"] >= event["consecutive_failures"]


def test_readiness_names_the_last_error_of_an_event_never_ready(clock: FakeClock) -> None:
    health = HealthState(
        (7,), poll_interval_seconds=5.0, clock=clock, redact=lambda s: s.replace("k3y", "***")
    )
    health.cycle_finished(
        7, phase="snapshot", ok=False, detail={"error": "API 401 for key k3y: check API_KEY"}
    )
    _, body = health.ready()
    reason = next(r for r in body["reasons"] if r.startswith("event 7"))
    assert (
        reason == "event 7: no successful cycle yet; last error: API 401 for key ***: check API_KEY"
    )


# --- out of the replicas' group (issue 30 item 1) ---------------------------------------------


def replica(clock: FakeClock) -> HealthState:
    """A replica as ``run`` makes it: a standby owning nothing is ready."""
    health = HealthState([], poll_interval_seconds=1.0, clock=clock, idle_ok=True)
    for component in COMPONENTS:
        health.set_ready(component, True)
    return health


def wait(health: HealthState, clock: FakeClock, seconds: float) -> None:
    """Time passes; the main loop beats meanwhile (liveness is not what these test)."""
    clock.advance(seconds)
    health.beat()


def test_the_group_taking_an_event_keeps_it_in_readiness_while_out_of_the_group(
    clock: FakeClock,
) -> None:
    # The broker stops: the replica leaves the group at once, its session times out 9 s
    # later and the group takes its event, so it owns nothing. It used to be ready.
    health = replica(clock)
    health.set_events([7])
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    wait(health, clock, 1)
    health.group_contact(False, "group coordinator query-coord, join steady")
    wait(health, clock, 9)
    health.events_lost([7])
    health.set_events([])
    assert health.ready()[0]  # a short outage does not flip readiness
    wait(health, clock, 50.5)

    ok, body = health.ready()

    assert not ok
    [reason] = body["reasons"]
    assert reason.startswith("Kafka: out of the replicas' group for 59.5s (limit 60s;")
    assert "group coordinator query-coord" in reason
    assert "events last owned here, taken by the group: 7 (last successful cycle 60.5s ago)" in (
        reason
    )
    assert health.status()["lost_events"] == [7]
    assert health.status()["in_group"] is False


def test_out_of_the_group_longer_than_the_limit_makes_a_standby_unready(
    clock: FakeClock,
) -> None:
    health = replica(clock)
    health.group_contact(False, "group coordinator query-coord, join init")
    wait(health, clock, 60)
    assert health.ready()[0]
    wait(health, clock, 0.5)

    ok, body = health.ready()

    assert not ok
    assert body["reasons"] == [
        "Kafka: out of the replicas' group for 60.5s "
        "(limit 60s; group coordinator query-coord, join init)"
    ]


def test_back_in_the_group_ready_again_after_the_first_commit(clock: FakeClock) -> None:
    health = replica(clock)
    health.set_events([7])
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    health.group_contact(False, "down")
    wait(health, clock, 10)
    health.events_lost([7])
    health.set_events([])
    wait(health, clock, 65)
    assert not health.ready()[0]

    health.group_contact(True)
    assert not health.ready()[0], "the lost event has not committed since"
    health.set_events([7])  # assigned again, restored
    ok, body = health.ready()
    assert not ok
    assert body["reasons"] == ["event 7: last successful cycle 75.0s ago (limit 60s)"]
    health.cycle_finished(7, phase="incremental", ok=True, detail={})

    assert health.ready() == (True, health.ready()[1])
    assert health.status()["lost_events"] == []


def test_back_in_the_group_as_a_standby_forgets_the_lost_events(clock: FakeClock) -> None:
    health = replica(clock)
    health.set_events([7])
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    health.group_contact(False, "down")
    health.events_lost([7])
    health.set_events([])
    wait(health, clock, 70)
    health.group_contact(True)
    health.set_events([])  # the assignment after rejoining: another replica runs event 7

    assert health.ready()[0]
    assert health.status()["lost_events"] == []


def test_losing_an_event_while_in_the_group_is_a_plain_handover(clock: FakeClock) -> None:
    # A long pause: the session timed out, but the coordinator is reachable again at once.
    health = replica(clock)
    health.set_events([7])
    health.cycle_finished(7, phase="incremental", ok=True, detail={})
    wait(health, clock, 70)
    health.events_lost([7])
    health.set_events([])

    assert health.ready()[0]
    assert health.status()["lost_events"] == []
