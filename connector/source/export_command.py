"""``meetings-cdc export``: a one-shot export of complete meetings as JSON lines.

Reads one event through the same drift-free reader as the connector: a CREATED window by
default (every meeting created up to the API's now minus a settle delay), or a MODIFIED one
when a ``--modified-*`` bound is given (then ``--created-*`` bounds narrow it). Each meeting
is printed once, complete, as one JSON object; times are ISO 8601 UTC strings. Meetings that
changed while they were read are looked up once more in a catch-up MODIFIED window.

Progress goes to stderr: a live bar on a terminal, one summary line otherwise. Exit codes:
0 done, 1 the API failed (the message says why), 2 bad flags or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from connector.config import ApiSettings, load_settings
from connector.errors import ConfigError, SourceError
from connector.logs import configure_logging
from connector.model import Extra, Meeting
from connector.source.client import ExportClient
from connector.source.reader import WindowPart, WindowReader
from connector.source.rows import DeadLetter
from connector.source.windows import Window, WindowKind
from connector.timestamps import iso_millis

_PROGRESS_INTERVAL = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` flags."""
    parser.epilog = (
        "Times (T) are unix seconds or ISO 8601 date-times (UTC unless an offset is given). "
        "Settings: MEETINGS_CDC_API_BASE_URL (required), MEETINGS_CDC_API_KEY, "
        "MEETINGS_CDC_API_* (see README, 'Exporting meetings')."
    )
    parser.add_argument("--event-id", type=int, required=True, metavar="N", help="the event")
    for kind, what in (("created", "creation"), ("modified", "last modification")):
        parser.add_argument(
            f"--{kind}-from", type=_timestamp, metavar="T", help=f"earliest {what} time"
        )
        parser.add_argument(
            f"--{kind}-to",
            type=_timestamp,
            metavar="T",
            help=f"latest {what} time (default: the API's now minus the settle delay)",
        )
    parser.add_argument("--out", metavar="FILE", help="write JSON lines here (default stdout)")
    parser.add_argument(
        "--dead-letters", metavar="FILE", help="write malformed rows here as JSON lines"
    )
    parser.add_argument("--api-base-url", metavar="URL", help="overrides MEETINGS_CDC_API_BASE_URL")
    parser.add_argument(
        "--settle-seconds",
        type=int,
        default=2,
        metavar="S",
        help="stay S seconds behind the API's clock (default %(default)s)",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "summary", "none"),
        default="auto",
        help="stderr progress: a bar on a terminal, a summary line otherwise (default auto)",
    )


