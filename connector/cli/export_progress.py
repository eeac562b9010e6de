"""``export``'s progress on stderr: a live bar on a terminal, one summary line otherwise."""

from __future__ import annotations

import time
from typing import IO

from connector.source.leaf_parts import WindowPart

_PROGRESS_INTERVAL = 0.2


class Progress:
    """A live bar (rows, pages, rate, ETA) on a terminal; one summary line otherwise."""

    def __init__(self, mode: str, stream: IO[str]) -> None:
        if mode == "auto":
            mode = "bar" if stream.isatty() else "summary"
        self.mode = mode
        self.stream = stream
        self.total = 0
        self.rows = self.pages = self.requests = self.dead = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def start(self, total: int) -> None:
        """The read begins; ``total`` rows are expected."""
        self.total = total
        self.started = time.monotonic()

    def update(self, part: WindowPart, meetings: int, *, count_rows: bool = True) -> None:
        """A part was read."""
        if count_rows:
            self.rows += part.rows
        self.pages += part.pages
        self.requests += part.requests
        self.dead += len(part.dead_letters)
        now = time.monotonic()
        if self.mode == "bar" and now - self._drawn >= _PROGRESS_INTERVAL:
            self._drawn = now
            self.stream.write("\r" + self._bar(meetings, now) + "\x1b[K")
            self.stream.flush()

    def _bar(self, meetings: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.rows / elapsed
        share = min(1.0, self.rows / self.total) if self.total else 1.0
        width = 24
        filled = int(share * width)
        eta = "--:--"
        if rate > 0 and self.total:
            left = max(0.0, (self.total - self.rows) / rate)
            eta = f"{int(left // 60):02d}:{int(left % 60):02d}"
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%} "
            f"{self.rows:,}/{self.total:,} rows, {meetings:,} meetings, {self.pages:,} pages, "
            f"{rate:,.0f} rows/s, ETA {eta}"
        )

    def finish(self, meetings: int, not_exported: int) -> None:
        """Print the summary line (and end the bar)."""
        if self.mode == "none":
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if self.mode == "bar":
            self.stream.write("\r\x1b[K")
        line = (
            f"exported {meetings:,} meetings ({self.rows:,} rows, {self.pages:,} pages, "
            f"{self.requests:,} requests) in {elapsed:.1f}s, {self.rows / elapsed:,.0f} rows/s; "
            f"{self.dead:,} malformed rows, {not_exported:,} meetings not exported"
        )
        self.stream.write(line + "\n")
        self.stream.flush()
