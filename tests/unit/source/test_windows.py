"""The window planner: coverage without gaps, exact splits, watermarks that only move forward."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.kinds import WindowKind
from connector.source.windows import (
    MAX_PARTS,
    UNSEEN_STEP_SECONDS,
    Followed,
    Watermarks,
    Window,
    advance,
    expected_rows,
    follow_api_clock,
    plan_incremental,
    split,
)

NOW = 1_700_000_000
kinds = st.sampled_from(list(WindowKind))
seconds = st.integers(min_value=0, max_value=2_000_000_000)


@st.composite
def windows(draw: st.DrawFn, min_seconds: int = 1) -> Window:
    start = draw(seconds)
    width = draw(st.integers(min_value=min_seconds - 1, max_value=10**9))
    return Window(draw(kinds), start, start + width)


def test_window_rejects_reversed_or_negative_bounds() -> None:
    with pytest.raises(ValueError):
        Window(WindowKind.CREATED, 10, 9)
    with pytest.raises(ValueError):
        Window(WindowKind.CREATED, -1, 9)


def test_fresh_watermarks_plan_from_zero() -> None:
    planned = plan_incremental(Watermarks(-1, -1), NOW, settle_seconds=2, overlap_seconds=5)
    assert planned.fresh == [
        Window(WindowKind.CREATED, 0, NOW - 2),
        Window(WindowKind.MODIFIED, 0, NOW - 2),
    ]
    assert planned.lookback == []


def test_one_window_per_kind_reads_the_overlap_and_the_fresh_seconds_together() -> None:
    marks = Watermarks(created_through=NOW - 100, modified_through=NOW - 50)
    planned = plan_incremental(marks, NOW, settle_seconds=2, overlap_seconds=5)
    assert planned.fresh == [
        Window(WindowKind.CREATED, NOW - 104, NOW - 2),
        Window(WindowKind.MODIFIED, NOW - 54, NOW - 2),
    ]
    assert planned.windows == planned.fresh
    assert not planned.creations_in_modified


def test_unfused_the_fresh_seconds_come_first_and_the_overlap_is_a_look_back() -> None:
    marks = Watermarks(created_through=NOW - 100, modified_through=NOW - 50)
    planned = plan_incremental(marks, NOW, 2, 5, fused=False)
    assert planned.fresh == [
        Window(WindowKind.CREATED, NOW - 99, NOW - 2),
        Window(WindowKind.MODIFIED, NOW - 49, NOW - 2),
    ]
    assert planned.lookback == [
        Window(WindowKind.CREATED, NOW - 104, NOW - 100),
        Window(WindowKind.MODIFIED, NOW - 54, NOW - 50),
    ]


def test_without_created_windows_a_quiet_poll_is_one_window() -> None:
    marks = Watermarks(NOW - 7, NOW - 7)
    planned = plan_incremental(marks, NOW, 2, 5, created_windows=False)
    assert planned.windows == [Window(WindowKind.MODIFIED, NOW - 11, NOW - 2)]
    assert planned.creations_in_modified
    # the CREATED watermark follows the MODIFIED one (never past it)
    assert advance(marks, planned.windows[0], creations_in_modified=True) == Watermarks(
        NOW - 2, NOW - 2
    )
    # ... but never backwards
    ahead = Watermarks(NOW - 1, NOW - 7)
    assert advance(ahead, planned.windows[0], creations_in_modified=True) == Watermarks(
        NOW - 1, NOW - 2
    )


def test_no_window_when_the_bound_is_before_the_start() -> None:
    marks = Watermarks(NOW, NOW)
    assert plan_incremental(marks, NOW, settle_seconds=2, overlap_seconds=0).windows == []


def test_the_overlap_never_reaches_past_the_upper_bound() -> None:
    """The API's clock went back: nothing fresh, and the overlap stops at the bound."""
    marks = Watermarks(NOW, NOW)
    planned = plan_incremental(marks, NOW - 1, settle_seconds=2, overlap_seconds=5)
    assert planned.fresh == [
        Window(WindowKind.CREATED, NOW - 4, NOW - 3),
        Window(WindowKind.MODIFIED, NOW - 4, NOW - 3),
    ]
    assert all(advance(marks, w) == marks for w in planned.windows)


