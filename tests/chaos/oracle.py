"""The chaos suite's oracle: the simulator's ground truth against what a consumer saw (pure).

Inputs are plain JSON values: the simulator's ``GET /admin/history`` and ``GET /admin/meetings``
answers, and the change events a ``read_committed`` consumer decoded (in the order it read
them: one meeting's events share a partition, so their order is the publish order).

The guarantee judged is DESIGN.md problem 8: exactly one event per *observed* version. Polling
cannot see a version that was replaced before any read reached it, so "lost" is defined by
what a healthy connector must have seen:

- the final version of every live meeting must be the ``after`` of its last event, and a
  deleted meeting that was ever published must end with DELETED (reconciliation ran);
- every other version must have an event if a whole incremental cycle ran while it was
  current and after it had settled: ``Timing.cycles`` holds (A, B), the commit times of two
  consecutive committed cycles of one connector process; the second began after A, so it read
  every window up to A minus the settle delay (and one second for the ``Date`` header's
  resolution) while the version was current, if that was the case until B;
- versions of one meeting are numbered 1..n without gap (a gap is a lost event).

"duplicated": the same version number twice, or two events whose ``after`` is the same
upstream version (same content, same second), or one going back to an older version.
"misclassified": ``change_type``/``changed_fields`` differ from ``classify(before, after)``
recomputed, ``before`` is not the previous event's ``after``, or a meeting that existed before
the connector first started does not begin with SNAPSHOT. "phantom": an ``after`` that is no
version the API ever had, or DELETED for a meeting that was never deleted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.core.changes import classify
from connector.core.model import Meeting, Participant, freeze_extra

Json = Mapping[str, Any]
#: Meeting-level upstream fields the connector keeps in ``Meeting.extra``.
MEETING_EXTRA = ("title", "meeting_type", "notes", "duration")


@dataclass(frozen=True, slots=True)
class Timing:
    """What the oracle needs to know about the run's timing (API-clock unix seconds)."""

    settle: float
    end: float
    cycles: tuple[tuple[float, float], ...] = ()
    snapshot_before: float | None = None


@dataclass(slots=True)
class Verdict:
    """Violations found, one human-readable line each; all lists empty means correct."""

    meetings: int = 0
    upstream_versions: int = 0
    published: int = 0
    must_observe: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    misclassified: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was lost, duplicated, misclassified or invented."""
        return not (self.lost or self.duplicated or self.misclassified or self.phantom)

    def summary(self, limit: int = 8) -> str:
        """The violations, at most ``limit`` of each kind."""
        lines = []
        for name in ("lost", "duplicated", "misclassified", "phantom"):
            found: list[str] = getattr(self, name)
            if found:
                lines.append(f"{name} ({len(found)}):")
                lines.extend(f"  {line}" for line in found[:limit])
        return "\n".join(lines) or "no violation"


# --- normalised content ---------------------------------------------------------------------


def seconds(iso: str) -> int:
    """Unix seconds of an ISO-8601 UTC timestamp as ``decode_change`` writes it."""
    return int(datetime.fromisoformat(iso).timestamp())


def content_of_event_meeting(meeting: Json) -> tuple[Any, ...]:
    """The comparable content of a ``Meeting`` in a decoded change event."""
    extra = meeting.get("extra") or {}
    return (
        meeting["status"],
        seconds(meeting["start_at"]),
        seconds(meeting["end_at"]),
        meeting["location"],
        seconds(meeting["created_at"]),
        seconds(meeting["modified_at"]),
        tuple((p["account_id"], p["role"], p["status"]) for p in meeting["participants"]),
        tuple(extra.get(key) for key in MEETING_EXTRA),
    )


def content_of_admin_meeting(meeting: Json) -> tuple[Any, ...]:
    """The comparable content of a meeting in the simulator's admin API."""
    return (
        meeting["status"],
        meeting["start"],
        meeting["end"],
        meeting["location"],
        meeting["created_at"],
        meeting["updated_at"],
        tuple(
            (p["account_id"], p["role"], p["status"])
            for p in sorted(meeting["participants"], key=lambda p: p["account_id"])
        ),
        (meeting["title"], meeting["meeting_type"], meeting["notes"], meeting["duration_minutes"]),
    )


