"""What every endpoint shares: the UI's state, the templates, page rendering, the errors
that become 404 and 409 pages.

Design. Jinja2 renders every template with autoescaping on (also for templates made from
strings), so user data is text, never markup; the filters format durations, moments and
recorded values. :func:`safe` is the one way to put markup in a page, used only for the
SVG drawings, whose text the drawing code escapes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from plait.ui._queries import STATUSES
from plait.ui._security import Keys
from plait.ui._views import outcome, short, value_text
from plait.viz._protocols import format_seconds, format_timestamp

if TYPE_CHECKING:
    from plait.history import RunRecord
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["UI", "Conflict", "NotFound", "render", "safe", "target_of", "templates"]

HERE = Path(__file__).parent


class Conflict(RuntimeError):
    """An action that cannot run here (no target, another pipeline): answered with 409."""


class NotFound(LookupError):
    """A run, step or data version the history does not have (answered with 404)."""


@dataclass(slots=True)
class UI:
    """What every endpoint reads: the store, the keys, the templates, the target (and the
    recorded targets loaded so far, by their text)."""

    store: Store
    keys: Keys
    templates: Environment
    target: Pipeline | None
    target_label: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: dict[str, Pipeline] = field(default_factory=dict)  # recorded targets, loaded


def target_of(ui: UI, record: RunRecord) -> str | None:
    """The target an action on ``record`` runs: the UI's, else the one the run recorded."""
    if ui.target is not None:
        return ui.target_label or ui.target.name
    return record.target


def _size(value: object) -> str:
    """Bytes, readably (``3.0 MiB``); ``-`` when not measured."""
    if not isinstance(value, int):
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        seconds=lambda v: "-" if v is None else format_seconds(float(v)),
        moment=lambda v: "-" if v is None else format_timestamp(float(v)),
        short=short,
        text=value_text,
        outcome=outcome,
        size=_size,
    )
    env.globals["statuses"] = STATUSES
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page from ``template`` with the CSRF token and the request in its context."""
    ui: UI = request.app.state.ui
    page = ui.templates.get_template(template).render(
        request=request, csrf=ui.keys.csrf, store=ui.store.url, **context
    )
    return HTMLResponse(page, status_code=status_code)


def safe(svg: str) -> Markup:
    """Mark a drawing whose text the drawing code escaped."""
    return Markup(svg)  # built by plait.viz / _views, which escape all text
