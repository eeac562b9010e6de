"""Liveness, readiness and per-event status of the running connector (pure logic).

The engine reports into a :class:`HealthState`; the HTTP server (``server.py``) only reads it.

- **live**: the main loop's heartbeat is fresh. Deliberately blind to Kafka and the API: an
  unreachable broker must not make Kubernetes restart every replica in a loop (it would not
  help, and a restart storm costs a state restore each time). Those show in readiness,
  metrics and alerts instead.
- **ready**: the state is restored, the producer initialised, every event has completed
  a cycle recently, and the replica is in the replicas' group (Kafka reachable). A replica
  out of the group for longer than an event may go without a commit is not ready, whether
  it owned events (the group took them when its session timed out: they are named, with
  their last commit) or was a standby (it could take nothing over).
- **status**: what each event is doing: watermarks, lag, last cycle, counts (JSON-ready).

No clock, no I/O: ``clock`` is injected and every query takes an optional ``now``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Clock = Callable[[], float]
Redact = Callable[[str], str]

#: Components that must report ready before the connector is.
COMPONENTS = ("state", "producer")


def live_max_age(poll_interval_seconds: float) -> float:
    """Oldest heartbeat that still counts as alive: 6 poll intervals, at least 30 s."""
    return max(30.0, 6.0 * poll_interval_seconds)


def ready_max_age(poll_interval_seconds: float) -> float:
    """Oldest successful cycle that still counts as ready: 10 poll intervals, at least 60 s.

    The same threshold as the ``MeetingsCdcStalled`` alert.
    """
    return max(60.0, 10.0 * poll_interval_seconds)


def _no_redaction(text: str) -> str:
    return text


@dataclasses.dataclass(slots=True)
class _EventHealth:
    cycles_ok: int = 0
    cycles_failed: int = 0
    consecutive_failures: int = 0
    last_cycle: dict[str, Any] | None = None
    last_success: dict[str, Any] | None = None
    last_success_at: float | None = None
    delete_check: str | None = None
    paused: bool = False
    paused_by: str | None = None


def _last_error(event: _EventHealth) -> str:
    """``"; last error: ..."`` when the event's last cycle failed (already redacted)."""
    cycle = event.last_cycle
    if cycle is None or cycle["ok"]:
        return ""
    error = cycle["detail"].get("error") if isinstance(cycle["detail"], dict) else None
    return f"; last error: {error}" if error else ""