def meeting_value(meeting: Json) -> Meeting:
    """A decoded event's meeting as the connector's ``Meeting`` (to recompute classify)."""

    def millis(key: str) -> int:
        return int(datetime.fromisoformat(meeting[key]).timestamp() * 1000)

    return Meeting(
        event_id=meeting["event_id"],
        meeting_id=meeting["meeting_id"],
        status=meeting["status"],
        start_at=millis("start_at"),
        end_at=millis("end_at"),
        location=meeting["location"],
        created_at=millis("created_at"),
        modified_at=millis("modified_at"),
        participants=tuple(
            Participant(p["account_id"], p["role"], p["status"], freeze_extra(p["extra"]))
            for p in meeting["participants"]
        ),
        extra=freeze_extra(meeting["extra"]),
    )


# --- the judgement ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Version:
    at: int
    content: tuple[Any, ...] | None  # None: the deletion


def judge(
    history: Iterable[Json],
    events: Sequence[Json],
    truth: Iterable[Json],
    timing: Timing,
) -> Verdict:
    """Compare one event's ground truth with the change events a consumer read."""
    versions: dict[int, list[_Version]] = defaultdict(list)
    for entry in sorted(history, key=lambda e: (e["meeting_id"], e["version"])):
        meeting = entry["meeting"]
        content = None if meeting is None else content_of_admin_meeting(meeting)
        versions[entry["meeting_id"]].append(_Version(entry["at"], content))
    final = {m["meeting_id"]: content_of_admin_meeting(m) for m in truth}
    published: dict[int, list[Json]] = defaultdict(list)
    for event in events:
        published[event["meeting_id"]].append(event)

    verdict = Verdict(
        meetings=len(versions),
        upstream_versions=sum(1 for vs in versions.values() for v in vs if v.content is not None),
        published=len(events),
    )
    for meeting_id in sorted(versions.keys() | published.keys()):
        _judge_meeting(
            verdict,
            meeting_id,
            versions.get(meeting_id, []),
            published.get(meeting_id, []),
            final.get(meeting_id),
            timing,
        )
    return verdict


def _judge_meeting(
    verdict: Verdict,
    meeting_id: int,
    versions: list[_Version],
    events: list[Json],
    final: tuple[Any, ...] | None,
    timing: Timing,
) -> None:
    where = f"meeting {meeting_id}"
    if not versions:
        verdict.phantom.append(f"{where}: {len(events)} event(s) of a meeting the API never had")
        return
    _check_numbering(verdict, where, events)
    _check_classification(verdict, where, events, versions, timing)
    mapped = _map_to_versions(verdict, where, events, versions)
    deleted = versions[-1].content is None
    last = events[-1] if events else None
    if final is not None:
        if last is None or last["after"] is None:
            verdict.lost.append(f"{where}: final version (at {versions[-1].at}) never published")
        elif content_of_event_meeting(last["after"]) != final:
            verdict.lost.append(
                f"{where}: last event (v{last['version']}) is not the final version "
                f"(at {versions[-1].at})"
            )
    elif deleted and last is not None and last["change_type"] != "DELETED":
        verdict.lost.append(f"{where}: deleted upstream, last event is {last['change_type']}")
    for index, version in enumerate(versions):
        if version.content is None:
            continue
        until = versions[index + 1].at if index + 1 < len(versions) else timing.end
        if not _must_observe(version.at, until, timing):
            continue
        verdict.must_observe += 1
        if index not in mapped and not (final is not None and index == len(versions) - 1):
            verdict.lost.append(
                f"{where}: version {index + 1} current from {version.at} to {until:.0f} "
                "while the connector polled, never published"
            )


def _must_observe(at: int, until: float, timing: Timing) -> bool:
    # Current from within second ``at`` until second ``until`` began. A cycle that began after
    # A read up to its api_now - settle, and its api_now (the Date header, whole seconds, plus
    # time since) lags the API's clock by less than a second: A >= at + settle + 2 suffices.
    return any(start >= at + timing.settle + 2 and end < until for start, end in timing.cycles)


