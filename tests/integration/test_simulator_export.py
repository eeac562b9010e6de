"""The export endpoint over real HTTP: every filter and combination, order, pages, drift."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

from meetings_simulator.app import SimulatorConfig
from meetings_simulator.clock import SimClock
from meetings_simulator.export import EXPORT_PATH
from meetings_simulator.render import ROW_KEYS

T0 = 1_750_000_000  # creation times
S0 = 1_760_000_000  # scheduled starts
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
async def dataset(simulator) -> dict[str, Any]:
    """Four meetings of event 1 with known seconds, plus decoys in event 2 and a deleted one.

    m1 created T0,    start S0,      accounts 101 102
    m2 created T0+10, start S0+900,  accounts 102 103 104
    m3 created T0+20, start S0-900,  accounts 101 105
    m4 created T0+30, start S0+1800, accounts 106 107, modified at T0+40
    """
    clock = simulator.clock
    clock.freeze(T0)
    ids = {"m1": await simulator.create(event_id=1, start=S0, participants=[101, 102])}
    clock.freeze(T0 + 10)
    ids["m2"] = await simulator.create(event_id=1, start=S0 + 900, participants=[103, 102, 104])
    clock.freeze(T0 + 20)
    ids["m3"] = await simulator.create(event_id=1, start=S0 - 900, participants=[105, 101])
    await simulator.create(event_id=2, start=S0, participants=[101, 108])  # other event
    clock.freeze(T0 + 30)
    ids["m4"] = await simulator.create(event_id=1, start=S0 + 1800, participants=[106, 107])
    clock.freeze(T0 + 40)
    await simulator.patch(ids["m4"], location="Hall C, Table 1")
    clock.freeze(T0 + 50)
    gone = await simulator.create(event_id=1, start=S0, participants=[101, 109])
    clock.freeze(T0 + 60)
    await simulator.delete(gone)
    truth = {m["meeting_id"]: m for m in await simulator.truth(1)}
    return {"ids": ids, "truth": truth}


def expected_rows(dataset: dict[str, Any], names: list[str]) -> list[tuple[int, int]]:
    ids = sorted(dataset["ids"][n] for n in names)
    truth = dataset["truth"]
    return [(mid, p["account_id"]) for mid in ids for p in truth[mid]["participants"]]


FILTER_CASES = [
    ({}, ["m1", "m2", "m3", "m4"]),
    ({"created_from": T0 + 10}, ["m2", "m3", "m4"]),
    ({"created_to": T0 + 10}, ["m1", "m2"]),
    ({"created_from": T0 + 10, "created_to": T0 + 20}, ["m2", "m3"]),
    ({"created_from": T0 + 10, "created_to": T0 + 10}, ["m2"]),
    ({"created_from": T0 + 11, "created_to": T0 + 19}, []),
    ({"last_modified_from": T0 + 30}, ["m4"]),
    ({"last_modified_from": T0 + 40, "last_modified_to": T0 + 40}, ["m4"]),
    ({"last_modified_to": T0 + 20}, ["m1", "m2", "m3"]),
    ({"last_modified_to": T0 + 39}, ["m1", "m2", "m3"]),
    ({"time_from": S0}, ["m1", "m2", "m4"]),
    ({"time_to": S0}, ["m1", "m3"]),
    ({"time_from": S0, "time_to": S0 + 900}, ["m1", "m2"]),
    ({"time_from": S0 + 1, "time_to": S0 + 899}, []),
    ({"time_from": S0 + 900, "time_to": S0}, []),
    ({"account_id": 101}, ["m1", "m3"]),
    ({"account_id": 104}, ["m2"]),
    ({"account_id": 108}, []),  # takes part only in event 2
    ({"account_id": 999}, []),
    ({"account_id": 101, "time_from": S0}, ["m1"]),
    ({"account_id": 102, "created_from": T0 + 5}, ["m2"]),
    ({"created_from": T0 + 10, "time_to": S0 + 900}, ["m2", "m3"]),
    ({"created_from": T0, "last_modified_to": T0 + 20, "account_id": 102}, ["m1", "m2"]),
    ({"created_to": T0 + 30, "last_modified_from": T0 + 25}, ["m4"]),
    (
        {
            "time_from": S0 - 900,
            "time_to": S0 + 1800,
            "created_from": T0 + 20,
            "last_modified_from": T0,
            "last_modified_to": T0 + 40,
            "account_id": 106,
        },
        ["m4"],
    ),
]


@pytest.mark.parametrize(("params", "names"), FILTER_CASES)
async def test_filters(simulator, dataset, params: dict[str, int], names: list[str]) -> None:
    rows = await simulator.export_rows(1, **params)
    assert [(r["meeting_id"], r["account_id"]) for r in rows] == expected_rows(dataset, names)


async def test_account_filter_returns_every_row_of_the_accounts_meetings(simulator, dataset):
    rows = await simulator.export_rows(1, account_id=105)
    assert {r["account_id"] for r in rows} == {101, 105}


@pytest.mark.parametrize(
    ("params", "key", "reverse"),
    [
        ({}, lambda r: (r[0], r[2]), False),
        ({"order": "ASC", "order_by": "meeting_id"}, lambda r: (r[0], r[2]), False),
        ({"order": "DESC"}, lambda r: (r[0], r[2]), True),
        ({"order": "desc"}, lambda r: (r[0], r[2]), True),
        ({"order_by": "time"}, lambda r: (r[1], r[0], r[2]), False),
        ({"order_by": "time", "order": "DESC"}, lambda r: (r[1], r[0], r[2]), True),
        ({"order_by": "account_id"}, lambda r: (r[2], r[0]), False),
        ({"order_by": "account_id", "order": "DESC"}, lambda r: (r[2], r[0]), True),
    ],
)
async def test_ordering_is_total_and_stable(simulator, dataset, params, key, reverse) -> None:
    rows = await simulator.export_rows(1, per_page=2, **params)
    starts = {m["meeting_id"]: m["start"] for m in dataset["truth"].values()}
    triples = [(r["meeting_id"], starts[r["meeting_id"]], r["account_id"]) for r in rows]
    assert triples == sorted(triples, key=key, reverse=reverse)
    assert len(triples) == 9


async def test_pagination_metadata(simulator, dataset) -> None:
    pages = [await simulator.export_page(1, per_page=4, page=n) for n in (1, 2, 3, 4)]
    assert [(p["current_page"], p["per_page"], p["total"], p["last_page"]) for p in pages] == [
        (n, 4, 9, 3) for n in (1, 2, 3, 4)
    ]
    assert [(p["from"], p["to"], len(p["data"])) for p in pages] == [
        (1, 4, 4),
        (5, 8, 4),
        (9, 9, 1),
        (None, None, 0),
    ]
    assert [r for p in pages for r in p["data"]] == await simulator.export_rows(1)


async def test_default_per_page_is_100_and_500_is_allowed(simulator) -> None:
    for i in range(60):
        await simulator.create(event_id=3, start=S0 + i, participants=[1, 2, 3])
    default = await simulator.export_page(3)
    assert (default["per_page"], len(default["data"]), default["total"]) == (100, 100, 180)
    assert len((await simulator.export_page(3, per_page=500))["data"]) == 180


async def test_unknown_event_is_empty_not_an_error(simulator) -> None:
    page = await simulator.export_page(424242)
    assert page == {
        "current_page": 1,
        "per_page": 100,
        "total": 0,
        "last_page": 1,
        "from": None,
        "to": None,
        "path": f"{simulator.base_url}{EXPORT_PATH}",
        "data": [],
    }


async def test_row_format(simulator, dataset) -> None:
    rows = await simulator.export_rows(1, account_id=106)
    m4 = dataset["truth"][dataset["ids"]["m4"]]
    assert [list(r) for r in rows] == [list(ROW_KEYS)] * 2
    first = rows[0]
    assert first["start_time"] == "2025-10-09 09:23:20"  # S0 + 1800 in UTC
    assert first["end_time"] == "2025-10-09 09:53:20"
    assert first["created_at"] == "2025-06-15 15:07:10"  # T0 + 30
    assert first["updated_at"] == "2025-06-15 15:07:20"  # T0 + 40: the PATCH
    assert (first["location"], first["duration"], first["status"]) == (
        "Hall C, Table 1",
        30,
        "pending",
    )
    assert (first["participant_role"], first["participant_status"]) == ("requester", "accepted")
    assert rows[1]["participant_role"] == "invitee"
    assert m4["updated_at"] == T0 + 40
    for row in rows:
        for key in ("start_time", "end_time", "created_at", "updated_at"):
            assert DATE_TIME.fullmatch(row[key])
        assert isinstance(row["account_id"], int)
        assert row["first_name"]
        assert row["last_name"]
        assert row["company"]
        assert row["job_title"]
        assert "@" in row["email"]


async def test_date_times_are_in_the_events_time_zone(simulator_factory) -> None:
    sim = await simulator_factory(
        SimulatorConfig(timezone="Asia/Kolkata"), clock=SimClock(frozen_at=T0)
    )
    await sim.create(event_id=1, start=S0, participants=[1, 2])
    row = (await sim.export_rows(1))[0]
    assert row["start_time"] == "2025-10-09 14:23:20"  # UTC 08:53:20 + 5:30
    assert row["created_at"] == "2025-06-15 20:36:40"


async def test_page_drift_when_a_meeting_leaves_the_window_between_pages(simulator) -> None:
    """Offset pages are computed per request: modifying a meeting already read shifts an
    unchanged meeting onto the page the reader has passed, so it is never seen."""
    simulator.clock.freeze(T0)
    a = await simulator.create(event_id=1, start=S0, participants=[1, 2])
    b = await simulator.create(event_id=1, start=S0, participants=[3, 4])
    c = await simulator.create(event_id=1, start=S0, participants=[5, 6])
    window = {"last_modified_from": T0, "last_modified_to": T0, "per_page": 2}
    page1 = await simulator.export_page(1, page=1, **window)
    assert {r["meeting_id"] for r in page1["data"]} == {a}
    assert page1["total"] == 6
    simulator.clock.freeze(T0 + 5)
    await simulator.patch(a, status="confirmed")  # a now has updated_at T0+5: out of window
    page2 = await simulator.export_page(1, page=2, **window)
    assert {r["meeting_id"] for r in page2["data"]} == {c}  # b moved onto page 1: skipped
    assert page2["total"] == 4
    seen = {r["meeting_id"] for r in page1["data"] + page2["data"]}
    assert b not in seen


async def test_page_drift_on_hard_delete(simulator) -> None:
    ids = [await simulator.create(event_id=1, start=S0, participants=[1, 2]) for _ in range(3)]
    page1 = await simulator.export_page(1, per_page=2, page=1)
    await simulator.delete(ids[0])
    page2 = await simulator.export_page(1, per_page=2, page=2)
    assert {r["meeting_id"] for r in page1["data"]} == {ids[0]}
    assert {r["meeting_id"] for r in page2["data"]} == {ids[2]}


async def test_date_header_comes_from_the_skewed_clock(simulator) -> None:
    simulator.clock.freeze(T0)
    async with (
        aiohttp.ClientSession() as session,
        session.get(simulator.base_url + EXPORT_PATH, params={"event_id": 1}) as r,
    ):
        assert parsedate_to_datetime(r.headers["Date"]).timestamp() == T0
        simulator.clock.unfreeze()
        simulator.clock.skew_seconds = -3600
        async with session.get(simulator.base_url + EXPORT_PATH, params={"event_id": "x"}) as r:
            assert r.status == 400
            api_now = parsedate_to_datetime(r.headers["Date"]).timestamp()
    import time

    assert abs(api_now - (time.time() - 3600)) < 5


async def test_any_api_key_is_accepted(simulator) -> None:
    async with aiohttp.ClientSession() as session:
        for headers in ({"Authorization": "Bearer whatever"}, {"X-Api-Key": "k"}, {}):
            async with session.get(
                simulator.base_url + EXPORT_PATH, params={"event_id": 1}, headers=headers
            ) as r:
                assert r.status == 200


BAD_PARAMS = [
    ({}, "event_id"),
    ({"event_id": "abc"}, "event_id"),
    ({"event_id": "1.5"}, "event_id"),
    ({"event_id": 1, "per_page": 501}, "per_page"),
    ({"event_id": 1, "per_page": 0}, "per_page"),
    ({"event_id": 1, "per_page": "ten"}, "per_page"),
    ({"event_id": 1, "page": 0}, "page"),
    ({"event_id": 1, "page": "2.0"}, "page"),
    ({"event_id": 1, "account_id": "me"}, "account_id"),
    ({"event_id": 1, "time_from": "yesterday"}, "time_from"),
    ({"event_id": 1, "time_to": "1e9"}, "time_to"),
    ({"event_id": 1, "created_from": "x"}, "created_from"),
    ({"event_id": 1, "created_to": "x"}, "created_to"),
    ({"event_id": 1, "last_modified_from": "x"}, "last_modified_from"),
    ({"event_id": 1, "last_modified_to": "x"}, "last_modified_to"),
    ({"event_id": 1, "order": "RANDOM"}, "order"),
    ({"event_id": 1, "order_by": "status"}, "order_by"),
]


@pytest.mark.parametrize(("params", "parameter"), BAD_PARAMS)
async def test_bad_parameters_get_400_json_naming_the_parameter(simulator, params, parameter):
    async with (
        aiohttp.ClientSession() as session,
        session.get(simulator.base_url + EXPORT_PATH, params=params) as r,
    ):
        assert r.status == 400
        assert r.content_type == "application/json"
        body = await r.json()
    assert body["parameter"] == parameter
    assert body["error"]
