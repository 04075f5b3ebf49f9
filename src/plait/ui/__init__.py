"""plait ui: a local web app over the run history, safe by default.

``plait ui`` (or :func:`serve`) serves :func:`app`, a Starlette app rendered on the server
from Jinja2 templates, with every asset shipped in this package (no CDN, no script: it
works offline and without JavaScript). Pages: the runs (filters, search, sort, pages,
totals), one run (the DAG coloured by outcome, a timeline, each step with its reason,
attempts, error, traceback and logs; params, config, tags, origin), one step across runs,
the lineage of a data version, and a comparison of runs; actions: resume a run, rerun
steps of a run.

Security model (see docs/ui.md): every request needs the token (``PLAIT_TOKEN``, or one
generated at start and printed in the URL), exchanged once for an ``HttpOnly``,
``SameSite=Strict`` cookie; every POST needs the CSRF token; a host other than loopback
is refused unless ``PLAIT_TOKEN`` is set; user data is always escaped; only the packaged
static files and the store are read; every answer carries a CSP without inline scripts
or styles, ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` and ``X-Content-Type-Options: nosniff``.

Needs the ``ui`` extra: ``pip install 'plait[ui]'``. ``import plait`` never imports
this package.
"""

from __future__ import annotations

from plait.ui._app import app
from plait.ui._serve import check_host, serve

__all__ = ["app", "check_host", "serve"]
