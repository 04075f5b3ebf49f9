"""``plait serve`` and ``plait stream``: run a pipeline on triggers, or per item of a
source (see :mod:`plait.events`).

The triggers' libraries come with the ``events`` extra; without them the commands say
how to install it instead of failing with a traceback. Both commands stop gracefully on
SIGTERM or Ctrl-C (a second one cancels the runs in progress).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import click

from plait.cli._errors import EXIT_FAILED, EXIT_OK, CommandError
from plait.cli._main import ConfigOptions, common, open_store, param_options, prepare, store_option

if TYPE_CHECKING:
    from plait.events import RedisStream

__all__ = ["serve_command", "stream_command"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INSTALL = "pip install 'plait[events]'"


def parse_duration(text: str) -> float:
    """``"30"`` / ``"30s"`` / ``"5m"`` / ``"1.5h"`` / ``"1d"`` -> seconds.

    >>> parse_duration("5m"), parse_duration("90")
    (300.0, 90.0)
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found or float(found.group(1)) <= 0:
        raise CommandError(
            f"--every {text!r} is not a duration", "write seconds or 30s, 5m, 2h, 1d"
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"`` / ``":8000"`` / ``"8000"`` -> (host, port).

    >>> parse_address(":9000"), parse_address("[::1]:80")
    (('127.0.0.1', 9000), ('::1', 80))
    """
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "", text
    if not port.isdigit():
        raise CommandError(f"--webhook {text!r} is not HOST:PORT", "write e.g. 127.0.0.1:8000")
    return host.strip("[]") or "127.0.0.1", int(port)


def redis_source(url: str, default_stream: str) -> RedisStream:
    """A :class:`~plait.events.RedisStream` from ``redis://HOST:PORT/DB?stream=S&group=G``."""
    from plait.events import RedisStream

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise CommandError(f"{url!r} is not a Redis URL", "write redis://HOST:PORT/DB?stream=NAME")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    known = {"stream", "group", "consumer"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise CommandError(
            f"{url!r}: unknown option {unknown[0]!r}", "use stream=, group= and consumer="
        )
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return RedisStream(
        bare,
        query.get("stream", default_stream),
        query.get("group", "plait"),
        consumer=query.get("consumer", "plait"),
    )


def _need_events() -> None:
    try:
        import croniter  # noqa: F401
        import redis  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        import watchfiles  # noqa: F401
    except ImportError as exc:
        raise CommandError(
            f"plait serve and stream need the events extra ({exc.name or exc} is missing)",
            _INSTALL,
        ) from exc


@click.command("serve")
@click.argument("target")
@click.option("--cron", "crons", multiple=True, metavar="EXPR", help="A cron schedule. Repeat.")
@click.option("--tz", default=None, metavar="ZONE", help="Time zone of --cron (default UTC).")
@click.option("--every", "everies", multiple=True, metavar="DURATION", help="E.g. 30s, 5m, 1h.")
@click.option("--webhook", metavar="HOST:PORT", help="Serve POST /run (token: PLAIT_TOKEN).")
@click.option("--watch", "watches", multiple=True, metavar="GLOB", help="New or changed files.")
@click.option(
    "--redis", "redises", multiple=True, metavar="URL", help="redis://H:P/DB?stream=S&group=G."
)
@click.option(
    "--overlap",
    type=click.Choice(["skip", "queue", "allow"]),
    default="skip",
    show_default=True,
    help="An event while a run runs: dropped, queued, or run alongside.",
)
@click.option("--max-concurrent-runs", type=int, default=None, help="Runs at once.")
@click.option("--catchup", is_flag=True, help="Run cron ticks missed while down (once each).")
@click.option("--grace", type=float, default=30.0, show_default=True, help="Seconds to finish.")
@click.option("--executor", default="sequential", show_default=True, help="Each run's executor.")
@param_options
@store_option
@common
def serve_command(
    target: str,
    crons: tuple[str, ...],
    tz: str | None,
    everies: tuple[str, ...],
    webhook: str | None,
    watches: tuple[str, ...],
    redises: tuple[str, ...],
    overlap: str,
    max_concurrent_runs: int | None,
    catchup: bool,
    grace: float,
    executor: str,
    params: tuple[str, ...],
    config_file: str | None,
    sets: tuple[str, ...],
    env: str | None,
    store: str | None,
) -> int:
    """Run the pipeline TARGET on each event of its triggers, until SIGTERM or Ctrl-C.

    Each run is recorded with the trigger that started it (plait runs list --trigger).
    A YAML pipeline's triggers: section is used when no trigger option is given.
    --webhook serves POST /run (JSON params) -> 202 {"run_id"}, GET /runs/ID and
    GET /health; every request needs 'Authorization: Bearer TOKEN' (PLAIT_TOKEN, or one
    generated and printed now) or an X-Plait-Signature (PLAIT_WEBHOOK_SECRET).
    """
    _need_events()
    from plait.cli._running import recorded_target
    from plait.events import Cron, Every, FileWatch, Webhook, serve

    pipeline, values, config = prepare(target, params, ConfigOptions(config_file, sets, env))
    triggers: list[Any] = [Cron(expr, tz=tz) for expr in crons]
    triggers += [Every(parse_duration(text)) for text in everies]
    if webhook:
        host, port = parse_address(webhook)
        triggers.append(Webhook(host=host, port=port))
    triggers += [FileWatch(pattern) for pattern in watches]
    triggers += [redis_source(url, pipeline.name) for url in redises]
    if not triggers and target.endswith((".yaml", ".yml")):
        from plait.events._config import triggers_from_yaml

        triggers = triggers_from_yaml(target, pipeline.name)
    if not triggers:
        raise CommandError(
            "plait serve needs at least one trigger",
            "add --cron EXPR, --every DURATION, --webhook HOST:PORT, --watch GLOB or --redis URL"
            " (or a triggers: section to a YAML pipeline)",
        )
    chosen = open_store(store)
    click.echo(f"plait serve: {pipeline.name!r} on {', '.join(t.name for t in triggers)}")
    server = serve(
        pipeline,
        triggers,
        store=chosen,
        overlap=overlap,
        max_concurrent_runs=max_concurrent_runs,
        catchup=catchup,
        grace=grace,
        executor=executor,
        announce=lambda message: click.echo(f"plait serve: {message}", err=True),
        target=recorded_target(target),
        params=values,
        config=config,
    )
    counts = server.counts
    click.echo(
        f"plait serve: stopped; {counts['started']} run(s) started, {counts['succeeded']} "
        f"succeeded, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['cancelled']} cancelled"
    )
    _leave_abandoned_steps(EXIT_OK)
    return EXIT_OK


def _leave_abandoned_steps(code: int, wait: float = 2.0) -> None:
    """Exit now if cancelled runs left step threads that cannot be interrupted.

    A sync step cannot be stopped from outside: its run is recorded ``cancelled`` and the
    step abandoned, but Python would wait for its thread at exit, forever for a step that
    never returns. The records are written; the process ends without waiting for them.
    """
    import os
    import sys
    import threading
    import time

    def stuck() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
        ]

    deadline = time.monotonic() + wait
    while stuck() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = stuck()
    if not left:
        return
    click.echo(
        f"plait serve: {len(left)} step thread(s) of cancelled runs did not stop; "
        "exiting without them",
        err=True,
    )
    from plait.cli._main import _close_stores

    _close_stores()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command("stream")
@click.argument("target")
@click.argument("source")
@click.option("--param-name", "param", default="item", show_default=True, help="Gets each item.")
@click.option("--batch", type=int, default=None, help="Items per run (the param gets a list).")
@click.option("--no-follow", is_flag=True, help="A file: stop at its end instead of waiting.")
@click.option(
    "--on-failure",
    type=click.Choice(["continue", "stop"]),
    default="continue",
    show_default=True,
    help="After a failed run: go on, or stop before committing it (a restart retries).",
)
@click.option("--executor", default="sequential", show_default=True, help="Each run's executor.")
@param_options
@store_option
@common
def stream_command(
    target: str,
    source: str,
    param: str,
    batch: int | None,
    no_follow: bool,
    on_failure: str,
    executor: str,
    params: tuple[str, ...],
    config_file: str | None,
    sets: tuple[str, ...],
    env: str | None,
    store: str | None,
) -> int:
    """Run the pipeline TARGET once per item of SOURCE (or per --batch of items).

    SOURCE is a text file (one item per line, followed like tail -F unless --no-follow)
    or redis://HOST:PORT/DB?stream=NAME&group=GROUP. Offsets are checkpointed in the
    store after each run is recorded: a restart goes on where the last one stopped.
    """
    _need_events()
    from plait.cli._running import recorded_target
    from plait.events import FileTail, stream

    pipeline, values, config = prepare(target, params, ConfigOptions(config_file, sets, env))
    chosen_source: Any
    if "://" in source:
        chosen_source = redis_source(source, pipeline.name)
    else:
        chosen_source = FileTail(source, follow=not no_follow)
    chosen = open_store(store)
    stats = stream(
        pipeline,
        chosen_source,
        param=param,
        batch=batch,
        store=chosen,
        executor=executor,
        on_failure=on_failure,
        target=recorded_target(target),
        params=values,
        config=config,
    )
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(stats.statuses.items())) or "none"
    click.echo(f"plait stream: {stats.items} item(s) in {stats.runs} run(s): {statuses}")
    return EXIT_FAILED if stats.statuses.get("failed") and on_failure == "stop" else EXIT_OK
