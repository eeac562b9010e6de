"""``RequestLimiter``: a pass's many queued reads leave a slot for a poll (issue 14)."""

from __future__ import annotations

import asyncio

from connector.source.client import BACKGROUND, RequestLimiter


async def test_a_poll_waits_for_one_slot_at_most_behind_a_pass_with_many_reads_queued():
    limiter = RequestLimiter(0, 2)
    order: list[str] = []
    release = asyncio.Event()

    async def request(name: str) -> None:
        async with limiter:
            order.append(name)
            await release.wait()

    async def background_reads() -> None:
        BACKGROUND.set(True)  # the reconciler's task: its reader's tasks inherit it
        await asyncio.gather(*(request(f"pass-{i}") for i in range(10)))

    passes = asyncio.create_task(background_reads())
    await asyncio.sleep(0.01)  # the pass queued all its reads first
    poll = asyncio.create_task(request("poll"))
    await asyncio.sleep(0.01)

    assert order == ["pass-0", "poll"]  # the other slot went to the poll, not pass-1
    release.set()
    await asyncio.gather(passes, poll)
    assert sorted(order) == sorted(["poll", *(f"pass-{i}" for i in range(10))])


async def test_with_one_slot_a_poll_queues_behind_the_one_pass_request_in_flight():
    limiter = RequestLimiter(0, 1)
    order: list[str] = []

    async def request(name: str) -> None:
        async with limiter:
            order.append(name)
            await asyncio.sleep(0.01)

    async def background_reads() -> None:
        BACKGROUND.set(True)
        await asyncio.gather(*(request(f"pass-{i}") for i in range(5)))

    passes = asyncio.create_task(background_reads())
    await asyncio.sleep(0.001)
    await asyncio.gather(passes, request("poll"))
    assert order.index("poll") <= 1
