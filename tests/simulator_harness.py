"""Running a simulator for tests and benchmarks: in this process or as a subprocess.

Both are async context managers and :class:`~meetings_simulator.client.SimulatorClient`s
(admin and export helpers on ``base_url``)::

    async with EmbeddedSimulator(SimulatorConfig(meetings=100)) as sim:
        sim.clock.freeze(1_700_000_000)
        meeting_id = await sim.create(event_id=1, start=..., participants=[1, 2])

    async with SimulatorProcess(["--meetings", "100000"]) as sim:   # meetings-cdc simulate
        await sim.set_clock(skew_seconds=30)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Sequence
from types import TracebackType

from meetings_simulator.app import SimulatorConfig, SimulatorServer
from meetings_simulator.client import SimulatorClient
from meetings_simulator.clock import SimClock
from meetings_simulator.store import MeetingStore

READY = re.compile(r"simulator listening on (http://\S+)")


class EmbeddedSimulator(SimulatorClient):
    """A :class:`SimulatorServer` on 127.0.0.1 and an ephemeral port, plus its client."""

    def __init__(self, config: SimulatorConfig | None = None, *, clock: SimClock | None = None):
        super().__init__()
        self.server = SimulatorServer(config, clock=clock)

    @property
    def clock(self) -> SimClock:
        """The API clock: ``skew_seconds``, ``freeze()``, ``advance()``, ``unfreeze()``."""
        return self.server.clock

    @property
    def store(self) -> MeetingStore:
        """The in-process store (ground truth without HTTP)."""
        return self.server.store

    async def __aenter__(self) -> EmbeddedSimulator:
        await self.server.start()
        self.base_url = self.server.base_url
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        await self.server.stop()


class SimulatorProcess(SimulatorClient):
    """``meetings-cdc simulate --port 0 ARGS`` as a child process, ready when entered."""

    def __init__(self, args: Sequence[str] = (), *, startup_timeout: float = 120.0) -> None:
        super().__init__()
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.ready_line = ""

    async def start(self) -> None:
        """Spawn the simulator and wait for its ready line."""
        args = list(self.args)
        if "--port" not in args:
            args += ["--port", "0"]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connector",
            "simulate",
            *args,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout = self.process.stdout
        if stdout is None:  # pragma: no cover - PIPE always gives a reader
            raise RuntimeError("no stdout pipe")
        try:
            async with asyncio.timeout(self.startup_timeout):
                while True:
                    line = (await stdout.readline()).decode()
                    if not line:
                        code = await self.process.wait()
                        raise RuntimeError(f"meetings-cdc simulate exited with {code}")
                    match = READY.search(line)
                    if match:
                        self.ready_line = line.strip()
                        self.base_url = match.group(1)
                        return
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM the simulator, then SIGKILL it if it does not exit within 10 s."""
        await self.close()
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self.process is None else self.process.pid

    async def __aenter__(self) -> SimulatorProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
