"""``meetings-cdc export``: a one-shot export of complete meetings as JSON lines.

Reads one event through the same drift-free reader as the connector: a CREATED window by
default (every meeting created up to the API's now minus a settle delay), or a MODIFIED one
when a ``--modified-*`` bound is given (then ``--created-*`` bounds narrow it). Each meeting
is printed once, complete, as one JSON object; times are ISO 8601 UTC strings. Meetings that
changed while they were read are looked up once more in a catch-up MODIFIED window.

Progress goes to stderr: a live bar on a terminal, one summary line otherwise; an event with
no meetings at all gets a warning line. ``--out`` (and ``--dead-letters``) are written to a
hidden temporary file beside the target, renamed onto it only once the export is complete;
a failure, Ctrl-C or SIGTERM removes the temporary file, so an existing target is left as it
was and a file at the target is always a complete export. Exit codes: 0 done, 1 the API
failed (the message says why), 2 bad flags or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import IO, Any

from connector.cli.export_progress import Progress
from connector.config.settings import ApiSettings, load_settings
from connector.core.kinds import WindowKind
from connector.core.model import Extra, Meeting
from connector.core.timestamps import iso_millis, iso_seconds
from connector.errors import ConfigError, SourceError
from connector.ops.logs import configure_logging
from connector.ops.metrics import Metrics
from connector.source.client import ExportClient
from connector.source.leaf_parts import WindowPart
from connector.source.reader import WindowReader
from connector.source.rows import DeadLetter
from connector.source.windows import Window


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
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write JSON lines here, in full or not at all (default stdout)",
    )
    parser.add_argument(
        "--dead-letters",
        metavar="FILE",
        help="write malformed rows here as JSON lines, in full or not at all (default: none)",
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
    check_flags(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _open(args.out) as out, _open(args.dead_letters, optional=True) as dead:
            progress = Progress(args.progress, sys.stderr)
            asyncio.run(export(settings, args, out, dead, progress))
    except KeyboardInterrupt:
        kept = f"; {args.out} not written" if args.out not in (None, "-") else ""
        print(f"meetings-cdc export: interrupted{kept}", file=sys.stderr)
        return 130
    except SourceError as exc:
        print(f"meetings-cdc export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"meetings-cdc export: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the export like Ctrl-C does: through the clean-up of the output files.
    raise KeyboardInterrupt


async def export(
    settings: ApiSettings,
    args: argparse.Namespace,
    out: IO[str],
    dead: IO[str] | None,
    progress: Progress,
) -> None:
    """Read the requested window of one event and write its meetings to ``out``."""
    event_id = args.event_id
    async with ExportClient.connect(settings, Metrics()) as client:
        # The API's clock, the event's size; fails fast on auth.
        whole = await client.fetch_page(event_id, None, 1, 1)
        upper = client.api_now() - args.settle_seconds
        window, filters = plan_export(args, upper)
        if whole.total == 0:
            print(
                f"meetings-cdc export: warning: event {event_id} has no meetings "
                "(check --event-id)",
                file=sys.stderr,
            )
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


def check_flags(args: argparse.Namespace) -> None:
    """Bounds given in the wrong order, before any request: ``ConfigError`` naming them."""
    for kind in ("created", "modified"):
        low, high = getattr(args, f"{kind}_from"), getattr(args, f"{kind}_to")
        if low is not None and high is not None and high < low:
            raise ConfigError(
                f"--{kind}-to ({iso_seconds(high)}) is before --{kind}-from ({iso_seconds(low)})"
            )


def plan_export(args: argparse.Namespace, upper: int) -> tuple[Window, dict[str, int | str]]:
    """The window to read and the filters narrowing it, from the flags; ``upper`` is the
    API's now minus the settle delay (the end of a window whose ``--*-to`` is not given)."""
    filters: dict[str, int | str] = {}
    if args.modified_from is not None or args.modified_to is not None:
        kind, name = WindowKind.MODIFIED, "modified"
        if args.created_from is not None:
            filters["created_from"] = args.created_from
        if args.created_to is not None:
            filters["created_to"] = args.created_to
    else:
        kind, name = WindowKind.CREATED, "created"
    start = getattr(args, f"{name}_from") or 0
    given_end = getattr(args, f"{name}_to")
    end = given_end if given_end is not None else upper
    if end < start:
        ends = (
            f"--{name}-to ({iso_seconds(end)})"
            if given_end is not None
            else f"the API's now minus --settle-seconds ({iso_seconds(end)})"
        )
        raise ConfigError(f"--{name}-from ({iso_seconds(start)}) is after {ends}")
    return Window(kind, start, end), filters


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
    """stdout, or a temporary file beside ``path`` renamed onto it only on success (any
    exception, Ctrl-C included, removes it: no half export ever sits at ``path``)."""
    if path is None or path == "-":
        yield None if optional else sys.stdout
        return
    directory, name = os.path.split(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
        "w", encoding="utf-8", dir=directory, prefix=f".{name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)  # as open() would have made it, not 0600
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
