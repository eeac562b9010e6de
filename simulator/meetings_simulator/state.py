"""The state of one running simulator, shared by its HTTP handlers."""

from __future__ import annotations

import collections
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
    #: Export requests received, by filter (``created``, ``last_modified``, ``none``) and
    #: ``rate_limited`` (answered 429): what a client spent of the API's rate limit; and by
    #: the request's ``event_id`` (``event:<id>``).
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    omit_total: bool = False  # export pages leave ``total`` out (``--omit-total``)


SIMULATOR = web.AppKey("simulator", Simulator)