def main(args: argparse.Namespace) -> int:
    """Run the export; ``ConfigError`` propagates to the CLI (exit 2)."""
    overrides: dict[str, Any] = {"event_ids": (args.event_id,)}
    if args.api_base_url:
        overrides["api_base_url"] = args.api_base_url
    settings = load_settings(ApiSettings, **overrides)
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    if args.settle_seconds < 0:
        print("meetings-cdc export: --settle-seconds must be >= 0", file=sys.stderr)
        return 2
    try:
        with _open(args.out) as out, _open(args.dead_letters, optional=True) as dead:
            progress = Progress(args.progress, sys.stderr)
            asyncio.run(export(settings, args, out, dead, progress))
    except SourceError as exc:
        print(f"meetings-cdc export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"meetings-cdc export: {exc}", file=sys.stderr)
        return 1
    return 0


async def export(
    settings: ApiSettings,
    args: argparse.Namespace,
    out: IO[str],
    dead: IO[str] | None,
    progress: Progress,
) -> None:
    """Read the requested window of one event and write its meetings to ``out``."""
    event_id = args.event_id
    async with ExportClient.connect(settings) as client:
        await client.fetch_page(event_id, None, 1, 1)  # the API's clock; fails fast on auth
        upper = client.api_now() - args.settle_seconds
        window, filters = plan_export(args, upper)
        probe = await client.fetch_page(event_id, window, 1, 1, filters)
        progress.start(probe.total)
        reader = WindowReader(client, settings.api_per_page)
        emitted: set[int] = set()
        pending: set[int] = set()  # changed while being read: looked up again below
        skipped: set[int] = set()  # a row of theirs was malformed
        async for part in reader.read(event_id, window, filters):
            _write(part, out, dead, emitted, pending, skipped)
            progress.update(part, len(emitted))
        if pending:
            # Their new version was written while the window was read, so at or before the
            # API's now: once that second is over, a MODIFIED window up to it holds it.
            read_end = client.api_now()
            while client.api_now() <= read_end:
                await asyncio.sleep(0.25)
                await client.fetch_page(event_id, None, 1, 1)
            catch_up = Window(WindowKind.MODIFIED, max(0, min(upper, read_end) - 1), read_end)
            narrow: dict[str, int | str] = {}
            if window.kind is WindowKind.CREATED:
                narrow = {"created_from": window.start, "created_to": window.end}
            async for part in reader.read(event_id, catch_up, {**filters, **narrow}):
                for meeting in part.meetings:
                    if meeting.meeting_id in pending:
                        out.write(meeting_json(meeting) + "\n")
                        emitted.add(meeting.meeting_id)
                        pending.discard(meeting.meeting_id)
                progress.update(part, len(emitted), count_rows=False)
        out.flush()
        progress.finish(len(emitted), len((pending | skipped) - emitted))


def plan_export(args: argparse.Namespace, upper: int) -> tuple[Window, dict[str, int | str]]:
    """The window to read and the filters narrowing it, from the flags."""
    if args.modified_from is not None or args.modified_to is not None:
        start = args.modified_from or 0
        end = args.modified_to if args.modified_to is not None else upper
        filters: dict[str, int | str] = {}
        if args.created_from is not None:
            filters["created_from"] = args.created_from
        if args.created_to is not None:
            filters["created_to"] = args.created_to
        return Window(WindowKind.MODIFIED, start, _checked(start, end)), filters
    start = args.created_from or 0
    end = args.created_to if args.created_to is not None else upper
    return Window(WindowKind.CREATED, start, _checked(start, end)), {}


def _checked(start: int, end: int) -> int:
    if end < start:
        raise ConfigError(f"the window ends ({end}) before it starts ({start})")
    return end


def _write(
    part: WindowPart,
    out: IO[str],
    dead: IO[str] | None,
    emitted: set[int],
    pending: set[int],
    skipped: set[int],
) -> None:
    for meeting in part.meetings:
        if meeting.meeting_id not in emitted:
            out.write(meeting_json(meeting) + "\n")
            emitted.add(meeting.meeting_id)
    pending.update(part.inconsistent - part.withheld - emitted)
    skipped.update(part.withheld - emitted)
    if dead is not None:
        for letter in part.dead_letters:
            dead.write(dead_letter_json(letter) + "\n")


# --- formats ----------------------------------------------------------------------------------


def meeting_json(meeting: Meeting) -> str:
    """One meeting as a JSON line: times ISO 8601 UTC, upstream extras as objects."""
    return json.dumps(
        {
            "event_id": meeting.event_id,
            "meeting_id": meeting.meeting_id,
            "status": meeting.status,
            "start_at": iso_millis(meeting.start_at),
            "end_at": iso_millis(meeting.end_at),
            "location": meeting.location,
            "created_at": iso_millis(meeting.created_at),
            "modified_at": iso_millis(meeting.modified_at),
            "participants": [
                {
                    "account_id": p.account_id,
                    "role": p.role,
                    "status": p.status,
                    "extra": _extra(p.extra),
                }
                for p in meeting.participants
            ],
            "extra": _extra(meeting.extra),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def dead_letter_json(letter: DeadLetter) -> str:
    """A dead letter as a JSON line."""
    return json.dumps(
        {
            "event_id": letter.event_id,
            "reason": letter.reason,
            "raw": letter.raw,
            "window": {
                "kind": letter.window.kind.value,
                "start": letter.window.start,
                "end": letter.window.end,
            },
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _extra(extra: Extra) -> dict[str, Any]:
    return dict(extra)


def _timestamp(text: str) -> int:
    """A flag time: unix seconds or an ISO 8601 date-time (UTC unless it has an offset)."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        number = int(value)
        if number < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return number
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected unix seconds or an ISO 8601 date-time, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return max(0, int(parsed.timestamp()))


@contextlib.contextmanager
def _open(path: str | None, *, optional: bool = False) -> Iterator[Any]:
    if path is None or path == "-":
        yield None if optional else sys.stdout
        return
    with open(path, "w", encoding="utf-8") as handle:
        yield handle


# --- progress ---------------------------------------------------------------------------------


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
