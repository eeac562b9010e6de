"""A paused event is idle on purpose: ready, and shown as paused."""

from __future__ import annotations

from connector.ops.health import HealthState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_paused_event_stays_ready_however_long_it_has_not_cycled() -> None:
    clock = Clock()
    health = HealthState([7, 8], poll_interval_seconds=1.0, clock=clock)
    for component in ("state", "producer"):
        health.set_ready(component, True)
    for event in (7, 8):
        health.cycle_finished(event, phase="incremental", ok=True, detail={})
    health.set_paused(7, paused=True, by="sig-1")
    clock.now += 3600
    ok, why = health.ready()
    assert not ok
    assert why["events"]["7"]["ready"] is True
    assert why["events"]["8"]["ready"] is False
    assert all("event 7" not in reason for reason in why["reasons"])
    status = health.status()["events"]["7"]
    assert (status["paused"], status["paused_by"]) == (True, "sig-1")
    health.set_paused(7, paused=False)
    assert health.ready()[1]["events"]["7"]["ready"] is False
    assert health.status()["events"]["7"]["paused_by"] is None
