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
    ("export", "connector.source.export_command", "one-shot export of meetings as JSON lines"),
    ("simulate", "connector.simulator.command", "run the ExpoPlatform meetings API simulator"),
    ("tail", "connector.tail", "print the change events of a topic as JSON lines"),
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand's arguments."""
    parser = _Parser(
        prog="meetings-cdc",
        description="Change-data-capture from the ExpoPlatform meetings export API to Kafka. "
        "Settings come from MEETINGS_CDC_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"meetings-cdc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name, help_text in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m connector``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args._main(args)
    except ConfigError as exc:
        print(f"meetings-cdc {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result
