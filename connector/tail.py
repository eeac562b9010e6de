"""Placeholder of the `tail` subcommand until its issue lands."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""


def main(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    print("meetings-cdc tail: not implemented yet", file=sys.stderr)
    return 1
