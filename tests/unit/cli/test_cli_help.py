"""``--help`` tells every default: each option of ``simulate`` and ``tail`` says what it is."""

from __future__ import annotations

import argparse

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
