"""The admin API: meetings as ground truth, history, faults and clock (for tests).

Meetings are JSON objects with unix-second times (see ``docs/simulator-api.md``)::

    {"meeting_id", "event_id", "status", "start", "end", "duration_minutes", "location",
     "title", "meeting_type", "notes", "created_at", "updated_at", "version",
     "participants": [{"account_id", "role", "status"}, ...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from meetings_simulator.errors import BadParameter
from meetings_simulator.faults import FaultSet
from meetings_simulator.model import (
    MEETING_STATUSES,
    PARTICIPANT_ROLES,
    PARTICIPANT_STATUSES,
    SimMeeting,
    SimParticipant,
    participant_status_for,
)
from meetings_simulator.query import integer_param
from meetings_simulator.state import SIMULATOR, Simulator
from meetings_simulator.store import HistoryEntry

_CREATE_KEYS = frozenset(
    {
        "event_id",
        "start",
        "duration_minutes",
        "location",
        "status",
        "participants",
        "title",
        "meeting_type",
        "notes",
    }
)
_PATCH_KEYS = _CREATE_KEYS - {"event_id"}


def meeting_json(meeting: SimMeeting) -> dict[str, Any]:
    """A meeting as the admin API shows it."""
    return {
        "meeting_id": meeting.meeting_id,
        "event_id": meeting.event_id,
        "status": meeting.status,
        "start": meeting.start,
        "end": meeting.end,
        "duration_minutes": meeting.duration_minutes,
        "location": meeting.location,
        "title": meeting.title,
        "meeting_type": meeting.meeting_type,
        "notes": meeting.notes,
        "created_at": meeting.created_at,
        "updated_at": meeting.updated_at,
        "version": meeting.version,
        "participants": [
            {"account_id": p.account_id, "role": p.role, "status": p.status}
            for p in meeting.participants
        ],
    }


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    """One history entry as JSON (``meeting`` is null for a deletion)."""
    return {
        "meeting_id": entry.meeting_id,
        "event_id": entry.event_id,
        "version": entry.version,
        "at": entry.at,
        "kind": entry.kind,
        "meeting": None if entry.meeting is None else meeting_json(entry.meeting),
    }


def _int(body: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadParameter(key, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise BadParameter(key, f"must be >= {minimum}, got {value}")
    return value


def _text(body: Mapping[str, Any], key: str, *, nullable: bool) -> str | None:
    value = body[key]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise BadParameter(key, "must be a string" + (" or null" if nullable else ""))
    return value


def _status(body: Mapping[str, Any]) -> str:
    value = body["status"]
    if value not in MEETING_STATUSES:
        raise BadParameter("status", f"must be one of {', '.join(MEETING_STATUSES)}")
    return str(value)


def _participants(
    value: object, status: str, existing: tuple[SimParticipant, ...] = ()
) -> tuple[SimParticipant, ...]:
    """Parse ``participants``: account ids, or objects with account_id and optional
    role/status. A listed account that already takes part keeps its role and status; a new
    one is the requester if listed first in a new meeting, otherwise an invitee."""
    if not isinstance(value, list) or not value:
        raise BadParameter("participants", "must be a non-empty list")
    known = {p.account_id: p for p in existing}
    parsed: dict[int, SimParticipant] = {}
    for position, item in enumerate(value):
        spec: Mapping[str, Any] = item if isinstance(item, Mapping) else {"account_id": item}
        account = spec.get("account_id")
        if not isinstance(account, int) or isinstance(account, bool):
            raise BadParameter("participants", f"account_id must be an integer, got {account!r}")
        if account in parsed:
            raise BadParameter("participants", f"account {account} listed twice")
        before = known.get(account)
        default_role = "requester" if position == 0 and not existing else "invitee"
        role = spec.get("role", before.role if before else default_role)
        if role not in PARTICIPANT_ROLES:
            raise BadParameter("participants", f"role must be one of {PARTICIPANT_ROLES}")
        pstatus = spec.get(
            "status", before.status if before else participant_status_for(status, role)
        )
        if pstatus not in PARTICIPANT_STATUSES:
            raise BadParameter("participants", f"status must be one of {PARTICIPANT_STATUSES}")
        parsed[account] = SimParticipant(account, str(role), str(pstatus))
    return tuple(parsed.values())


def _fields(body: Mapping[str, Any], current: SimMeeting | None) -> dict[str, Any]:
    """Validated meeting fields present in ``body``."""
    fields: dict[str, Any] = {}
    if "start" in body:
        fields["start"] = _int(body, "start")
    if "duration_minutes" in body:
        fields["duration_minutes"] = _int(body, "duration_minutes", minimum=1)
    if "location" in body:
        fields["location"] = _text(body, "location", nullable=True)
    if "status" in body:
        fields["status"] = _status(body)
    for key, nullable in (("title", False), ("meeting_type", False), ("notes", True)):
        if key in body:
            fields[key] = _text(body, key, nullable=nullable)
    if "participants" in body:
        status = fields.get("status", current.status if current else "pending")
        existing = current.participants if current else ()
        fields["participants"] = _participants(body["participants"], status, existing)
    return fields


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadParameter("body", "must be JSON") from None
    if not isinstance(body, dict):
        raise BadParameter("body", "must be a JSON object")
    for key in body:
        if key not in allowed:
            raise BadParameter(key, "unknown field")
    return body


def _meeting_id(request: web.Request) -> int:
    raw = request.match_info["meeting_id"]
    if not raw.isdigit():
        raise BadParameter("meeting_id", f"must be an integer, got {raw!r}")
    return int(raw)


def _event_id(request: web.Request) -> int:
    event_id = integer_param(request.query, "event_id")
    if event_id is None:
        raise BadParameter("event_id", "is required")
    return event_id


def _sim(request: web.Request) -> Simulator:
    return request.app[SIMULATOR]


async def create_meeting(request: web.Request) -> web.Response:
    """``POST /admin/meetings`` -> 201 ``{"meeting_id": N, "meeting": {...}}``."""
    body = await _body(request, _CREATE_KEYS)
    for key in ("event_id", "start", "participants"):
        if key not in body:
            raise BadParameter(key, "is required")
    fields = _fields(body, None)
    meeting = _sim(request).store.create(
        event_id=_int(body, "event_id"),
        start=fields["start"],
        duration_minutes=fields.get("duration_minutes", 30),
        status=fields.get("status", "pending"),
        participants=fields["participants"],
        location=fields.get("location"),
        title=fields.get("title", ""),
        meeting_type=fields.get("meeting_type", "one-to-one"),
        notes=fields.get("notes"),
    )
    return web.json_response(
        {"meeting_id": meeting.meeting_id, "meeting": meeting_json(meeting)}, status=201
    )


async def patch_meeting(request: web.Request) -> web.Response:
    """``PATCH /admin/meetings/{id}`` -> 200 with the meeting (unchanged if nothing changed)."""
    store = _sim(request).store
    meeting_id = _meeting_id(request)
    current = store.get(meeting_id)
    body = await _body(request, _PATCH_KEYS)
    meeting = store.update(meeting_id, **_fields(body, current))
    return web.json_response(meeting_json(meeting))


async def delete_meeting(request: web.Request) -> web.Response:
    """``DELETE /admin/meetings/{id}`` -> 204; the meeting's rows vanish."""
    _sim(request).store.delete(_meeting_id(request))
    return web.Response(status=204)


