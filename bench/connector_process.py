"""``meetings-cdc run`` as a child process, watched through its JSON log lines and /proc."""

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

from confluent_kafka import Consumer, KafkaError

from bench.common import bootstrap, cpu_seconds


def connector_env(api_base_url: str, event_id: int, name: str, **overrides: str) -> dict[str, str]:
    """Settings of a benchmarked connector: topics named after ``name``, no API rate limit
    (the benchmark measures the connector, not the vendor's quota), 1 s polls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    env.update(
        {
            "MEETINGS_CDC_API_BASE_URL": api_base_url,
            "MEETINGS_CDC_EVENT_IDS": str(event_id),
            "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
            "MEETINGS_CDC_CONNECTOR_NAME": name,
            "MEETINGS_CDC_CHANGES_TOPIC": f"{name}.changes",
            "MEETINGS_CDC_STATE_TOPIC": f"{name}.state",
            "MEETINGS_CDC_DLQ_TOPIC": f"{name}.dlq",
            "MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND": "0",
            "MEETINGS_CDC_POLL_INTERVAL_SECONDS": "1",
            "MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS": "0",
            "MEETINGS_CDC_METRICS_PORT": "0",
            "MEETINGS_CDC_LOG_LEVEL": "INFO",
            "MEETINGS_CDC_LOG_FORMAT": "json",
        }
    )
    env.update(overrides)
    return env


def topics_of(name: str) -> list[str]:
    """The topics a connector named ``name`` creates (see :func:`connector_env`)."""
    return [f"{name}.changes", f"{name}.state", f"{name}.dlq"]


@dataclass
class Mark:
    """When a log line was seen: wall and monotonic time, and the process's CPU seconds."""

    wall: float
    monotonic: float
    cpu: float
    line: dict[str, Any]


@dataclass
class ConnectorProcess:
    """A running ``python -m connector run``; :meth:`mark` waits for a log message."""

    env: Mapping[str, str]
    process: asyncio.subprocess.Process | None = None
    spawned: float = 0.0  # monotonic time just before the process was started
    marks: dict[str, Mark] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)
    _waiters: dict[str, asyncio.Future[Mark]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> ConnectorProcess:
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

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            # /proc first: the CPU figure belongs as close to the log line as possible.
            cpu = float("nan")
            with contextlib.suppress(OSError):
                cpu = cpu_seconds(self.pid)
            text = line.decode(errors="replace").strip()
            self.tail = [*self.tail[-30:], text]
            try:
                parsed = json.loads(text)
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
        """The first log line whose message is ``message`` (waiting up to ``within`` s)."""
        if message in self.marks:
            return self.marks[message]
        waiter = self._waiters.setdefault(message, asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(within):
                return await asyncio.shield(waiter)
        except TimeoutError:
            raise RuntimeError(self.failure(f"no {message!r} within {within:.0f} s")) from None

    def failure(self, what: str) -> str:
        return what + "; connector log tail:\n" + "\n".join(self.tail[-10:])

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader


def read_topic(topic: str, expected: int | None = None, idle: float = 3.0) -> list[Any]:
    """Every committed record of ``topic`` (read_committed), until ``expected`` records or
    ``idle`` seconds without any. Blocking."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": f"bench-read-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle and (expected is None or len(found) < expected):
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() in (KafkaError._PARTITION_EOF,):
                        continue
                    raise RuntimeError(error.str())
                found.append(msg)
                last = time.monotonic()
    finally:
        consumer.close()
    return found
