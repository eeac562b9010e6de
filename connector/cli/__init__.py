"""The ``meetings-cdc`` command line (entry point ``connector.cli:main``).

- ``router``: one subcommand per module, usage errors exit 2;
- ``tail`` (with ``tail_lines``, what it prints of one record): ``meetings-cdc tail``;
- ``export`` (with ``export_progress``): ``meetings-cdc export``.
``run`` is ``connector.app``; ``simulate`` is the simulator's own package.
"""

from connector.cli.router import main

__all__ = ["main"]
