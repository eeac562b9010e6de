"""``meetings-cdc run`` as a child process, for the integration tests, the chaos suite and the
benchmarks alike: its stderr collected (``log``), its JSON log lines watched (``mark``), and
the CPU it had used when each was written (from /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def connector_env(
    *, api_base_url: str, event_ids: str, bootstrap: str, name: str, **settings: str
) -> dict[str, str]:
    """The environment of a connector named ``name``: this process's environment without its
    ``MEETINGS_CDC_*`` variables, topics named after ``name``, metrics on a free port, then
    ``settings`` (``MEETINGS_CDC_*`` names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    env.update(
        {
            "MEETINGS_CDC_API_BASE_URL": api_base_url,
            "MEETINGS_CDC_EVENT_IDS": event_ids,
            "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "MEETINGS_CDC_CONNECTOR_NAME": name,
            "MEETINGS_CDC_CHANGES_TOPIC": f"{name}.changes",
            "MEETINGS_CDC_STATE_TOPIC": f"{name}.state",
            "MEETINGS_CDC_DLQ_TOPIC": f"{name}.dlq",
            "MEETINGS_CDC_SIGNALS_TOPIC": f"{name}.signals",
            "MEETINGS_CDC_NOTIFICATIONS_TOPIC": f"{name}.notifications",
            "MEETINGS_CDC_HEARTBEATS_TOPIC": f"{name}.heartbeats",
            "MEETINGS_CDC_METRICS_PORT": "0",
        }
    )
    env.update(settings)
    return env


@dataclass
class Mark:
    """When a log line was seen: wall and monotonic time, and the process's CPU seconds."""

    wall: float
    monotonic: float
    cpu: float
    line: dict[str, Any]


@dataclass
class ConnectorProcess:
    """``python -m connector run`` with ``env``; stderr collected, log messages marked."""

    env: Mapping[str, str]
    process: asyncio.subprocess.Process | None = None
    spawned: float = 0.0  # monotonic time just before the process was started
    stderr: bytearray = field(default_factory=bytearray)
    marks: dict[str, Mark] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Future[Mark]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> ConnectorProcess:
        """Start the process (again, after it ended: the log and marks start afresh)."""
        self.stderr.clear()
        self.marks.clear()
        self.spawned = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connector",
            "run",
            env=dict(self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr.decode(errors="replace")

    @property
    def tail(self) -> list[str]:
        """The last lines of the log."""
        return self.log.splitlines()[-30:]

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            # /proc first: the CPU figure belongs as close to the log line as possible.
            cpu = float("nan")
            with contextlib.suppress(OSError):
                cpu = cpu_seconds(self.pid)
            self.stderr.extend(line)
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            message = parsed.get("msg", "") if isinstance(parsed, dict) else ""
            if message and message not in self.marks:
                mark = Mark(time.time(), time.monotonic(), cpu, parsed)
                self.marks[message] = mark
                waiter = self._waiters.pop(message, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(mark)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError(self.failure("connector exited")))

    async def mark(self, message: str, within: float) -> Mark:
        """The first JSON log line whose message is ``message`` (waiting up to ``within`` s)."""
        if message in self.marks:
            return self.marks[message]
        waiter = self._waiters.setdefault(message, asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(within):
                return await asyncio.shield(waiter)
        except TimeoutError:
            raise RuntimeError(self.failure(f"no {message!r} within {within:.0f} s")) from None

    def failure(self, what: str) -> str:
        """``what``, with the last lines of the log."""
        return what + "; connector log tail:\n" + "\n".join(self.tail[-10:])

    async def wait(self, within: float) -> int:
        """The exit code, once the process ended (within ``within`` s) and its log is read."""
        assert self.process is not None
        async with asyncio.timeout(within):
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code

    async def terminate(self, within: float = 30) -> int:
        """SIGTERM; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(within)

    async def kill(self) -> None:
        """SIGKILL (a crash)."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await self.wait(10)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.process is None:
            return
        try:
            await self.terminate(30)
        except TimeoutError:
            await self.kill()

    async def stop_quietly(self) -> None:
        """SIGKILL if still running (a test's clean-up)."""
        if self.process is not None and self.process.returncode is None:
            await self.kill()