async def get_meeting(request: web.Request) -> web.Response:
    """``GET /admin/meetings/{id}`` -> 200 with the meeting."""
    return web.json_response(meeting_json(_sim(request).store.get(_meeting_id(request))))


async def list_meetings(request: web.Request) -> web.Response:
    """``GET /admin/meetings?event_id=N`` -> 200 ``[meeting, ...]`` by meeting id."""
    meetings = _sim(request).store.meetings(_event_id(request))
    return web.json_response([meeting_json(m) for m in meetings])


async def get_history(request: web.Request) -> web.Response:
    """``GET /admin/history?event_id=N`` -> every version of every meeting, deletes included."""
    entries = _sim(request).store.history(_event_id(request))
    return web.json_response([history_json(e) for e in entries])


def _faults_json(sim: Simulator) -> dict[str, Any]:
    return {"faults": sim.faults.faults.to_json(), "injected": dict(sim.faults.injected)}


async def put_faults(request: web.Request) -> web.Response:
    """``PUT /admin/faults`` replaces the whole fault set (``{}`` clears it)."""
    try:
        body = await request.json()
    except ValueError:
        raise BadParameter("body", "must be JSON") from None
    faults = FaultSet.from_json(body)
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadParameter("seed", "must be an integer")
    sim = _sim(request)
    sim.faults.replace(faults, seed=seed)
    return web.json_response(_faults_json(sim))


