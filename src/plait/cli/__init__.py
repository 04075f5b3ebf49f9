"""The ``plait`` command line: run, inspect and debug pipelines (see ``docs/cli.md``).

``plait`` and ``python -m plait`` are the same program; :func:`main` runs it and returns
the exit code (0 ok, 1 run failed, 2 usage or validation error, 130 interrupted).
"""

from plait.cli._main import cli, main

__all__ = ["cli", "main"]
