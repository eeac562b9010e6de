"""The command-line contract: --help everywhere, exit 2 with one line on bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SUBCOMMANDS = ("run", "export", "simulate", "tail")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command):
    result = cli(command, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: meetings-cdc {command}")


def test_bad_flag_exits_2_with_one_line():
    result = cli("tail", "--max-messages", "many")

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--max-messages" in result.stderr


def test_run_with_bad_configuration_exits_2_naming_each_setting():
    result = cli(
        "run",
        MEETINGS_CDC_EVENT_IDS="12,x",
        MEETINGS_CDC_API_KEY="secret-key-never-printed",
        MEETINGS_CDC_SNAPSHOT_MODE="sometimes",
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in ("API_BASE_URL", "EVENT_IDS", "SNAPSHOT_MODE"):
        assert f"MEETINGS_CDC_{name}" in lines[0]
    assert "secret-key-never-printed" not in result.stderr + result.stdout
