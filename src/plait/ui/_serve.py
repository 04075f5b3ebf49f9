"""Serving the UI: the host check, the listening socket, uvicorn.

Design. The socket is bound and listening before the URL is announced, so the printed URL
answers at once (connections wait in the backlog until uvicorn's loop takes them), a port
of 0 picks a free one, and a busy port fails with a clear error before anything starts.
Uvicorn's access log is off: it would write every URL, the ``?token=`` one included, to
the terminal.
"""

from __future__ import annotations

import os
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING

from plait._net import is_loopback, listen
from plait.errors import UsageError
from plait.ui._security import new_token

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["check_host", "is_loopback", "serve"]


def check_host(host: str, explicit_token: str | None) -> None:
    """Refuse a host other than loopback unless the token was set explicitly.

    Raises:
        UsageError: For a non-loopback ``host`` without ``explicit_token``.
    """
    if is_loopback(host) or explicit_token:
        return
    raise UsageError(
        f"refusing to serve the UI on {host!r}, which other machines can reach, with a "
        "generated token: set PLAIT_TOKEN to a long random secret you choose (and put the "
        "UI behind HTTPS, see docs/ui.md), or serve on 127.0.0.1"
    )


def url_of(host: str, port: int, token: str) -> str:
    """The URL to open, with the token."""
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    return f"http://{shown}:{port}/runs?token={token}"


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    target: Pipeline | str | None = None,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the UI over ``store`` until interrupted.

    The token is ``PLAIT_TOKEN`` or a new random one; ``announce`` gets the URL with it.

    Raises:
        UsageError: For a non-loopback host without ``PLAIT_TOKEN``, or a port in use.
    """
    import uvicorn

    from plait.ui._app import app

    explicit = os.environ.get("PLAIT_TOKEN") or None
    check_host(host, explicit)
    token = explicit or new_token()
    application = app(store, token, target=target)
    sock = listen(host, port)
    url = url_of(host, sock.getsockname()[1], token)
    announce(url)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(application, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
