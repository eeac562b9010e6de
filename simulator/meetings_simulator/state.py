"""The state of one running simulator, shared by its HTTP handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from meetings_simulator.clock import SimClock
from meetings_simulator.faults import FaultInjector
from meetings_simulator.store import MeetingStore
from meetings_simulator.workload import Churn, EventPlan


@dataclass(slots=True)
class Simulator:
    """Everything a simulator holds: clock, meetings, faults, and the workload plans."""

    clock: SimClock
    store: MeetingStore
    faults: FaultInjector
    plans: list[EventPlan] = field(default_factory=list)
    churn: Churn | None = None
    omit_total: bool = False  # export pages leave ``total`` out (``--omit-total``)


SIMULATOR = web.AppKey("simulator", Simulator)
