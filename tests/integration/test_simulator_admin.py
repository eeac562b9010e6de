"""The admin API over real HTTP: create, patch, delete, ground truth, history, clock."""

from __future__ import annotations

import aiohttp
import pytest

from meetings_simulator.client import SimulatorHTTPError

T0 = 1_750_000_000
S0 = 1_760_000_000


async def test_create_returns_201_with_id_and_stamps_now(simulator) -> None:
    simulator.clock.freeze(T0)
    async with aiohttp.ClientSession() as session:
        body = {
            "event_id": 1,
            "start": S0,
            "duration_minutes": 45,
            "location": "Hall A",
            "status": "confirmed",
            "participants": [20, 10],
        }
        async with session.post(simulator.base_url + "/admin/meetings", json=body) as r:
            assert r.status == 201
            created = await r.json()
    meeting = created["meeting"]
    assert created["meeting_id"] == meeting["meeting_id"]
    assert meeting == {
        "meeting_id": created["meeting_id"],
        "event_id": 1,
        "status": "confirmed",
        "start": S0,
        "end": S0 + 2700,
        "duration_minutes": 45,
        "location": "Hall A",
        "title": "",
        "meeting_type": "one-to-one",
        "notes": None,
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
        "participants": [  # by account id; the first listed is the requester
            {"account_id": 10, "role": "invitee", "status": "accepted"},
            {"account_id": 20, "role": "requester", "status": "accepted"},
        ],
    }


async def test_patch_changes_fields_and_bumps_updated_at(simulator) -> None:
    simulator.clock.freeze(T0)
    mid = await simulator.create(event_id=1, start=S0, participants=[1, 2])
    simulator.clock.freeze(T0 + 7)
    after = await simulator.patch(
        mid,
        start=S0 + 900,
        duration_minutes=15,
        location="Room 2",
        status="confirmed",
        participants=[1, {"account_id": 3, "status": "declined"}],
        notes="n",
        title="t",
    )
    assert (after["start"], after["end"], after["location"], after["status"]) == (
        S0 + 900,
        S0 + 1800,
        "Room 2",
        "confirmed",
    )
    assert after["participants"] == [
        {"account_id": 1, "role": "requester", "status": "accepted"},  # kept as it was
        {"account_id": 3, "role": "invitee", "status": "declined"},
    ]
    assert (after["created_at"], after["updated_at"], after["version"]) == (T0, T0 + 7, 2)
    rows = await simulator.export_rows(1)
    assert [r["account_id"] for r in rows] == [1, 3]
    assert {r["updated_at"] for r in rows} == {"2025-06-15 15:06:47"}


async def test_patch_that_changes_nothing_does_not_bump(simulator) -> None:
    simulator.clock.freeze(T0)
    mid = await simulator.create(event_id=1, start=S0, participants=[1, 2], location="A")
    simulator.clock.freeze(T0 + 100)
    same = await simulator.patch(mid, start=S0, location="A", participants=[2, 1])
    assert (same["updated_at"], same["version"]) == (T0, 1)
    assert len(await simulator.history(1)) == 1


async def test_delete_is_hard(simulator) -> None:
    mid = await simulator.create(event_id=1, start=S0, participants=[1, 2])
    await simulator.delete(mid)
    assert await simulator.export_rows(1) == []
    assert await simulator.truth(1) == []
    with pytest.raises(SimulatorHTTPError) as info:
        await simulator.delete(mid)
    assert info.value.status == 404
    with pytest.raises(SimulatorHTTPError) as info:
        await simulator.patch(mid, status="confirmed")
    assert info.value.status == 404


async def test_truth_lists_current_meetings_of_the_event(simulator) -> None:
    a = await simulator.create(event_id=1, start=S0, participants=[1, 2])
    await simulator.create(event_id=2, start=S0, participants=[1, 2])
    b = await simulator.create(event_id=1, start=S0, participants=[3, 4])
    assert [m["meeting_id"] for m in await simulator.truth(1)] == [a, b]
    assert await simulator.truth(99) == []
    assert (await simulator.meeting(a))["meeting_id"] == a


