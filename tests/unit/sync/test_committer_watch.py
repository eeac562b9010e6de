"""``Committer.watch``: concerns watch side by side (a pass and a delete check)."""

from __future__ import annotations

from types import SimpleNamespace

from connector.sync.committer import Committer


def test_a_watch_ending_leaves_the_other_concerns_watch_in_place():
    """Found by the chaos run: two empty sets are equal, and removing by equality took the
    other concern's set: the pass stopped seeing polling's commits, and its own watch then
    failed to end (ValueError), crashing the event."""
    to = SimpleNamespace(event_id=1)
    committer = Committer(None, None, to, None, None, None, api_now=lambda: 0.0)  # type: ignore[arg-type]
    with committer.watch() as pass_watch:
        with committer.watch() as check_watch:
            assert pass_watch == check_watch  # equal, not the same
        for touched in committer._watchers:  # what a commit by polling does
            touched.add(7)
        assert pass_watch == {7}
        assert check_watch == set()
    assert committer._watchers == []
