"""``--help`` tells every default: each option of ``simulate`` and ``tail`` says what it is."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from connector.cli.router import build_parser


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = sub.choices[name]
    return found


@pytest.mark.parametrize("name", ["simulate", "tail"])
def test_every_option_states_its_default(name: str) -> None:
    parser = subcommand(name)
    undocumented = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and action.dest != "help"
        and not isinstance(action, argparse._StoreTrueAction)
        and "default" not in (action.help or "")
    ]
    assert undocumented == []


def test_tail_help_names_the_bootstrap_variable() -> None:
    text = " ".join(subcommand("tail").format_help().split())
    assert "--bootstrap-servers" in text
    assert "$MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:19092" in text


def test_run_starts_without_the_other_commands_and_the_registry_client() -> None:
    # ~0.1 s of every start (issue 30 item 3): the simulator's, the other commands' and the
    # registry client's imports are not needed to run without a registry.
    code = (
        "import sys; from connector.cli.router import build_parser; "
        "build_parser('run').parse_known_args(['run']); "
        "print(sorted(m for m in sys.modules if m.startswith(('meetings_simulator', "
        "'connector.cli.tail', 'connector.cli.export', 'confluent_kafka.schema_registry'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
