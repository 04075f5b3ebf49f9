"""``plait ui``: serve the web UI over a store's run history (see :mod:`plait.ui`).

The UI's dependencies (Starlette, uvicorn, Jinja2) come with the ``ui`` extra; without
them the command says how to install them instead of failing with a traceback.
"""

from __future__ import annotations

import click

from plait.cli._errors import EXIT_OK, CommandError
from plait.cli._main import common, open_store, store_option

__all__ = ["ui_command"]


@click.command("ui")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a web browser.")
@click.option(
    "-t",
    "--target",
    metavar="TARGET",
    help="The pipeline that resume and rerun run (FILE.py:NAME or MODULE:NAME).",
)
@common
def ui_command(
    store: str | None, host: str, port: int, open_browser: bool, target: str | None
) -> int:
    """Serve a web UI over the run history: runs, a run's graph and steps, lineage,
    comparisons; resume and rerun with --target.

    Every request needs a token: PLAIT_TOKEN, or one generated now and printed in the
    URL. A host other than loopback is refused unless PLAIT_TOKEN is set.
    """
    try:
        from plait.ui import check_host, serve
    except ImportError as exc:
        raise CommandError(
            f"plait ui needs the ui extra ({exc.name or exc} is missing)",
            "pip install 'plait[ui]'",
        ) from exc
    import os

    check_host(host, os.environ.get("PLAIT_TOKEN") or None)
    chosen = open_store(store, must_exist=True)

    def announce(url: str) -> None:
        click.echo(f"plait ui: serving {chosen.url} at\n    {url}\n(Ctrl-C to stop)")

    serve(chosen, host=host, port=port, target=target, open_browser=open_browser, announce=announce)
    return EXIT_OK
