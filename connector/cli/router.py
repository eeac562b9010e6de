"""The ``meetings-cdc`` command line: one subcommand per module.

Each subcommand module exposes ``add_arguments(parser)`` and ``main(args) -> int``; this
module only routes. Usage and configuration errors exit 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from connector import __version__
from connector.errors import ConfigError

# (name, module, one-line help)
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "connector.app", "run the connector: poll the API, publish change events"),
    ("export", "connector.cli.export", "one-shot export of meetings as JSON lines"),
    ("simulate", "meetings_simulator.command", "run the ExpoPlatform meetings API simulator"),
    ("tail", "connector.cli.tail", "print the change events of a topic as JSON lines"),
    ("signal", "connector.cli.signal", "send a signal to a running connector (pause, ...)"),
    ("state", "connector.cli.state_show", "show what the state topic holds of an event"),
)

# Subcommands whose module ships in a distribution of its own: what to install when it is not
# importable. The simulator is a test and demo tool, kept out of the connector's wheel.
INSTALL_HINTS: dict[str, str] = {
    "simulate": "the simulator is not installed: pip install meetings-cdc-simulator "
    "(from a checkout: pip install -e ./simulator)",
}

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the parser with every subcommand's arguments, or with only ``only``'s
    (the other subcommands listed by name, their modules not imported: ``run`` starts
    without the simulator's and the other commands' imports)."""
    parser = _Parser(
        prog="meetings-cdc",
        description="Change-data-capture from the ExpoPlatform meetings export API to Kafka. "
        "Settings come from MEETINGS_CDC_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"meetings-cdc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name, help_text in SUBCOMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if name not in INSTALL_HINTS or module_name.split(".")[0] != exc.name:
                raise  # a module missing inside an installed command is a bug, not a choice
            # Any arguments, --help included, get the install hint (see main).
            command = sub.add_parser(name, help=f"{help_text} (not installed)", add_help=False)
            command.set_defaults(_not_installed=INSTALL_HINTS[name])
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m connector``."""
    parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
    # parse_args() with its own check of the leftovers, after the not-installed case
    args, unrecognized = parser.parse_known_args(argv)
    hint = getattr(args, "_not_installed", None)
    if hint is not None:
        print(f"meetings-cdc {args.command}: {hint}", file=sys.stderr)
        return EXIT_USAGE
    if unrecognized:
        parser.error(f"unrecognized arguments: {' '.join(unrecognized)}")
    try:
        result: int = args._main(args)
    except ConfigError as exc:
        print(f"meetings-cdc {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first argument that is not an option: the
    top-level options take no value), or None when it names none of them."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in {name for name, _, _ in SUBCOMMANDS} else None
