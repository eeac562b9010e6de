"""Time windows over the export API and the watermarks that say what has been read (pure).

A :class:`Window` selects the rows whose created (or last-modified) second lies in
``[start, end]``, both bounds inclusive, in unix seconds. :class:`Watermarks` record, per
kind, the last second through which every row has been read and committed.

Planning is pure arithmetic: :func:`plan_incremental` turns watermarks and the API's "now"
into the next windows (behind a settle delay: the fresh seconds and a look-back over the
tail of the previous window, one window while they fit a page; without CREATED windows
when the API's last-modified times already show creations), :func:`follow_api_clock`
rewinds watermarks the API's clock went back below, and :func:`split` cuts a window that
holds more rows than one page into smaller ones, so that each part can be read by a single,
atomic request (see ``docs/architecture.md``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from connector.core.kinds import WindowKind

#: Parts of a split are sized to fill this share of a page, leaving room for growth.
FILL = 0.8
#: Default bound on the parts of one split: a full export over ``[0, now]`` is mostly
#: empty seconds, and every part costs one request even when empty.
MAX_PARTS = 16
#: A watermark found ahead of the API's clock with no step known (a restart, or polls that
#: failed for longer than the clock remembers a step) was committed at most this long after
#: the step: a poll commits watermarks on the new clock within a poll of seeing it.
UNSEEN_STEP_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Window:
    """Rows whose ``kind`` second lies in ``[start, end]`` (unix seconds, both inclusive)."""

    kind: WindowKind
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid window [{self.start}, {self.end}]")

    @property
    def seconds(self) -> int:
        """How many seconds the window spans."""
        return self.end - self.start + 1

    def __str__(self) -> str:
        return f"{self.kind.value}[{self.start},{self.end}]"


@dataclass(frozen=True, slots=True)
class Watermarks:
    """Per kind, the last second through which everything was read (-1: nothing yet)."""

    created_through: int = -1
    modified_through: int = -1

    def through(self, kind: WindowKind) -> int:
        """The watermark of ``kind``."""
        return self.created_through if kind is WindowKind.CREATED else self.modified_through


@dataclass(frozen=True, slots=True)
class IncrementalPlan:
    """The next windows of an incremental cycle.

    ``fresh`` windows end at the upper bound and move the watermarks; they are read and
    committed first. ``lookback`` windows re-read what was read before and never move a
    watermark: the overlap (when it is not part of the fresh window) and, after the API's
    clock went back, the seconds beyond the upper bound that rows written before the step
    may carry.

    ``creations_in_modified``: no CREATED window is planned, because the API stamps a new
    meeting's last-modified time at its creation (``MEETINGS_CDC_CREATED_WINDOWS``): the
    MODIFIED window then sees every creation, and the CREATED watermark follows the
    MODIFIED one (:func:`advance`).
    """

    fresh: list[Window]
    lookback: list[Window]
    creations_in_modified: bool = False

    @property
    def windows(self) -> list[Window]:
        """Every window of the plan, fresh ones first."""
        return [*self.fresh, *self.lookback]


def plan_incremental(
    watermarks: Watermarks,
    api_now: int,
    settle_seconds: int,
    overlap_seconds: int,
    ahead: int | None = None,
    *,
    created_windows: bool = True,
    fused: bool = True,
) -> IncrementalPlan:
    """The next windows: per kind (CREATED unless ``created_windows`` is False, then
    MODIFIED), together they read ``[max(0, through + 1 - overlap), api_now - settle]``.

    The upper bound stays ``settle_seconds`` behind the API's clock so that writes landing
    late in a second are not missed, and the overlap re-reads the tail of the previous
    window (a row stamped with a second already read, but written after it was read, is
    caught there). ``fused``: the overlap and the fresh seconds are one fresh window, one
    request while they fit a page (re-reading is idempotent: classification compares
    content); otherwise the fresh window is ``[through + 1, api_now - settle]``, committed
    before the overlap is read as a look-back window (when the overlap holds pages of rows,
    a new change then does not wait for them). Should the API's clock have gone back below
    a watermark, only the part of the overlap before the bound is read; a window that would
    be empty (start after end) is left out.

    ``ahead`` (see :class:`Followed`): after the API's clock went back, the last second rows
    written before the step may carry; the seconds after the upper bound up to it are read
    as look-back windows too (they never move a watermark: writes after the step will land
    in them once the clock catches up).
    """
    if settle_seconds < 0 or overlap_seconds < 0:
        raise ValueError("settle_seconds and overlap_seconds must be >= 0")
    upper = api_now - settle_seconds
    kinds = (WindowKind.CREATED, WindowKind.MODIFIED) if created_windows else (WindowKind.MODIFIED,)
    fresh: list[Window] = []
    lookback: list[Window] = []
    for kind in kinds:
        through = watermarks.through(kind)
        start = max(0, through + 1 - overlap_seconds)
        if fused:
            if upper >= start:
                fresh.append(Window(kind, start, upper))
            continue
        if upper >= through + 1:
            fresh.append(Window(kind, through + 1, upper))
        end = min(through, upper)
        if end >= start:
            lookback.append(Window(kind, start, end))
    if ahead is not None:
        for kind in kinds:
            start = max(upper, watermarks.through(kind)) + 1
            if ahead >= start:
                lookback.append(Window(kind, start, ahead))
    return IncrementalPlan(fresh, lookback, creations_in_modified=not created_windows)


@dataclass(frozen=True, slots=True)
class Followed:
    """Watermarks that follow the API's clock (:func:`follow_api_clock`), and ``ahead``: the
    last second that rows written before a step back may carry, when some lie ahead of the
    new clock (None otherwise)."""

    watermarks: Watermarks
    ahead: int | None = None


def follow_api_clock(
    watermarks: Watermarks,
    api_now: int,
    settle_seconds: int,
    overlap_seconds: int,
    step: tuple[int, int] | None = None,
    committed_at: int | None = None,
) -> Followed:
    """Watermarks that the API's clock has not gone back below (design 4.10).

    A watermark beyond ``api_now - settle`` says the API's clock went back (an NTP
    correction, a failover): the writes since carry seconds at or below the watermark and
    windows planned from it would never read them. Such a watermark is rewound to the new
    ``api_now - settle - overlap``, and to before the step's floor (``step`` is
    ``(floor, ceiling)``: the API time every write since a recently detected step carries
    at least, and the old clock's time when it was detected: ``ApiClock.step_floor`` and
    ``step_ceiling``) when that is earlier. A watermark at or after the floor is rewound to
    it too, even when the clock has passed it again by the time the step was detected.
    While the step is remembered every poll re-reads from it: that costs requests, never
    events, because classification compares content.

    Rows written just before the step carry seconds up to the old watermark or the
    ceiling, ahead of the new clock; ``ahead`` names the last of them, for
    :func:`plan_incremental` to read beyond the upper bound.

    Without a step (the process that saw it was restarted before it committed watermarks on
    the new clock, or its polls failed until the step was forgotten), ``committed_at`` (the
    second on the API's clock now at which the watermarks were committed, None if unknown)
    bounds the step from below: the writes since it carry at least ``committed_at -
    UNSEEN_STEP_SECONDS``, and a watermark ahead of the clock is rewound to before that
    (rewinding to the overlap alone skipped the writes between the step and the restart).
    Rows written before such a step carry at most the old clock's time then, the watermark
    plus the time since the commit (and the settle delay, and the margin for the cycle that
    planned it): ``ahead`` reaches that far.
    """
    upper = api_now - settle_seconds
    target = upper - overlap_seconds
    floor = None if step is None else step[0]
    newest = max(watermarks.created_through, watermarks.modified_through)
    ahead = newest
    if step is not None:
        ahead = max(ahead, step[1])
    if floor is not None:
        target = min(target, floor - 1)
    elif committed_at is not None and newest > upper:
        target = min(target, committed_at - UNSEEN_STEP_SECONDS - 1)
        since = max(0, api_now - committed_at)
        ahead = newest + since + settle_seconds + 1 + UNSEEN_STEP_SECONDS
    target = max(-1, target)
    created, modified = watermarks.created_through, watermarks.modified_through
    if created > upper or (floor is not None and created >= floor):
        created = min(created, target)
    if modified > upper or (floor is not None and modified >= floor):
        modified = min(modified, target)
    unchanged = (created, modified) == (watermarks.created_through, watermarks.modified_through)
    followed = watermarks if unchanged else Watermarks(created, modified)
    return Followed(followed, ahead if ahead > upper else None)


def advance(
    watermarks: Watermarks, window: Window, *, creations_in_modified: bool = False
) -> Watermarks:
    """Watermarks after ``window`` was read completely; they never move backwards.

    A window starting beyond ``through + 1`` would leave a gap, so it cannot move the
    watermark: that is a planning bug, reported loudly.

    ``creations_in_modified`` (see :class:`IncrementalPlan`): the API stamps last-modified
    at creation, so a meeting created at second ``c`` carries a last-modified second of at
    least ``c``: MODIFIED windows, which cover every second without a gap, have read it
    or will read it (it was changed after the window was read and carries a later second).
    The CREATED watermark then follows the MODIFIED one.
    """
    through = watermarks.through(window.kind)
    if window.start > through + 1:
        raise ValueError(f"window {window} leaves a gap after watermark {through}")
    new = max(through, window.end)
    if window.kind is WindowKind.CREATED:
        return Watermarks(new, watermarks.modified_through)
    created = max(watermarks.created_through, new) if creations_in_modified else None
    return Watermarks(
        watermarks.created_through if created is None else created,
        new,
    )


def split(
    window: Window,
    total: int,
    per_page: int,
    sample: Sequence[int] = (),
    max_parts: int = MAX_PARTS,
) -> list[Window]:
    """Cut ``window`` (holding ``total`` rows) into 2..``max_parts`` contiguous parts.

    The parts cover the window exactly, in ascending order, each strictly smaller. They are
    sized from ``total`` so that each is expected to fit ``FILL`` of a page. ``sample``
    (seconds of rows seen in the window, e.g. its first page) narrows the cut to the range
    the rows were seen in: the seconds before and after it become one part each, which
    costs one cheap request when empty. The sample may be biased (a first page sorted by
    id is the oldest rows), so it only places cuts; the reader recurses into any part that
    still holds more than a page.
    """
    if window.start == window.end:
        raise ValueError(f"cannot split the one-second window {window}")
    if per_page < 1 or max_parts < 2:
        raise ValueError("per_page must be >= 1 and max_parts >= 2")
    wanted = min(max_parts, max(2, math.ceil(total / (per_page * FILL))))
    inside = sorted(s for s in sample if window.start <= s <= window.end)
    lo, hi = window.start, window.end
    cuts: set[int] = set()  # a cut at c starts a new part at second c
    if len(inside) >= 2 and wanted >= 4:
        lo, hi = inside[0], inside[-1]
        if lo > window.start:
            cuts.add(lo)
            wanted -= 1
        if hi < window.end:
            cuts.add(hi + 1)
            wanted -= 1
    span = hi - lo + 1
    pieces = min(wanted, span)
    for i in range(1, pieces):
        cuts.add(lo + (span * i) // pieces)
    cuts.discard(window.start)
    if not cuts:  # one-second inner range at the window's edge: still split the window
        cuts.add(window.start + window.seconds // 2)
    bounds = [window.start, *sorted(cuts), window.end + 1]
    return [Window(window.kind, a, b - 1) for a, b in itertools.pairwise(bounds)]


def expected_rows(parts: Sequence[Window], total: int, sample: Sequence[int] = ()) -> list[float]:
    """Rows each part is expected to hold: ``total`` shared by the sample, else by width."""
    inside = [s for s in sample if parts and parts[0].start <= s <= parts[-1].end]
    if inside:
        counts = [sum(1 for s in inside if p.start <= s <= p.end) for p in parts]
        return [total * c / len(inside) for c in counts]
    seconds = sum(p.seconds for p in parts)
    return [total * p.seconds / seconds for p in parts]
