"""Commands over the store: ``plait runs ...``, ``plait lineage``, ``plait cache ...``.

Run ids may be abbreviated to any unique prefix, as with git; so may data versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_OK, CommandError
from plait.cli._main import common, open_store, split_names, store_option

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["cache_group", "lineage_command", "resolve_run", "runs_group"]


def resolve_run(store: Store, run_id: str) -> str:
    """The full id of the run ``run_id`` abbreviates.

    Raises:
        CommandError: When no run, or several, match.
    """
    try:
        return store.history.resolve(run_id)
    except KeyError as exc:
        raise CommandError(
            str(exc.args[0]) if exc.args else f"no run {run_id!r}",
            "list the runs with: plait runs list",
        ) from exc


def _resolve_version(store: Store, prefix: str) -> str:
    rows = store.history.db.execute(
        "SELECT DISTINCT version FROM data WHERE version >= ? AND version < ? "
        "ORDER BY version LIMIT 2",
        [prefix, prefix + "\uffff"],
    )
    if len(rows) == 1:
        return str(rows[0][0])
    if rows:
        raise CommandError(f"data version prefix {prefix!r} is ambiguous", "give more characters")
    raise CommandError(
        f"no recorded value has data version {prefix!r}",
        "data versions are listed by: plait runs show RUN",
    )


# -- runs -----------------------------------------------------------------------------------
@click.group("runs", invoke_without_command=True)
@common
@click.pass_context
def runs_group(ctx: click.Context) -> int | None:
    """Recorded runs: list, show, compare, resume, rerun (bare: list)."""
    if ctx.invoked_subcommand is None:
        result: int = ctx.invoke(runs_list)
        return result
    return None


@runs_group.command("list")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option(
    "--status", type=click.Choice(["running", "succeeded", "failed", "cancelled"]), default=None
)
@click.option("--trigger", help="Only runs started by the trigger of this name or kind.")
@click.option("--experiment", help="Only runs of this experiment.")
@click.option("--version", "version", help="Only runs of this pipeline version.")
@click.option(
    "--project", help="Only runs of this project (default: [tool.plait] project, if set)."
)
@click.option("--all-projects", is_flag=True, help="Every project's runs.")
@click.option(
    "--sort",
    metavar="KEY",
    help="Order by started, duration, pipeline, status, or (with --experiment) a metric.",
)
@click.option("--desc", "descending", is_flag=True, help="With --sort: largest first.")
@click.option("-n", "--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def runs_list(
    pipeline: str | None,
    status: str | None,
    trigger: str | None,
    experiment: str | None,
    version: str | None,
    project: str | None,
    all_projects: bool,
    sort: str | None,
    descending: bool,
    limit: int,
    as_json: bool,
    store: str | None,
) -> int:
    """The latest runs, newest first; with --experiment, the experiment's table (runs by
    params and config values that differ, and metrics)."""
    from plait.cli._experiments import RUN_SORTS, experiment_listing
    from plait.cli._records import record_json, runs_text

    chosen = open_store(store, must_exist=True)
    if project is None and not all_projects:
        project = chosen.project
    if experiment is not None:
        experiment_listing(
            chosen,
            experiment,
            sort=sort,
            descending=descending,
            limit=limit,
            as_json=as_json,
            project=project,
            filters={"pipeline": pipeline, "trigger": trigger, "version": version},
        )
        return EXIT_OK
    if sort is not None and sort not in RUN_SORTS:
        raise CommandError(
            f"--sort {sort!r} is not a column of the runs table ({', '.join(RUN_SORTS)})",
            "to sort by a metric, name the experiment: plait runs list --experiment NAME "
            f"--sort {sort} --desc",
        )
    groups = {
        "pipeline": pipeline,
        "status": status,
        "trigger": trigger,
        "experiment": experiment,
        "version": version,
        "project": project,
    }
    records = chosen.history.runs(
        pipeline=pipeline,
        status=status,
        limit=limit,
        trigger=trigger,
        experiment=experiment,
        version=version,
        project=project,
        sort=sort or "started",
        descending=descending if sort else True,
    )
    if as_json:
        click.echo(record_json([r.to_dict(steps=False) for r in records]))
    elif records:
        click.echo(runs_text(records))
    else:
        filters = [f"--{n} {v}" for n, v in groups.items() if v]
        if filters:
            click.echo(f"no run matched {' '.join(filters)} in {chosen.url}")
        else:
            click.echo(f"no runs recorded in {chosen.url}")
    return EXIT_OK


@runs_group.command("show")
@click.argument("run_id", metavar="RUN")
@click.option("--html", "html_path", metavar="FILE", help="Write a self-contained HTML report.")
@click.option(
    "--logs",
    "logs",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[STEP]",
    help="Print the steps' log lines (only STEP's when given).",
)
@click.option(
    "-t",
    "--target",
    help="Draw the report's edges from this pipeline (for runs recorded without structure).",
)
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def runs_show(
    run_id: str,
    html_path: str | None,
    logs: str | None,
    target: str | None,
    as_json: bool,
    store: str | None,
) -> int:
    """One run: its params, its steps and the errors of failed steps."""
    from plait.cli._records import logs_text, record_json, run_text
    from plait.io import run_datasets

    chosen = open_store(store, must_exist=True)
    record = chosen.history.run(resolve_run(chosen, run_id))
    if html_path:
        from plait.viz import run_to_html
        from plait.viz.recorded import as_run

        pipeline: Any = record.structure
        if target:
            from plait.cli._target import load_pipeline

            pipeline = load_pipeline(target)
        with open(html_path, "w", encoding="utf-8") as handle:
            handle.write(run_to_html(as_run(record, pipeline)))
        click.echo(f"report written to {html_path}", err=True)
    if logs is not None:
        if logs and logs not in record.steps:
            from plait.errors import suggest

            raise CommandError(
                f"run {record.run_id} has no step {logs!r}{suggest(logs, record.steps)}",
                f"its steps are listed by: plait runs show {record.run_id}",
            )
        click.echo(logs_text(record, logs or None))
    elif as_json:
        click.echo(
            record_json({**record.to_dict(), "datasets": run_datasets(chosen, record.run_id)})
        )
    elif not html_path:
        click.echo(run_text(record))
        files = run_datasets(chosen, record.run_id)
        if files:
            click.echo("datasets:")
            click.echo(_table([[d["name"], d["role"], d["path"], d["version"]] for d in files]))
    return EXIT_OK


@runs_group.command("compare")
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.argument("more", metavar="[C ...]", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def runs_compare(
    run_a: str, run_b: str, more: tuple[str, ...], as_json: bool, store: str | None
) -> int:
    """What differs between runs A, B (and C ...): metrics, params, config, code, each
    step's status and output (steps in pipeline order)."""
    from plait.cli._records import compare_text, record_json

    chosen = open_store(store, must_exist=True)
    ids = [resolve_run(chosen, run_id) for run_id in (run_a, run_b, *more)]
    if more:
        from plait.cli._experiments import compare_many_text

        many = chosen.history.compare_many(ids)
        click.echo(record_json(many) if as_json else compare_many_text(many))
        return EXIT_OK
    diff = chosen.history.compare(*ids)
    click.echo(record_json(diff) if as_json else compare_text(diff))
    return EXIT_OK