async def get_faults(request: web.Request) -> web.Response:
    """``GET /admin/faults`` -> the fault set and how many of each fault were injected."""
    return web.json_response(_faults_json(_sim(request)))


async def get_requests(request: web.Request) -> web.Response:
    """``GET /admin/requests`` -> export requests received so far: ``{"export": N,
    "created": a, "last_modified": b, "none": c, "rate_limited": d, "event:<id>": e, ...}``
    (``export`` counts every one, 429s included; the next three split it by time filter,
    the ``event:`` keys by the request's ``event_id``)."""
    counts = _sim(request).requests
    kinds = ("created", "last_modified", "none")
    body = {"export": sum(counts[k] for k in kinds), **{k: counts[k] for k in kinds}}
    body["rate_limited"] = counts["rate_limited"]
    body.update({k: v for k, v in counts.items() if k.startswith("event:")})
    return web.json_response(body)


def _clock_json(sim: Simulator) -> dict[str, Any]:
    clock = sim.clock
    return {"now": clock.now(), "skew_seconds": clock.skew_seconds, "frozen_at": clock.frozen_at}


async def put_clock(request: web.Request) -> web.Response:
    """``PUT /admin/clock`` ``{"skew_seconds"?, "frozen_at"? (int|null), "advance"?}``."""
    try:
        body = await request.json()
    except ValueError:
        raise BadParameter("body", "must be JSON") from None
    if not isinstance(body, dict):
        raise BadParameter("body", "must be a JSON object")
    clock = _sim(request).clock
    for key in body:
        if key not in ("skew_seconds", "frozen_at", "advance"):
            raise BadParameter(key, "unknown field")
    if "skew_seconds" in body:
        skew = body["skew_seconds"]
        if not isinstance(skew, int | float) or isinstance(skew, bool):
            raise BadParameter("skew_seconds", "must be a number")
        clock.skew_seconds = float(skew)
    if "frozen_at" in body:
        if body["frozen_at"] is None:
            clock.unfreeze()
        else:
            clock.freeze(_int(body, "frozen_at"))
    if "advance" in body:
        clock.advance(_int(body, "advance"))
    return web.json_response(_clock_json(_sim(request)))


async def get_clock(request: web.Request) -> web.Response:
    """``GET /admin/clock`` -> ``{"now", "skew_seconds", "frozen_at"}``."""
    return web.json_response(_clock_json(_sim(request)))


def add_routes(app: web.Application) -> None:
    """Register the admin API on ``app``."""
    app.router.add_post("/admin/meetings", create_meeting)
    app.router.add_get("/admin/meetings", list_meetings)
    app.router.add_get("/admin/meetings/{meeting_id}", get_meeting)
    app.router.add_patch("/admin/meetings/{meeting_id}", patch_meeting)
    app.router.add_delete("/admin/meetings/{meeting_id}", delete_meeting)
    app.router.add_get("/admin/history", get_history)
    app.router.add_put("/admin/faults", put_faults)
    app.router.add_get("/admin/faults", get_faults)
    app.router.add_put("/admin/clock", put_clock)
    app.router.add_get("/admin/clock", get_clock)
    app.router.add_get("/admin/requests", get_requests)
