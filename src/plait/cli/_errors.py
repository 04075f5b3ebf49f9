"""The command line's errors and exit codes.

Exit codes (documented in ``docs/cli.md``):

- ``0``: the command did what was asked (a run succeeded);
- ``1``: a run (or a step under ``plait debug``) failed;
- ``2``: a usage or validation error: a bad option, an unknown target, run or step, a
  missing param, a pipeline that does not validate;
- ``130``: interrupted (Ctrl-C).

A :class:`CommandError` is a user error: it is printed as ``Error: <message>`` followed by
the fix, never with a traceback (``plait --debug`` shows one).
"""

from __future__ import annotations

import click

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CommandError"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(click.ClickException):
    """A user error: what went wrong and how to fix it; exits with ``exit_code``.

    Args:
        message: What went wrong, naming the offending value.
        hint: How to fix it (printed on its own line), if there is something to say.
        exit_code: ``2`` (usage) by default; ``1`` for a failure at run time.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code  # type: ignore[misc,unused-ignore]  # a ClassVar in click 8.5

    def format_message(self) -> str:
        """The message, then the hint on its own line."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message
