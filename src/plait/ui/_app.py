"""The ASGI app: routes, templates, packaged static files, error pages.

Design. A Starlette app wrapped in :class:`~plait.ui._security.Guard`. Pages are rendered
on the server from Jinja2 templates with autoescaping on for every template, so user data
(step names, params, errors, tracebacks, metrics, tags) is always text, never markup; the
only values marked safe are the SVG drawings, whose text the drawing code escapes. There is
no script: every page works as plain HTML forms and links. Static files are read once, at
start, from the package's ``static`` folder into a name -> bytes table; a request names a
file of that table or gets 404, so no request can reach another file. Endpoints are plain
functions (Starlette runs them in its thread pool), since the history's drivers block.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from plait.errors import UsageError
from plait.ui import _actions, _pages
from plait.ui._context import HERE, UI, Conflict, NotFound, render, templates
from plait.ui._security import Guard, Keys, new_token

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["app"]

_MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = HERE / "static"
    return {
        path.name: (path.read_bytes(), _MEDIA_TYPES.get(path.suffix, "application/octet-stream"))
        for path in folder.iterdir()
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


def _static(files: dict[str, tuple[bytes, str]]) -> Any:
    def serve(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        body, media_type = found
        return Response(
            body, media_type=media_type, headers={"cache-control": "private, max-age=3600"}
        )

    return serve


def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, exc.detail
    elif isinstance(exc, NotFound):
        status, message = 404, str(exc.args[0]) if exc.args else "not found"
    elif isinstance(exc, Conflict):
        status, message = 409, str(exc)
    else:
        status, message = 400, str(exc)
    return render(request, "error.html", status_code=status, status=status, message=message)


def _home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=303)


def app(
    store: Store | str | os.PathLike[str],
    token: str | None = None,
    *,
    target: Pipeline | str | None = None,
) -> Any:
    """The web UI over ``store``'s run history, as an ASGI app.

    Args:
        store: A :class:`~plait.Store`, or its location.
        token: The secret every request needs (see :mod:`plait.ui`); default:
            ``PLAIT_TOKEN``, else a new random token (read it back from
            ``app.state.token``).
        target: The pipeline that resume and rerun run: a :class:`~plait.Pipeline` or a
            target such as ``"flow.py:pipeline"`` (loaded now). None: the actions say how
            to give one.

    Returns:
        An ASGI application (serve it with uvicorn, or use :func:`plait.ui.serve`).

    Raises:
        PlaitError: When ``target`` cannot be loaded.
    """
    from plait.store.store import Store

    chosen = store if isinstance(store, Store) else Store(os.fspath(store))
    secret = token or os.environ.get("PLAIT_TOKEN") or new_token()
    pipeline, label = _load_target(target)
    ui = UI(chosen, Keys(secret), templates(), pipeline, label)
    routes = [
        Route("/", _home),
        Route("/runs", _pages.runs_page),
        Route("/runs/{run_id}", _pages.run_page),
        Route("/runs/{run_id}/resume", _actions.confirm_resume, methods=["GET"]),
        Route("/runs/{run_id}/resume", _actions.resume, methods=["POST"]),
        Route("/runs/{run_id}/rerun", _actions.confirm_rerun, methods=["GET"]),
        Route("/runs/{run_id}/rerun", _actions.rerun, methods=["POST"]),
        Route("/steps/{pipeline}/{step:path}", _pages.step_page),
        Route("/lineage/{version}", _pages.lineage_page),
        Route("/compare", _pages.compare_page),
        Route("/static/{name}", _static(_static_files())),
    ]
    handlers: dict[Any, Any] = {
        HTTPException: _error,
        NotFound: _error,
        UsageError: _error,
        Conflict: _error,
    }
    inner = Starlette(routes=routes, exception_handlers=handlers)
    inner.state.ui = ui
    guarded = Guard(inner, ui.keys)
    guarded.state = inner.state  # type: ignore[attr-defined]
    inner.state.token = secret
    return guarded


def _load_target(target: Pipeline | str | None) -> tuple[Pipeline | None, str | None]:
    if target is None or not isinstance(target, str):
        return target, None if target is None else target.name
    from plait.cli._target import load_pipeline

    return load_pipeline(target), target