@given(
    created=st.integers(min_value=-1, max_value=NOW),
    modified=st.integers(min_value=-1, max_value=NOW),
    steps=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20),
    settle=st.integers(min_value=0, max_value=30),
    overlap=st.integers(min_value=0, max_value=30),
    created_windows=st.lists(st.booleans(), min_size=20, max_size=20),
    fused=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_successive_plans_cover_every_second_from_the_overlap_to_the_bound(
    created: int,
    modified: int,
    steps: list[int],
    settle: int,
    overlap: int,
    created_windows: list[bool],
    fused: list[bool],
) -> None:
    """Reading each plan (with or without CREATED windows, fused or not, switching at any
    poll) and advancing on its fresh windows: per kind, the plan reads exactly every second
    from the overlap before its watermark to the upper bound, once; fused, that is one
    window; look-back windows never move a watermark; watermarks never pass the bound nor
    move back; every second up to the last bound is read; and without CREATED windows the
    CREATED watermark is the MODIFIED one (creations are read through last-modified)."""
    marks = Watermarks(created, modified)
    now = max(created, modified) + settle
    fresh_read: list[Window] = []
    for step, with_created, fuse in zip(steps, created_windows, fused, strict=False):
        now += step
        upper = now - settle
        plan = plan_incremental(
            marks, now, settle, overlap, created_windows=with_created, fused=fuse
        )
        assert plan.creations_in_modified is not with_created
        kinds = {w.kind for w in plan.windows}
        assert (WindowKind.CREATED in kinds) <= with_created
        for kind in kinds:
            start = max(0, marks.through(kind) + 1 - overlap)
            read = sorted((w for w in plan.windows if w.kind is kind), key=lambda w: w.start)
            assert read[0].start == start
            assert read[-1].end == upper
            for a, b in itertools.pairwise(read):
                assert b.start == a.end + 1  # exactly, once: no gap, no second twice
            if fuse:
                assert [w for w in plan.windows if w.kind is kind] == [Window(kind, start, upper)]
        for window in plan.lookback:
            assert advance(marks, window) == marks
        before = marks
        for window in plan.fresh:
            assert window.end == upper
            marks = advance(marks, window, creations_in_modified=plan.creations_in_modified)
            if window.kind is WindowKind.MODIFIED:
                fresh_read.append(window)
        for kind in WindowKind:
            assert marks.through(kind) >= before.through(kind)  # only forward
            assert marks.through(kind) <= max(before.through(kind), upper)  # never past
        if not with_created and plan.fresh:
            assert marks.created_through == max(before.created_through, marks.modified_through)
    covered = modified
    for window in fresh_read:
        assert window.start <= covered + 1  # no gap
        covered = max(covered, window.end)
    assert covered == max(modified, now - settle)


@given(
    through=st.integers(min_value=-1, max_value=NOW),
    late=st.integers(min_value=0, max_value=30),
    overlap=st.integers(min_value=0, max_value=30),
    settle=st.integers(min_value=0, max_value=5),
)
def test_a_row_landing_late_in_a_second_already_read_is_caught_by_the_overlap(
    through: int, late: int, overlap: int, settle: int
) -> None:
    """A row stamped with second ``through - late`` (read and committed already) but
    written only afterwards is in the next poll's window when ``late < overlap``."""
    second = through - late
    plan = plan_incremental(Watermarks(through, through), through + settle + 1, settle, overlap)
    caught = any(w.start <= second <= w.end for w in plan.windows if w.kind is WindowKind.MODIFIED)
    assert caught == (second >= 0 and late < overlap)


def test_watermarks_the_api_clock_is_not_behind_are_kept() -> None:
    marks = Watermarks(NOW - 2, NOW - 3)
    assert follow_api_clock(marks, NOW, 2, 5) == Followed(marks)
    assert follow_api_clock(marks, NOW, 2, 5).watermarks is marks


def test_a_step_detected_late_still_rewinds_to_it() -> None:
    # The step went back 3 s, but by the time it was detected the API's clock had passed
    # the watermarks again: writes since then sit in seconds already read.
    marks = Watermarks(NOW - 2, NOW - 2)
    followed = follow_api_clock(marks, NOW + 5, 2, 0, step=(NOW - 5, NOW + 1))
    assert followed == Followed(Watermarks(NOW - 6, NOW - 6))  # nothing ahead of the clock


def test_a_clock_step_back_rewinds_the_watermarks_to_the_step() -> None:
    marks = Watermarks(NOW - 2, NOW - 2)
    now = NOW - 120  # the API's clock went back two minutes
    # after a restart the step is not known: the clock is behind the watermarks
    assert follow_api_clock(marks, now, 2, 5) == Followed(Watermarks(now - 7, now - 7), NOW - 2)
    followed = follow_api_clock(marks, now, 2, 5, step=(now - 9, NOW))
    assert followed == Followed(Watermarks(now - 10, now - 10), ahead=NOW)
    plan = plan_incremental(followed.watermarks, now, 2, 5, followed.ahead)
    # rows stamped before the step, ahead of the new clock, are read once more (look-back)
    assert Window(WindowKind.MODIFIED, now - 1, NOW) in plan.lookback


