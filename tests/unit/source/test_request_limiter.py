"""``RequestLimiter``: a pass's reads leave a slot for a poll and wait while one runs (#14)."""

from __future__ import annotations

import asyncio

from connector.source.limiter import BACKGROUND, RequestLimiter


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


async def test_background_work_waits_for_every_open_foreground_section():
    limiter = RequestLimiter(0, 4)
    turns: list[str] = []

    async def background(name: str) -> None:
        await limiter.background_turn()
        turns.append(name)

    await background("alone")  # no foreground work: at once
    first, second = limiter.foreground(), limiter.foreground()  # two events' polls
    first.__enter__()
    second.__enter__()
    waiting = asyncio.create_task(background("after both"))
    await asyncio.sleep(0.01)
    first.__exit__(None, None, None)
    await asyncio.sleep(0.01)
    assert turns == ["alone"]
    second.__exit__(None, None, None)
    await waiting
    assert turns == ["alone", "after both"]


async def test_back_to_back_poll_cycles_leave_a_pass_a_turn_between_them():
    """A waiter released when the cycle it waited for ends goes on, even if the next cycle
    began before it ran: polls cannot starve a pass."""
    limiter = RequestLimiter(0, 4)
    turns = 0

    async def background() -> None:
        nonlocal turns
        while True:
            await limiter.background_turn()
            turns += 1

    passing = asyncio.create_task(background())
    try:
        for _ in range(5):
            with limiter.foreground():
                await asyncio.sleep(0.001)
            # the next cycle starts at once, without yielding
            with limiter.foreground():
                seen = turns
                await asyncio.sleep(0.001)
                assert turns == seen + 1  # exactly the one turn it was released for
    finally:
        passing.cancel()


async def test_a_pass_is_paced_by_its_own_rate_and_polls_are_not():
    now = 0.0
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    limiter = RequestLimiter(0, 4, background_rate_per_second=2.0, clock=lambda: now, sleep=sleep)

    async def request(background: bool) -> None:
        BACKGROUND.set(background)
        async with limiter:
            pass

    for _ in range(4):
        await request(background=True)
    assert waits == [0.5, 1.0, 1.5]  # a burst of 1 (a quarter second, at least 1), then 0.5 s
    for _ in range(4):
        await request(background=False)
    assert waits == [0.5, 1.0, 1.5]  # polls: no API rate limit set, no wait
