"""``meetings-cdc simulate`` as a subprocess: flags, ready line, churn, skew."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from meetings_simulator.export import EXPORT_PATH


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_flags() -> None:
    result = simulate("--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--event-id",
        "--meetings",
        "--seed",
        "--churn-per-second",
        "--clock-skew-seconds",
        "--timezone",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--timezone", "Mars/Olympus"], "--timezone"),
        (["--meetings", "-1"], "--meetings"),
        (["--churn-per-second", "-2"], "--churn-per-second"),
        (["--port", "70000"], "--port"),
        (["--meetings", "many"], "--meetings"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], named: str) -> None:
    result = simulate(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert named in result.stderr


async def test_seeded_process_with_churn_and_skew(simulator_process) -> None:
    sim = await simulator_process(
        "--event-id",
        "3",
        "--event-id",
        "4",
        "--meetings",
        "1000",
        "--seed",
        "9",
        "--churn-per-second",
        "40",
        "--clock-skew-seconds",
        "-600",
    )
    assert sim.ready_line.startswith(f"simulator listening on {sim.base_url}")
    truth3, truth4 = await sim.truth(3), await sim.truth(4)
    assert 900 < len(truth3) + len(truth4) < 1100
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.base_url + EXPORT_PATH, params={"event_id": 3}) as r,
    ):
        api_now = parsedate_to_datetime(r.headers["Date"]).timestamp()
    assert abs(api_now - (time.time() - 600)) < 5
    await asyncio.sleep(1.5)
    history = await sim.history(3) + await sim.history(4)
    kinds = {h["kind"] for h in history}
    assert {"seeded", "updated"} <= kinds
    assert sum(h["kind"] != "seeded" for h in history) >= 20
