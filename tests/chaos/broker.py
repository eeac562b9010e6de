"""A Kafka broker of the chaos suite's own, on its own port, that it may stop and kill.

Never the shared broker (``127.0.0.1:19092``) that other test runs use: the broker-restart
scenario stops this one mid-transaction. Started and stopped through
``deploy/local/kafka.sh`` (``KAFKA_PORT``), like ``make kafka-up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "local" / "kafka.sh"
DEFAULT_PORT = 29192


class OwnBroker:
    """``kafka.sh up|down`` with ``KAFKA_PORT=port``; ``kill()`` is a SIGKILL of its JVM."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or int(os.environ.get("MEETINGS_CDC_CHAOS_KAFKA_PORT", DEFAULT_PORT))
        self.bootstrap = f"127.0.0.1:{self.port}"
        cache = Path(os.environ.get("MEETINGS_CDC_CACHE", Path.home() / ".cache/meetings-cdc"))
        self.pid_file = cache / "run" / f"kafka-{self.port}" / "kafka.pid"
        self._env = {**os.environ, "KAFKA_PORT": str(self.port), "PYTHON": sys.executable}

    async def _script(self, action: str, within: float = 180) -> None:
        process = await asyncio.create_subprocess_exec(
            str(KAFKA_SCRIPT),
            action,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(within):
            _, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} on port {self.port} failed: {stderr.decode()}")

    async def up(self) -> None:
        """Start it (a no-op when it runs) and return once it answers."""
        await self._script("up")

    async def down(self) -> None:
        """A clean shutdown (SIGTERM, then SIGKILL after 20 s)."""
        await self._script("down")

    async def kill(self) -> None:
        """SIGKILL the broker's JVM (the pid ``kafka.sh`` recorded) and wait for it to go."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.1)