def _replay_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "-t",
                "--target",
                help="The pipeline the run was made with (default: the target it recorded).",
            ),
            click.option("-e", "--executor", default="sequential", show_default=True),
            click.option("--report", metavar="FILE.html", help="Write an HTML report."),
            click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
            click.option(
                "-q",
                "--quiet",
                is_flag=True,
                help="No progress display, no values of terminal outputs.",
            ),
            store_option,
            common,
        ]
    ):
        func = option(func)
    return func


@runs_group.command("resume")
@click.argument("run_id", metavar="RUN")
@_replay_options
def runs_resume(
    run_id: str,
    target: str | None,
    executor: str,
    report: str | None,
    as_json: bool,
    quiet: bool,
    store: str | None,
) -> int:
    """Re-run what failed or never ran in RUN, reusing what succeeded (a new, linked run)."""
    return _replay(run_id, target, executor, report, as_json, quiet, store, steps=None)


@runs_group.command("rerun")
@click.argument("run_id", metavar="RUN")
@click.option(
    "-s", "--step", "steps", multiple=True, required=True, help="A step to re-run. Repeat."
)
@_replay_options
def runs_rerun(
    run_id: str,
    steps: tuple[str, ...],
    target: str | None,
    executor: str,
    report: str | None,
    as_json: bool,
    quiet: bool,
    store: str | None,
) -> int:
    """Re-run the given steps of RUN and everything downstream of them; reuse the rest."""
    return _replay(run_id, target, executor, report, as_json, quiet, store, steps=list(steps))


def _replay(
    run_id: str,
    target: str | None,
    executor: str,
    report: str | None,
    as_json: bool,
    quiet: bool,
    store: str | None,
    *,
    steps: list[str] | None,
) -> int:
    from plait.cli._running import conclude, execute, hooks_for
    from plait.cli._target import load_pipeline

    chosen = open_store(store, must_exist=True)
    full = resolve_run(chosen, run_id)
    if target is None:
        target = chosen.history.run(full, steps=False).target
        if target is None:
            raise CommandError(
                f"run {full} records no target (it was not started by `plait run` nor from "
                "an importable module)",
                "give the pipeline: -t FILE.py:NAME or -t module:attr",
            )
    pipeline = load_pipeline(target)
    hooks = hooks_for(quiet=quiet, profile=False, total=None)
    if steps is None:
        result = execute(
            lambda: pipeline.resume(full, store=chosen, executor=executor, hooks=hooks)
        )
    else:
        result = execute(
            lambda: pipeline.rerun(full, steps, store=chosen, executor=executor, hooks=hooks)
        )
    return conclude(
        result,
        outputs=None,
        as_json=as_json,
        report=report,
        terminal=_terminal(result),
        quiet=quiet,
    )