def _check_numbering(verdict: Verdict, where: str, events: list[Json]) -> None:
    # A life (SNAPSHOT or CREATED onwards) starts at a version from the clock and steps by
    # 1 (connector.core.versions): a gap inside a life is a lost event.
    seen: set[int] = set()
    previous = 0
    expected: int | None = None
    missing: list[str] = []
    for event in events:
        number = event["version"]
        if number in seen:
            verdict.duplicated.append(f"{where}: version number {number} published twice")
        elif number < previous:
            verdict.phantom.append(f"{where}: version {number} after version {previous}")
        elif (
            expected is not None
            and number > expected
            and event["change_type"] not in ("SNAPSHOT", "CREATED")
        ):
            missing.append(str(expected) if number == expected + 1 else f"{expected}..{number - 1}")
        seen.add(number)
        previous = max(previous, number)
        expected = previous + 1
    if missing:
        verdict.lost.append(f"{where}: version numbers {', '.join(missing)} never published (gap)")


def _check_classification(
    verdict: Verdict, where: str, events: list[Json], versions: list[_Version], timing: Timing
) -> None:
    previous_after: Json | None = None
    previous_number = 0
    for event in events:
        label = f"{where} v{event['version']} {event['change_type']}"
        before, after = event["before"], event["after"]
        if event["version"] == previous_number + 1 and before != previous_after:
            verdict.misclassified.append(f"{label}: before is not the previous event's after")
        snapshot = event["source"]["window_kind"] == "snapshot"
        try:
            change = classify(
                None if before is None else meeting_value(before),
                None if after is None else meeting_value(after),
                snapshot=snapshot,
            )
        except (KeyError, TypeError, ValueError) as exc:
            verdict.misclassified.append(f"{label}: cannot recompute: {exc!r}")
            change = None
        else:
            if change is None:
                verdict.misclassified.append(f"{label}: classify() finds no change")
            elif (change.change_type.value, list(change.changed_fields)) != (
                event["change_type"],
                list(event["changed_fields"]),
            ):
                verdict.misclassified.append(
                    f"{label} {event['changed_fields']}: expected {change.change_type.value} "
                    f"{list(change.changed_fields)}"
                )
        previous_after, previous_number = after, event["version"]
    if (
        events
        and timing.snapshot_before is not None
        and versions[0].at < timing.snapshot_before
        and events[0]["change_type"] != "SNAPSHOT"
    ):
        verdict.misclassified.append(
            f"{where}: existed before the connector started, first event is "
            f"{events[0]['change_type']}, not SNAPSHOT"
        )


def _map_to_versions(
    verdict: Verdict, where: str, events: list[Json], versions: list[_Version]
) -> set[int]:
    """Map each event to the upstream version it carries, in order; report the rest."""
    mapped: set[int] = set()
    last = -1
    for event in events:
        label = f"{where} v{event['version']} {event['change_type']}"
        after = event["after"]
        content = None if after is None else content_of_event_meeting(after)
        if content is None and event["change_type"] != "DELETED":
            verdict.phantom.append(f"{label}: no after")
            continue
        later = [i for i in range(last + 1, len(versions)) if versions[i].content == content]
        if later:
            last = later[0]
            mapped.add(last)
            continue
        earlier = [i for i in range(last + 1) if versions[i].content == content]
        if earlier:
            verdict.duplicated.append(f"{label}: version {earlier[-1] + 1} published again")
        elif content is None:
            verdict.phantom.append(f"{label}: the meeting was never deleted")
        else:
            verdict.phantom.append(f"{label}: after is no version the API had")
    return mapped


def dead_letter_problems(letters: Iterable[Json], injected_bad_rows: int) -> list[str]:
    """Dead letters that no injected bad row explains (see the simulator's ``bad_row_rate``)."""
    letters = list(letters)
    problems = []
    if len(letters) > injected_bad_rows:
        problems.append(
            f"{len(letters)} dead letters but only {injected_bad_rows} bad rows injected"
        )
    for letter in letters:
        if not _is_injected_corruption(letter.get("raw", "")):
            problems.append(f"dead letter of a row the simulator did not corrupt: {letter!r:.200}")
    return problems


def _is_injected_corruption(raw: str) -> bool:
    try:
        row = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(row, dict):
        return False
    return (
        row.get("account_id") == "x"
        or "start_time" not in row
        or ("meeting_id" in row and row["meeting_id"] is None)
        or row.get("start_time") == "31/02/2024 25:61"
    )


__all__ = ["Timing", "Verdict", "dead_letter_problems", "judge"]
