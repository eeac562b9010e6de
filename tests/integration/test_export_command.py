"""``meetings-cdc export`` as a subprocess against the in-process simulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from meetings_simulator.app import SimulatorConfig

SECRET = "sk-export-secret-42"


async def run_export(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    base.update({"MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND": "0", "MEETINGS_CDC_API_KEY": SECRET})
    base.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "export",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=base,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def shape(line: dict[str, Any]) -> tuple[Any, ...]:
    return (
        line["meeting_id"],
        line["status"],
        line["location"],
        tuple((p["account_id"], p["role"], p["status"]) for p in line["participants"]),
    )


async def test_exports_every_meeting_once_as_json_lines(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = await simulator_factory(SimulatorConfig(meetings=1500, seed=8))
    out = tmp_path / "meetings.jsonl"
    code, stdout, stderr = await run_export(
        "--event-id", "1", "--out", str(out), "--api-base-url", sim.base_url
    )
    assert code == 0, stderr
    assert stdout == ""
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    truth = await sim.truth(1)
    assert sorted(shape(line) for line in lines) == sorted(
        (
            m["meeting_id"],
            m["status"],
            m["location"],
            tuple((p["account_id"], p["role"], p["status"]) for p in m["participants"]),
        )
        for m in truth
    )
    first = lines[0]
    assert first["start_at"].endswith("Z")
    assert "title" in first["extra"]
    assert "email" in first["participants"][0]["extra"]
    summary = stderr.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("exported 1,500 meetings")
    assert SECRET not in stderr


async def test_modified_from_selects_recent_changes_to_stdout(simulator) -> None:  # type: ignore[no-untyped-def]
    now = simulator.clock.freeze()
    old = await simulator.create(event_id=1, start=now + 86_400, participants=[1, 2])
    simulator.clock.advance(100)
    new = await simulator.create(event_id=1, start=now + 86_400, participants=[3, 4])
    simulator.clock.advance(10)
    code, stdout, stderr = await run_export(
        "--event-id", "1", "--modified-from", str(now + 50), "--api-base-url", simulator.base_url
    )
    assert code == 0, stderr
    ids = [json.loads(line)["meeting_id"] for line in stdout.splitlines()]
    assert ids == [new]
    assert old not in ids


async def test_dead_letters_file_and_summary(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = await simulator_factory(SimulatorConfig(meetings=50, seed=1))
    await sim.set_faults(bad_row_rate=1.0)
    dead = tmp_path / "dead.jsonl"
    code, stdout, stderr = await run_export(
        "--event-id", "1", "--dead-letters", str(dead), "--api-base-url", sim.base_url
    )
    assert code == 0, stderr
    assert stdout == ""
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letters
    assert all(letter["reason"] and letter["window"]["kind"] == "created" for letter in letters)
    assert f"{len(letters)} malformed rows" in stderr


async def test_bad_configuration_exits_2_with_one_line() -> None:
    code, _, stderr = await run_export("--event-id", "1")
    assert code == 2
    assert stderr.strip().splitlines() == [
        "meetings-cdc export: configuration error: MEETINGS_CDC_API_BASE_URL: required but not set"
    ]
    code, _, stderr = await run_export("--event-id", "1", "--created-from", "yesterday")
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1


async def test_fatal_api_error_exits_1_with_a_clear_message(simulator) -> None:  # type: ignore[no-untyped-def]
    code, stdout, stderr = await run_export(
        "--event-id", "1", "--api-base-url", simulator.base_url + "/wrong-prefix"
    )
    assert code == 1
    assert stdout == ""
    assert "HTTP 404" in stderr
    assert "check MEETINGS_CDC_API_BASE_URL" in stderr
    assert SECRET not in stderr


async def test_an_event_without_meetings_warns_on_stderr(simulator) -> None:  # type: ignore[no-untyped-def]
    code, stdout, stderr = await run_export("--event-id", "1", "--api-base-url", simulator.base_url)
    assert code == 0, stderr
    assert stdout == ""
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert warnings == ["meetings-cdc export: warning: event 1 has no meetings (check --event-id)"]


async def test_window_errors_name_the_flags_with_iso_bounds(simulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "never.jsonl"
    code, _, stderr = await run_export(
        "--event-id",
        "1",
        "--created-from",
        "2025-06-01T10:00:00Z",
        "--created-to",
        "1748768400",  # 2025-06-01T09:00:00Z
        "--out",
        str(out),
        "--api-base-url",
        simulator.base_url,
    )
    assert code == 2
    assert stderr.strip().splitlines() == [
        "meetings-cdc export: --created-to (2025-06-01T09:00:00Z) is before "
        "--created-from (2025-06-01T10:00:00Z)"
    ]
    code, _, stderr = await run_export(
        "--event-id",
        "1",
        "--modified-from",
        "2099-01-01T00:00:00+00:00",
        "--out",
        str(out),
        "--api-base-url",
        simulator.base_url,
    )
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line.startswith(
        "meetings-cdc export: --modified-from (2099-01-01T00:00:00Z) is after the API's now "
        "minus --settle-seconds (20"
    )
    assert line.endswith("Z)")
    assert _names(tmp_path) == []


async def _export_until_partway(sim, out: Path):  # type: ignore[no-untyped-def]
    """Start an export to ``out`` and return it once part of it is on disk."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    base.update({"MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND": "0", "MEETINGS_CDC_API_PER_PAGE": "10"})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "connector", "export", "--event-id", "1", "--out", str(out)),
        *("--api-base-url", sim.base_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=base,
    )
    deadline = asyncio.get_running_loop().time() + 60
    while not any(p.stat().st_size > 0 for p in out.parent.glob(f".{out.name}.*.partial")):
        assert process.returncode is None, "the export ended before it was partway"
        assert asyncio.get_running_loop().time() < deadline, "no partial output appeared"
        await asyncio.sleep(0.05)
    return process


async def test_a_failure_mid_export_leaves_the_previous_out_file_untouched(
    simulator_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    sim = await simulator_factory(SimulatorConfig(meetings=1500, seed=3))
    await sim.set_faults(latency_ms=20)
    out = tmp_path / "meetings.jsonl"
    out.write_text("the previous, complete export\n")
    process = await _export_until_partway(sim, out)
    await sim.set_faults(error_rate=1.0, error_status=401)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1, stderr
    assert "401" in stderr.decode()
    assert out.read_text() == "the previous, complete export\n"
    assert _names(tmp_path) == ["meetings.jsonl"]


async def test_ctrl_c_mid_export_leaves_no_out_file(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = await simulator_factory(SimulatorConfig(meetings=1500, seed=4))
    await sim.set_faults(latency_ms=20)
    out = tmp_path / "meetings.jsonl"
    process = await _export_until_partway(sim, out)
    process.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 130, stderr
    assert f"interrupted; {out} not written" in stderr.decode()
    assert _names(tmp_path) == []


async def test_a_complete_export_replaces_the_out_file(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = await simulator_factory(SimulatorConfig(meetings=20, seed=5))
    out = tmp_path / "meetings.jsonl"
    out.write_text("stale\n")
    code, _, stderr = await run_export(
        "--event-id", "1", "--out", str(out), "--api-base-url", sim.base_url
    )
    assert code == 0, stderr
    assert len(out.read_text().splitlines()) == 20
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert _names(tmp_path) == ["meetings.jsonl"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())