async def test_history_has_every_version_and_tombstones(simulator) -> None:
    simulator.clock.freeze(T0)
    mid = await simulator.create(event_id=1, start=S0, participants=[1, 2])
    simulator.clock.freeze(T0 + 1)
    await simulator.patch(mid, status="confirmed")
    simulator.clock.freeze(T0 + 2)
    await simulator.patch(mid, status="confirmed")  # no-op: no version
    await simulator.patch(mid, start=S0 + 900)
    simulator.clock.freeze(T0 + 3)
    await simulator.delete(mid)
    history = await simulator.history(1)
    assert [(h["version"], h["kind"], h["at"]) for h in history] == [
        (1, "created", T0),
        (2, "updated", T0 + 1),
        (3, "updated", T0 + 2),
        (4, "deleted", T0 + 3),
    ]
    assert [h["meeting"]["status"] for h in history[:3]] == ["pending", "confirmed", "confirmed"]
    assert history[2]["meeting"]["start"] == S0 + 900
    assert history[2]["meeting"]["updated_at"] == T0 + 2
    assert history[3]["meeting"] is None


async def test_clock_admin(simulator) -> None:
    assert (await simulator.set_clock(frozen_at=T0))["now"] == T0
    assert (await simulator.set_clock(advance=5))["now"] == T0 + 5
    running = await simulator.set_clock(frozen_at=None, skew_seconds=120)
    assert running["frozen_at"] is None
    assert running["skew_seconds"] == 120
    assert (await simulator.get_clock())["now"] == simulator.clock.now()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "parameter"),
    [
        ("POST", "/admin/meetings", {"start": S0, "participants": [1]}, 400, "event_id"),
        ("POST", "/admin/meetings", {"event_id": 1, "participants": [1]}, 400, "start"),
        ("POST", "/admin/meetings", {"event_id": 1, "start": S0}, 400, "participants"),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": []},
            400,
            "participants",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": [1, 1]},
            400,
            "participants",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": ["a"]},
            400,
            "participants",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": "1", "start": S0, "participants": [1]},
            400,
            "event_id",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": [1], "status": "maybe"},
            400,
            "status",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": [1], "duration_minutes": 0},
            400,
            "duration_minutes",
        ),
        (
            "POST",
            "/admin/meetings",
            {"event_id": 1, "start": S0, "participants": [1], "colour": "red"},
            400,
            "colour",
        ),
        ("POST", "/admin/meetings", [1, 2], 400, "body"),
        ("PATCH", "/admin/meetings/abc", {}, 400, "meeting_id"),
        ("PATCH", "/admin/meetings/999", {"status": "confirmed"}, 404, "meeting_id"),
        ("DELETE", "/admin/meetings/999", None, 404, "meeting_id"),
        ("GET", "/admin/meetings", None, 400, "event_id"),
        ("GET", "/admin/history?event_id=x", None, 400, "event_id"),
        ("PUT", "/admin/faults", {"error_rate": 3}, 400, "error_rate"),
        ("PUT", "/admin/clock", {"frozen_at": "now"}, 400, "frozen_at"),
    ],
)
async def test_admin_errors_are_json_and_name_the_parameter(
    simulator, method, path, body, status, parameter
) -> None:
    async with aiohttp.ClientSession() as session:
        kwargs = {} if body is None else {"json": body}
        async with session.request(method, simulator.base_url + path, **kwargs) as r:
            assert r.status == status
            payload = await r.json()
    assert payload["parameter"] == parameter


async def test_unknown_route_is_json_404(simulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(simulator.base_url + "/api/v1/nothing") as r,
    ):
        assert r.status == 404
        assert (await r.json())["error"]


async def test_requests_counts_export_requests_by_time_filter(simulator) -> None:
    before = await simulator.requests()
    assert before == {"export": 0, "created": 0, "last_modified": 0, "none": 0, "rate_limited": 0}
    await simulator.export_page(1, created_from=0, created_to=10)
    await simulator.export_page(1, last_modified_from=0)
    await simulator.export_page(1, last_modified_from=0, created_to=5)
    await simulator.export_page(1)
    await simulator.truth(1)  # the admin API is not counted
    await simulator.set_faults(rate_limit_per_second=1)
    statuses = []
    for _ in range(3):
        try:
            await simulator.export_page(1)
            statuses.append(200)
        except SimulatorHTTPError as exc:
            statuses.append(exc.status)
    counts = await simulator.requests()
    assert counts["created"] == 1
    assert counts["last_modified"] == 2
    assert counts["none"] == 4
    assert counts["export"] == 7
    assert counts["rate_limited"] == statuses.count(429) >= 1
    assert counts["event:1"] == 7  # by event_id too (a paused event's must not move)


async def test_requests_are_counted_per_event(simulator) -> None:
    await simulator.export_page(1)
    await simulator.export_page(2, created_from=0)
    await simulator.export_page(2)
    counts = await simulator.requests()
    assert (counts["event:1"], counts["event:2"]) == (1, 2)