@given(
    through=st.integers(0, 2_000_000_000),
    back=st.integers(1, 100_000),
    elapsed=st.integers(0, 600),
    settle=st.integers(0, 10),
    overlap=st.integers(0, 30),
    detected_late=st.integers(0, 60),
)
def test_after_a_step_back_every_second_written_since_is_read_by_polling(
    through: int, back: int, elapsed: int, settle: int, overlap: int, detected_late: int
) -> None:
    """The API's clock steps back to ``stepped``; its floor is known; polls then plan from
    the followed watermarks: every second from the step on is covered once it settles."""
    stepped = max(0, through + settle - back)
    now = stepped + detected_late
    marks = Watermarks(through, through)
    covered: set[int] = set()
    for poll in range(0, elapsed + 1, 5):
        marks = follow_api_clock(
            marks, now + poll, settle, overlap, step=(stepped, through + settle)
        ).watermarks
        plan = plan_incremental(marks, now + poll, settle, overlap)
        for window in plan.fresh:
            marks = advance(marks, window)
            if window.kind is WindowKind.MODIFIED:
                covered.update(range(window.start, window.end + 1))
    settled = now + (elapsed // 5) * 5 - settle
    assert set(range(stepped, settled + 1)) <= covered


def test_advance_refuses_a_gap_and_never_moves_back() -> None:
    marks = Watermarks(100, 100)
    with pytest.raises(ValueError, match="gap"):
        advance(marks, Window(WindowKind.CREATED, 102, 200))
    assert advance(marks, Window(WindowKind.CREATED, 50, 80)) == marks
    assert advance(marks, Window(WindowKind.MODIFIED, 101, 150)) == Watermarks(100, 150)


@given(
    window=windows(min_seconds=2),
    total=st.integers(min_value=0, max_value=10**7),
    per_page=st.integers(min_value=1, max_value=500),
    sample=st.lists(seconds, max_size=60),
    max_parts=st.integers(min_value=2, max_value=64),
)
def test_split_covers_the_parent_exactly(
    window: Window, total: int, per_page: int, sample: list[int], max_parts: int
) -> None:
    sample = sample + [window.start + (s % window.seconds) for s in sample]
    parts = split(window, total, per_page, sample, max_parts)
    assert 2 <= len(parts) <= max_parts
    assert parts[0].start == window.start
    assert parts[-1].end == window.end
    for left, right in itertools.pairwise(parts):
        assert right.start == left.end + 1  # contiguous: no gap, no overlap
    for part in parts:
        assert part.kind is window.kind
        assert part.seconds < window.seconds  # strictly smaller: recursion terminates
    estimates = expected_rows(parts, total, sample)
    assert len(estimates) == len(parts)
    assert sum(estimates) == pytest.approx(total)


def test_split_is_sized_from_the_total() -> None:
    window = Window(WindowKind.MODIFIED, 0, 9_999)
    assert len(split(window, 900, 500)) == 3  # ceil(900 / 400)
    assert len(split(window, 10**6, 500)) == MAX_PARTS


def test_split_isolates_the_range_the_sample_was_seen_in() -> None:
    """A full export over [0, now] is mostly empty seconds: the cut goes where rows are."""
    window = Window(WindowKind.CREATED, 0, NOW)
    sample = list(range(NOW - 5_000, NOW - 1_000, 10))
    parts = split(window, 100_000, 500, sample)
    assert parts[0] == Window(WindowKind.CREATED, 0, NOW - 5_001)
    assert parts[-1] == Window(WindowKind.CREATED, NOW - 1_009, NOW)  # after the last seen
    inner = parts[1:-1]
    assert all(p.start >= NOW - 5_000 and p.end <= NOW - 1_010 for p in inner)
    assert len(parts) == MAX_PARTS


def test_split_of_two_seconds_and_a_same_second_sample() -> None:
    window = Window(WindowKind.CREATED, 10, 11)
    assert split(window, 10_000, 500, [11] * 50) == [
        Window(WindowKind.CREATED, 10, 10),
        Window(WindowKind.CREATED, 11, 11),
    ]
    with pytest.raises(ValueError, match="one-second"):
        split(Window(WindowKind.CREATED, 10, 10), 10_000, 500)


def test_expected_rows_follow_the_sample() -> None:
    parts = [Window(WindowKind.CREATED, 0, 9), Window(WindowKind.CREATED, 10, 19)]
    assert expected_rows(parts, 1000, [1, 2, 3, 15]) == [750, 250]
    assert expected_rows(parts, 1000) == [500, 500]


def test_after_a_restart_that_missed_the_step_the_watermarks_rewind_to_before_the_commit() -> None:
    """Issue 30 item 2: the process that saw the step was killed before it committed
    watermarks on the new clock; its successor knows no step, only that the watermarks are
    ahead of the clock, and when they were committed (``committed_at``, on the new clock).
    Rewound to the overlap alone, the writes between the step and the restart were skipped."""
    marks = Watermarks(NOW - 2, NOW - 2)  # committed on the old clock at NOW - 1
    committed_at = NOW - 1 - 120  # that commit on the new clock: it went back 120 s since
    now = committed_at + 6  # restarted 6 s after the commit
    followed = follow_api_clock(marks, now, 2, 5, committed_at=committed_at)
    rewound = committed_at - UNSEEN_STEP_SECONDS - 1
    assert followed.watermarks == Watermarks(rewound, rewound)
    # rows written before the step, up to the old clock's time then, are read once more
    assert followed.ahead == NOW - 2 + 6 + 2 + 1 + UNSEEN_STEP_SECONDS
    # watermarks the clock is not behind are kept, whenever they were committed
    assert follow_api_clock(Watermarks(now - 3, now - 3), now, 2, 5, committed_at=0) == Followed(
        Watermarks(now - 3, now - 3)
    )