class HealthState:
    """What the engine reports about itself, read by ``/healthz``, ``/readyz``, ``/status``.

    ``event_ids`` are the events this process syncs; each must complete a cycle within
    ``ready_after_seconds`` (default :func:`ready_max_age`) for the connector to be ready.
    The heartbeat may be at most ``live_after_seconds`` old (default :func:`live_max_age`);
    construction counts as the first beat, so a starting process is live. With ``idle_ok``
    (replicas: the group may give one no partition) owning no event does not make it unready.
    """

    def __init__(
        self,
        event_ids: Iterable[int],
        *,
        poll_interval_seconds: float,
        clock: Clock = time.time,
        live_after_seconds: float | None = None,
        ready_after_seconds: float | None = None,
        redact: Redact = _no_redaction,
        info: Mapping[str, object] | None = None,
        idle_ok: bool = False,
    ) -> None:
        if poll_interval_seconds <= 0:
            raise ValueError("poll_interval_seconds must be > 0")
        self._clock = clock
        self._idle_ok = idle_ok
        self._redact = redact
        self.poll_interval_seconds = poll_interval_seconds
        self.live_after_seconds = (
            live_max_age(poll_interval_seconds)
            if live_after_seconds is None
            else live_after_seconds
        )
        self.ready_after_seconds = (
            ready_max_age(poll_interval_seconds)
            if ready_after_seconds is None
            else ready_after_seconds
        )
        self._info = {str(k): self._json(v) for k, v in (info or {}).items()}
        self._started_at = clock()
        self._last_beat = self._started_at
        self._components = dict.fromkeys(COMPONENTS, False)
        self._events: dict[int, _EventHealth] = {}
        # Events the group took from this replica while it was out of the group, kept until
        # it is back (they still count for readiness: nothing runs them here, maybe nowhere).
        self._lost: dict[int, _EventHealth] = {}
        self._out_of_group_since: float | None = None
        self._group_detail = ""
        self.set_events(event_ids)

    # --- reports from the engine ----------------------------------------------------------

    def beat(self) -> None:
        """The main loop is alive; call on every iteration and during long steps (restore)."""
        self._last_beat = self._clock()

    def set_ready(self, component: str, ready: bool) -> None:
        """Mark ``component`` (``"state"`` or ``"producer"``) ready or not."""
        if component not in self._components:
            raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
        self._components[component] = ready

    def set_events(self, event_ids: Iterable[int]) -> None:
        """Set the events this process owns (keeps what is known of events it still owns,
        and of lost events it owns again)."""
        wanted = list(dict.fromkeys(event_ids))
        known = {**self._lost, **self._events}
        self._events = {e: known.get(e, _EventHealth()) for e in wanted}
        if self._out_of_group_since is None:
            self._lost = {}
        else:
            self._lost = {e: h for e, h in self._lost.items() if e not in self._events}

    def group_contact(self, in_group: bool, detail: str = "") -> None:
        """This replica entered (``in_group``) or left the replicas' group; ``detail`` says
        why it is out (the group coordinator's state, brokers down)."""
        if in_group:
            self._out_of_group_since = None
            self._group_detail = ""
            return
        if self._out_of_group_since is None:
            self._out_of_group_since = self._clock()
        self._group_detail = self._redact(detail)

    def events_lost(self, event_ids: Iterable[int]) -> None:
        """The group took ``event_ids`` from this replica without a handover (its session
        timed out). Call before :meth:`set_events` drops them: while the replica is out of
        the group they stay in readiness, by their last successful cycle."""
        for event_id in event_ids:
            if event_id in self._events:
                self._lost[event_id] = self._events[event_id]

    def cycle_finished(
        self, event_id: int, *, phase: str, ok: bool, detail: Mapping[str, object]
    ) -> None:
        """Record one finished cycle of ``event_id``.

        ``detail`` is what ``/status`` shows for it: watermarks, lag, counts, error... It is
        copied to JSON-ready values (dataclasses and enums included) and redacted now, so
        later changes to the caller's objects do not leak into the status.
        """
        now = self._clock()
        event = self._events.setdefault(event_id, _EventHealth())
        record: dict[str, Any] = {
            "phase": phase,
            "ok": ok,
            "finished_at": now,
            "detail": self._json(detail),
        }
        event.last_cycle = record
        if ok:
            event.cycles_ok += 1
            event.consecutive_failures = 0
            event.last_success = record
            event.last_success_at = now
        else:
            event.cycles_failed += 1
            event.consecutive_failures += 1

    def set_paused(self, event_id: int, *, paused: bool, by: str | None = None) -> None:
        """Whether the event is paused by a signal (``by``: its id): a paused event counts
        as ready, and ``/status`` shows it paused."""
        event = self._events.setdefault(event_id, _EventHealth())
        event.paused = paused
        event.paused_by = self._redact(by) if by else None

    def set_delete_check(self, event_id: int, how: str) -> None:
        """How the event's hard deletes are found (``/status``: its ``delete_check``)."""
        self._events.setdefault(event_id, _EventHealth()).delete_check = self._redact(how)

    # --- queries --------------------------------------------------------------------------

    def set_info(self, name: str, value: object) -> None:
        """Add ``name`` to the facts ``status()`` shows at its top (set at start-up)."""
        self._info[name] = self._json(value)

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def heartbeat_age(self, now: float | None = None) -> float:
        """Seconds since the last heartbeat."""
        return max(0.0, self._now(now) - self._last_beat)

    def live(self, now: float | None = None) -> bool:
        """Whether the main loop's heartbeat is fresher than ``live_after_seconds``."""
        return self.heartbeat_age(now) <= self.live_after_seconds

    def ready(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """Whether the connector is ready, and why (JSON-ready)."""
        now = self._now(now)
        reasons: list[str] = []
        if not self.live(now):
            reasons.append(f"main loop heartbeat is {self.heartbeat_age(now):.1f}s old")
        reasons.extend(
            f"{name} not ready" for name, is_ready in self._components.items() if not is_ready
        )
        events: dict[str, Any] = {}
        for event_id, event in self._events.items():
            age = None if event.last_success_at is None else max(0.0, now - event.last_success_at)
            # a paused event is idle on purpose (a signal): neither unready nor stalled
            recent = event.paused or (age is not None and age <= self.ready_after_seconds)
            events[str(event_id)] = {"ready": recent, "last_success_age_seconds": age}
            if event.paused:
                pass
            elif age is None:
                reasons.append(f"event {event_id}: no successful cycle yet{_last_error(event)}")
            elif not recent:
                reasons.append(
                    f"event {event_id}: last successful cycle {age:.1f}s ago "
                    f"(limit {self.ready_after_seconds:g}s)"
                )
        kafka = self._kafka_reason(now)
        if kafka:
            reasons.append(kafka)
        if not self._events and not self._idle_ok:
            reasons.append("no events assigned")
        ok = not reasons
        return ok, {
            "ready": ok,
            "reasons": reasons,
            "components": dict(self._components),
            "events": events,
        }

    def _kafka_reason(self, now: float) -> str:
        """Why this replica is not ready for being (or having been) out of the group, or ``""``.

        Lost events count until the assignment after rejoining says who runs them (until
        :meth:`set_events`), so the restore after an outage does not look like a standby.
        """
        lost: list[str] = []
        stale = False
        for event_id, event in self._lost.items():
            if event.last_success_at is None:
                lost.append(f"{event_id} (no successful cycle)")
                continue
            age = max(0.0, now - event.last_success_at)
            stale = stale or age > self.ready_after_seconds
            lost.append(f"{event_id} (last successful cycle {age:.1f}s ago)")
        since = self._out_of_group_since
        out_for = None if since is None else max(0.0, now - since)
        if not stale and (out_for is None or out_for <= self.ready_after_seconds):
            return ""
        if out_for is None:
            reason = "Kafka: back in the replicas' group, not assigned its events again yet"
        else:
            reason = (
                f"Kafka: out of the replicas' group for {out_for:.1f}s "
                f"(limit {self.ready_after_seconds:g}s; {self._group_detail or 'no detail'})"
            )
        if lost:
            reason += f"; events last owned here, taken by the group: {', '.join(lost)}"
        return reason

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Everything known, JSON-ready: liveness, readiness, and per event its last cycles."""
        now = self._now(now)
        is_ready, readiness = self.ready(now)
        events: dict[str, Any] = {}
        for event_id, event in self._events.items():
            events[str(event_id)] = {
                "ready": readiness["events"][str(event_id)]["ready"],
                "cycles_ok": event.cycles_ok,
                "cycles_failed": event.cycles_failed,
                "consecutive_failures": event.consecutive_failures,
                "last_success_age_seconds": readiness["events"][str(event_id)][
                    "last_success_age_seconds"
                ],
                "last_cycle": event.last_cycle,
                "last_successful_cycle": event.last_success,
                "delete_check": event.delete_check,
                "paused": event.paused,
                "paused_by": event.paused_by,
            }
        return {
            **self._info,
            "now": now,
            "started_at": self._started_at,
            "uptime_seconds": max(0.0, now - self._started_at),
            "live": self.live(now),
            "heartbeat_age_seconds": self.heartbeat_age(now),
            "ready": is_ready,
            "reasons": readiness["reasons"],
            "components": dict(self._components),
            "poll_interval_seconds": self.poll_interval_seconds,
            "owned_events": [int(e) for e in events],
            "in_group": self._out_of_group_since is None,
            "lost_events": [int(e) for e in self._lost],
            "events": events,
        }

    def _json(self, value: object) -> Any:
        """A JSON-ready, redacted copy of ``value`` (NaN and infinities become null)."""
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, enum.Enum):
            return self._json(value.value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: self._json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {self._redact(str(k)): self._json(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._json(v) for v in value]
        return self._redact(str(value))
