"""Every injected fault over real HTTP, and that PUT /admin/faults replaces the set."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from meetings_simulator.export import EXPORT_PATH

S0 = 1_760_000_000


@pytest.fixture
async def sim(simulator):
    for i in range(5):
        await simulator.create(event_id=1, start=S0 + i * 900, participants=[1, 2, 3])
    return simulator


async def get(sim, session: aiohttp.ClientSession, **params) -> tuple[int, dict, bytes]:
    params = {"event_id": 1, **params}
    async with session.get(sim.base_url + EXPORT_PATH, params=params) as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"error_rate": 1}, 503),
        ({"error_rate": 1, "error_status": 500}, 500),
        ({"error_rate": 1, "error_status": 502}, 502),
    ],
)
async def test_error_rate(sim, faults, status) -> None:
    await sim.set_faults(**faults)
    async with aiohttp.ClientSession() as session:
        got, _, body = await get(sim, session)
    assert got == status
    assert json.loads(body)["error"]
    assert (await sim.get_faults())["injected"] == {"error": 1}


async def test_error_rate_is_seeded(sim) -> None:
    async def statuses() -> list[int]:
        await sim.set_faults(error_rate=0.5, seed=11)
        async with aiohttp.ClientSession() as session:
            return [(await get(sim, session))[0] for _ in range(30)]

    first = await statuses()
    assert set(first) == {200, 503}
    assert await statuses() == first


async def test_latency(sim) -> None:
    await sim.set_faults(latency_ms=300)
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        status, _, _ = await get(sim, session)
        assert status == 200
        assert time.perf_counter() - started >= 0.3
        started = time.perf_counter()
        await sim.truth(1)  # the admin API is never slowed down
    assert time.perf_counter() - started < 0.3


async def test_rate_limit_gives_429_with_retry_after(sim) -> None:
    await sim.set_faults(rate_limit_per_second=3)
    async with aiohttp.ClientSession() as session:
        results = [await get(sim, session) for _ in range(8)]
        statuses = [s for s, _, _ in results]
        assert statuses[:3] == [200, 200, 200]
        limited = [(h, b) for s, h, b in results if s == 429]
        assert len(limited) >= 4
        for headers, body in limited:
            assert int(headers["Retry-After"]) >= 1
            assert json.loads(body)["error"]
        await asyncio.sleep(int(limited[-1][0]["Retry-After"]))
        assert (await get(sim, session))[0] == 200


async def test_malformed_body_is_not_json(sim) -> None:
    await sim.set_faults(malformed_rate=1)
    async with aiohttp.ClientSession() as session:
        status, headers, body = await get(sim, session)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(body)


async def test_truncated_body_with_honest_length(sim) -> None:
    async with aiohttp.ClientSession() as session:
        _, _, full = await get(sim, session)
        await sim.set_faults(truncated_rate=1, seed=3)
        status, headers, body = await get(sim, session)
    assert status == 200
    assert int(headers["Content-Length"]) == len(body) < len(full)
    assert full.startswith(body)
    with pytest.raises(ValueError):
        json.loads(body)


async def test_truncated_body_connection_closed_mid_body(sim) -> None:
    await sim.set_faults(truncated_rate=1, truncate_mode="connection")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            await get(sim, session)
        await sim.clear_faults()
        assert (await get(sim, session))[0] == 200  # the server is fine afterwards


async def test_bad_rows(sim) -> None:
    await sim.set_faults(bad_row_rate=0.5, seed=5)
    async with aiohttp.ClientSession() as session:
        status, _, body = await get(sim, session, per_page=500)
    assert status == 200
    rows = json.loads(body)["data"]
    assert len(rows) == 15

    def bad(row: dict) -> bool:
        return (
            not isinstance(row.get("account_id"), int)
            or not isinstance(row.get("meeting_id"), int)
            or "start_time" not in row
            or not row["start_time"][:4].isdigit()
        )

    assert 0 < sum(map(bad, rows)) < 15
    assert (await sim.get_faults())["injected"]["bad_row"] == sum(map(bad, rows))


async def test_put_replaces_the_whole_set_and_empty_clears(sim) -> None:
    await sim.set_faults(error_rate=1, latency_ms=10)
    state = await sim.set_faults(malformed_rate=0.5)
    assert state["faults"]["error_rate"] == 0
    assert state["faults"]["latency_ms"] == 0
    assert state["faults"]["malformed_rate"] == 0.5
    cleared = await sim.clear_faults()
    assert cleared["faults"] == {
        "error_rate": 0.0,
        "error_status": 503,
        "latency_ms": 0,
        "rate_limit_per_second": None,
        "malformed_rate": 0.0,
        "truncated_rate": 0.0,
        "truncate_mode": "json",
        "bad_row_rate": 0.0,
    }
    async with aiohttp.ClientSession() as session:
        assert (await get(sim, session))[0] == 200


async def test_faults_never_touch_the_admin_api(sim) -> None:
    await sim.set_faults(error_rate=1, malformed_rate=1, rate_limit_per_second=1)
    for _ in range(5):
        assert len(await sim.truth(1)) == 5