def _terminal(result: Any) -> list[str]:
    """The outputs no step of the run consumes, in pipeline order (as ``plait run``)."""
    graph = result.graph
    if graph is None:
        return []
    consumed = {data for item in graph.order for data in item.data_inputs.values()}
    return [o for item in graph.order for o in item.outputs if o not in consumed]


# -- lineage --------------------------------------------------------------------------------
@click.command("lineage")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def lineage_command(version: str, as_json: bool, store: str | None) -> int:
    """How the value with data VERSION came to be (a unique prefix is enough)."""
    from plait.cli._records import lineage_text, record_json
    from plait.io._records import lineage_datasets

    chosen = open_store(store, must_exist=True)
    full = _resolve_version(chosen, version)
    upstream = chosen.history.lineage(full)
    users = chosen.history.consumers(full)
    files = lineage_datasets(chosen, full, upstream, users)
    if as_json:
        click.echo(
            record_json(
                {"version": full, "lineage": upstream, "consumers": users, "datasets": files}
            )
        )
    else:
        click.echo(lineage_text(full, upstream, users))
        if files:
            click.echo("datasets:")
            click.echo(
                _table(
                    [
                        [d["name"], d["role"], d["type"], d["path"], d["data_version"][:12]]
                        for d in files
                    ]
                )
            )
    return EXIT_OK


def _table(rows: list[list[Any]]) -> str:
    """Rows of cells, indented, in columns (the last column not padded)."""
    cells = [[str("-" if cell is None else cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return "\n".join(
        "  " + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in cells
    )


# -- cache --------------------------------------------------------------------------------------
@click.group("cache")
@common
def cache_group() -> None:
    """The store's cache entries: list, clear, gc."""


@cache_group.command("list")
@click.option("--pipeline", help="Only entries of this pipeline.")
@click.option("--step", "steps", metavar="A,B", help="Only entries of these steps.")
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def cache_list(pipeline: str | None, steps: str | None, as_json: bool, store: str | None) -> int:
    """Cache entries, newest first, with their sizes."""
    from plait.cli._records import entries_text, record_json

    chosen = open_store(store, must_exist=True)
    names = split_names(steps) if steps else None
    entries = [
        e
        for e in chosen.entries()
        if (pipeline is None or e.pipeline == pipeline) and (names is None or e.step in names)
    ]
    entries.sort(key=lambda e: e.created, reverse=True)
    if as_json:
        rows = [
            {
                "key": e.key,
                "pipeline": e.pipeline,
                "step": e.step,
                "created": e.created,
                "run_id": e.run_id,
                "reusable": e.reusable,
                "outputs": {k: ref.to_json() for k, ref in e.outputs.items()},
            }
            for e in entries
        ]
        click.echo(record_json(rows))
    elif entries:
        click.echo(entries_text(entries))
    else:
        click.echo(f"no cache entries in {chosen.url}")
    return EXIT_OK


@cache_group.command("clear")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@store_option
@common
def cache_clear(yes: bool, store: str | None) -> int:
    """Delete every cache entry and stored value (run history is kept)."""
    import sys

    chosen = open_store(store, must_exist=True)
    if not yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"clearing the cache of {chosen.url} needs confirmation",
                "add --yes to clear it without being asked",
            )
        click.confirm(f"delete every cache entry and value in {chosen.url}?", abort=True)
    removed = chosen.clear()
    click.echo(f"removed {removed} files from {chosen.url}")
    return EXIT_OK


@cache_group.command("gc")
@click.option("--keep-last", type=int, metavar="N", help="Keep the N newest runs per pipeline.")
@click.option("--older-than", metavar="AGE", help="Drop runs older than AGE (e.g. 30d, 12h).")
@click.option("--keep-lineage", is_flag=True, help="Keep dropped runs' records and lineage.")
@store_option
@common
def cache_gc(
    keep_last: int | None, older_than: str | None, keep_lineage: bool, store: str | None
) -> int:
    """Drop old runs and the values only they kept alive (bare: unreferenced values only)."""
    from plait.cli._values import parse_duration

    if keep_last is not None and keep_last < 0:
        raise CommandError(f"--keep-last must be 0 or more, got {keep_last}")
    chosen = open_store(store, must_exist=True)
    age = parse_duration(older_than) if older_than else None
    counts = chosen.gc(keep_last=keep_last, older_than=age, keep_lineage=keep_lineage)
    click.echo(
        f"removed {counts['runs']} runs, {counts['entries']} cache entries and "
        f"{counts['artifacts']} values from {chosen.url}"
    )
    return EXIT_OK
