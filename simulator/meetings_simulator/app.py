"""The simulator's aiohttp application and :class:`SimulatorServer`, its embedding API.

``SimulatorServer`` is an async context manager that seeds the store, serves on a host and
port (0 = ephemeral) and runs the churn in the background::

    async with SimulatorServer(SimulatorConfig(meetings=1000)) as server:
        print(server.base_url)       # http://127.0.0.1:PORT
        server.clock.freeze()        # the API's clock, shared with the Date header
        server.store.meetings(1)     # ground truth, in-process
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from zoneinfo import ZoneInfo

from aiohttp import web

from meetings_simulator import admin
from meetings_simulator.clock import SimClock
from meetings_simulator.errors import BadParameter, MeetingNotFound
from meetings_simulator.export import EXPORT_PATH, error_response, export
from meetings_simulator.faults import FaultInjector
from meetings_simulator.render import TimeFormatter
from meetings_simulator.state import SIMULATOR, Simulator
from meetings_simulator.store import MeetingStore
from meetings_simulator.workload import Churn, seed_store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What a simulator starts with (the ``simulate`` flags)."""

    event_ids: tuple[int, ...] = (1,)
    meetings: int = 0
    seed: int = 0
    churn_per_second: float = 0.0
    clock_skew_seconds: float = 0.0
    timezone: str = "UTC"
    #: False: like an API that leaves a new meeting's last-modified time unset
    #: (``--no-modified-at-creation``)
    modified_at_creation: bool = True
    omit_total: bool = False  # pages without ``total``, like an API that does not count


def build_simulator(config: SimulatorConfig, clock: SimClock | None = None) -> Simulator:
    """A seeded simulator (no I/O); ``clock`` defaults to wall clock plus the configured skew."""
    clock = clock if clock is not None else SimClock(config.clock_skew_seconds)
    tz = ZoneInfo(config.timezone)
    store = MeetingStore(
        clock.now, TimeFormatter(tz), modified_at_creation=config.modified_at_creation
    )
    plans = seed_store(
        store,
        event_ids=config.event_ids,
        meetings=config.meetings,
        seed=config.seed,
        now=clock.now(),
        tz=tz,
    )
    return Simulator(
        clock=clock,
        store=store,
        faults=FaultInjector(config.seed),
        plans=plans,
        churn=Churn(store, plans, config.seed) if plans else None,
        omit_total=config.omit_total,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map simulator errors, and aiohttp's own, to JSON error bodies."""
    try:
        return await handler(request)
    except BadParameter as exc:
        return error_response(400, exc.message, exc.parameter)
    except MeetingNotFound as exc:
        return error_response(404, str(exc), "meeting_id")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(sim: Simulator) -> web.Application:
    """The aiohttp application serving ``sim``: export endpoint, admin API, ``/healthz``."""
    app = web.Application(middlewares=[_errors])
    app[SIMULATOR] = sim

    async def date_from_sim_clock(request: web.Request, response: web.StreamResponse) -> None:
        # The connector reads the API's "now" from Date: it must carry the skewed clock.
        response.headers["Date"] = formatdate(sim.clock.time(), usegmt=True)

    app.on_response_prepare.append(date_from_sim_clock)
    app.router.add_get(EXPORT_PATH, export)
    app.router.add_get("/healthz", _healthz)
    admin.add_routes(app)
    return app


class SimulatorServer:
    """A running simulator on ``host:port`` (port 0 picks a free one); async context manager."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self._requested_port = port
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._churn_task: asyncio.Task[None] | None = None
        self.port = 0
        self.simulator: Simulator | None = None

    @property
    def sim(self) -> Simulator:
        """The running simulator's state (clock, store, faults)."""
        if self.simulator is None:
            raise RuntimeError("the simulator is not running")
        return self.simulator

    @property
    def clock(self) -> SimClock:
        """The API's clock (skew, freeze, advance)."""
        return self.sim.clock

    @property
    def store(self) -> MeetingStore:
        """The meetings (ground truth)."""
        return self.sim.store

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Seed, bind and serve; start the churn if configured."""
        self.simulator = build_simulator(self.config, self._clock)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(build_app(self.simulator), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        churn = self.simulator.churn
        if churn is not None and self.config.churn_per_second > 0:
            self._churn_task = asyncio.create_task(churn.run(self.config.churn_per_second))

    async def stop(self) -> None:
        """Stop the churn and the server."""
        if self._churn_task is not None:
            self._churn_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._churn_task
            self._churn_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
