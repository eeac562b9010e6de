"""The command-line contract: --help everywhere, exit 2 with one line on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

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


# The simulator is a distribution of its own (simulator/): `meetings-cdc simulate` without it.
# `python -S` skips site-packages' .pth files, so the editable installs are not on the path:
# the checkout gives `connector` (not `meetings_simulator`, which is in simulator/), the
# venv's site-packages the dependencies.
REPO = Path(__file__).resolve().parents[3]
MAIN = "import sys; from connector.cli.router import main; sys.exit(main(sys.argv[1:]))"


def cli_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    if module == "meetings_simulator":  # not installed
        command = [sys.executable, "-S", "-c", MAIN]
        clean["PYTHONPATH"] = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
    else:  # installed, but this module of it cannot be imported
        command = [sys.executable, "-c", f"import sys; sys.modules[{module!r}] = None; {MAIN}"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_the_checkout_alone_does_not_provide_the_simulator():
    result = cli_without("meetings_simulator", "tail", "--help")
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import meetings_simulator"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])},
        cwd=REPO,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "No module named 'meetings_simulator'" in probe.stderr


@pytest.mark.parametrize(
    "args",
    [(), ("--port", "8080", "--meetings", "10"), ("--help",), ("--no-such-flag", "x")],
)
def test_simulate_without_the_simulator_exits_2_saying_how_to_install_it(args):
    result = cli_without("meetings_simulator", "simulate", *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "meetings-cdc simulate: the simulator is not installed: pip install "
        "meetings-cdc-simulator (from a checkout: pip install -e ./simulator)"
    ]


def test_other_commands_work_without_the_simulator():
    listing = cli_without("meetings_simulator", "--help")
    tail = cli_without("meetings_simulator", "tail", "--max-messages", "many")
    unknown = cli_without("meetings_simulator", "run", "--bogus")

    assert listing.returncode == 0
    assert "simulate" in listing.stdout
    assert tail.returncode == 2
    assert "--max-messages" in tail.stderr
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "meetings-cdc: error: unrecognized arguments: --bogus"
    ]


def test_a_module_missing_inside_the_installed_simulator_is_not_hidden():
    result = cli_without("meetings_simulator.app", "simulate")

    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr
    assert "meetings_simulator.app" in result.stderr
