"""Reading ``version`` as a consumer may (issue 34, ``connector.core.versions``): a
meeting's life (from its SNAPSHOT or CREATED) starts at a version taken from the clock and
steps by 1; versions never repeat, across lives too."""

from __future__ import annotations

from typing import Any

_BIRTHS = ("SNAPSHOT", "CREATED")


def numbered(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(change type, number within its life, 1 for the SNAPSHOT or CREATED) of one
    meeting's events, in order; asserts that versions strictly increase and step by 1
    within each life."""
    versions = [e["version"] for e in events]
    assert versions == sorted(set(versions)), f"versions repeat or go back: {versions}"
    result: list[tuple[str, int]] = []
    base: int | None = None
    for event in events:
        if event["change_type"] in _BIRTHS:
            base = event["version"] - 1
        assert base is not None, f"a life that does not begin with {_BIRTHS}: {versions}"
        number = event["version"] - base
        assert not result or event["change_type"] in _BIRTHS or number == result[-1][1] + 1, (
            f"a gap in a life: {versions}"
        )
        result.append((event["change_type"], number))
    return result


def assert_consecutive(events: list[dict[str, Any]]) -> None:
    """One meeting's events form one life: versions run on from the first without a gap."""
    versions = [e["version"] for e in events]
    assert versions == list(range(versions[0], versions[0] + len(versions))), versions
