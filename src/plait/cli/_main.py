"""The ``plait`` command: its group, global options, error handling, and the commands
about one pipeline (``run``, ``show``, ``why``); ``debug`` and the store commands live
in their own modules.

Only :mod:`click` is imported up front; everything else is imported by the command that
needs it, so ``plait --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from plait.cli._errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
)

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass(slots=True)
class _Settings:
    debug: bool = False
    verbose: int = 0


_SETTINGS = _Settings()


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (the live display redirects it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _configure_logging() -> None:
    """The command line owns the process: it adds the one handler (the library never does)."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(handler)
    level = (
        logging.DEBUG
        if _SETTINGS.verbose > 1
        else logging.INFO
        if _SETTINGS.verbose
        else logging.WARNING
    )
    root.setLevel(level)
    # Records of a library that sets its own logger's level (distributed logs at INFO,
    # tracebacks of connections closed at shutdown included) reach the root's handler
    # whatever the root's level: the handler filters too.
    for installed in root.handlers:
        if isinstance(installed, _StderrHandler):
            installed.setLevel(level)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _SETTINGS.debug = True


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _SETTINGS.verbose += value
        _configure_logging()


def common(func: F) -> F:
    """``--debug`` and ``--verbose``, accepted by the group and by every command."""
    func = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show tracebacks of errors.",
    )(func)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_verbose,
        help="Log more (-v: info, -vv: debug).",
    )(func)


STORE_HELP = "Store directory or URL (default: PLAIT_STORE, [tool.plait] store, ./.plait)."


def store_option(func: F) -> F:
    """The ``--store`` option."""
    return click.option("--store", metavar="DIR", help=STORE_HELP)(func)


def param_options(func: F) -> F:
    """``--param``, ``--config``, ``--set`` and ``--env``."""
    func = click.option(
        "--env",
        metavar="ENV",
        help="The conf env merged over conf/base (default: PLAIT_ENV, [tool.plait] env, local).",
    )(func)
    func = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set one config value, e.g. --set model.test_size=0.3 (YAML-typed). Repeat.",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        metavar="FILE",
        help="A .toml, .json or .yaml file merged over the pipeline's config.",
    )(func)
    return click.option(
        "-p",
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="A param value, typed by the step's annotation (else JSON, else text). Repeat.",
    )(func)


_PLANNED: dict[str, str] = {}  # commands announced but not in this release: name -> what


class _Group(click.Group):
    """A group that says so when a command is planned but not yet here."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name in _PLANNED and self.get_command(ctx, name) is None:
            raise CommandError(
                f"plait {name} ({_PLANNED[name]}) is planned but not in this release",
                "plait --help lists the commands there are",
            )
        return super().resolve_command(ctx, args)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="plait", prog_name="plait")
@common
def cli() -> None:
    """plait: run, inspect and debug pipelines of plain Python functions.

    TARGET is FILE.py:NAME, MODULE:NAME (NAME may be left out when the file defines
    one pipeline) or a YAML pipeline (pipeline.yaml). Exit codes: 0 ok, 1 run failed,
    2 usage or validation error, 130 interrupted.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    _SETTINGS.debug = False
    _SETTINGS.verbose = 0
    _configure_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="plait", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        _traceback_if_debug()
        exc.show()
        return exc.exit_code
    except Exception as exc:
        return _failed(exc)
    finally:
        _close_stores()
    return code if isinstance(code, int) else EXIT_OK


def _traceback_if_debug() -> None:
    if _SETTINGS.debug:
        traceback.print_exc()


def _failed(exc: Exception) -> int:
    """An error that escaped a command: a message and a fix; a traceback only with --debug."""
    from plait.errors import (
        PipelineValidationError,
        PlaitError,
        StepDefinitionError,
        UsageError,
    )

    _traceback_if_debug()
    hint = "run again with --debug to see the traceback"
    if isinstance(exc, PipelineValidationError):
        code = EXIT_USAGE
        hint = "fix these problems; a missing param is given with --param NAME=VALUE"
    elif isinstance(exc, UsageError | StepDefinitionError):
        code = EXIT_USAGE
    elif isinstance(exc, PlaitError):
        code = EXIT_FAILED
    else:
        code = EXIT_FAILED
        hint = "this looks like a bug in plait or in a hook; " + hint
    click.echo(f"Error: {exc}", err=True)
    if not _SETTINGS.debug:
        click.echo(f"  hint: {hint}", err=True)
    return code


# -- helpers shared by the commands -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigOptions:
    """``--config``, ``--set`` and ``--env`` as given."""

    file: str | None = None
    sets: tuple[str, ...] = ()
    env: str | None = None


def prepare(
    target: str,
    params: Sequence[str],
    config: ConfigOptions,
    select: Callable[[Pipeline], Pipeline] | None = None,
) -> tuple[Pipeline, dict[str, Any], Any]:
    """Load the target, cut it to a selection, and parse ``--param`` / the config for it.

    Params that only steps outside the selection read are dropped, with a note; config
    keys are checked against the whole pipeline. The config is layered: the pipeline's,
    the project's conf folder, ``--config``, then ``--set`` (None: the pipeline's own).
    """
    from plait.cli._target import drop_outside, load_pipeline
    from plait.cli._values import (
        check_config_keys,
        check_set_keys,
        load_config,
        merge_config,
        parse_params,
        parse_sets,
        project_config,
    )

    sets = parse_sets(config.sets)
    full = load_pipeline(target, config.env)
    pipeline = full if select is None else select(full)
    values = parse_params(params, pipeline)
    if pipeline is not full:
        values = drop_outside(values, full, pipeline)
    merged, changed = pipeline.config, False
    project = project_config(config.env)
    if project:
        merged, changed = merge_config(merged, project), True
    if config.file:
        overrides = load_config(config.file)
        check_config_keys(full, overrides, config.file)
        merged, changed = merge_config(merged, overrides), True
    if sets:
        from plait.config import nest

        check_set_keys(full, sets, config.sets)
        merged, changed = merge_config(merged, nest(sets)), True
    return pipeline, values, merged if changed else None


def split_names(text: str | None, option: str = "--outputs") -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CommandError(f"{option} {text!r} names nothing", f"write {option} a,b")
    return names


_OPENED: list[Any] = []  # stores opened by the command, closed when it ends


def open_store(option: str | None, *, must_exist: bool = False) -> Store:
    """The store of a command (see :func:`plait.cli._values.open_store`)."""
    from plait.cli._values import open_store as opened

    store = opened(option, must_exist=must_exist)
    _OPENED.append(store)
    return store


def _close_stores() -> None:
    while _OPENED:
        close = getattr(_OPENED.pop(), "close", None)
        if close is not None:
            close()


# -- commands ------------------------------------------------------------------------------
@cli.command("run")
@click.argument("target")
@param_options
@click.option("--outputs", metavar="A,B", help="Compute only these outputs (and print them).")
@click.option("--from-steps", metavar="A,B", help="Run only these steps and what follows them.")
@click.option("--to-steps", metavar="A,B", help="Run only these steps and what they need.")
@click.option("--tags", "step_tags", metavar="T1,T2", help="Run only the steps with these tags.")
@click.option(
    "-e",
    "--executor",
    help="sequential (default, or [tool.plait] executor), threads[:N], processes[:N], "
    "dask[:ADDRESS], ray[:ADDRESS], celery:BROKER_URL.",
)
@click.option(
    "--worker-setup",
    metavar="MODULE:FUNCTION",
    help="Run this function once in every worker before its first step (default: "
    "[tool.plait] worker_setup).",
)
@click.option(
    "--force",
    multiple=True,
    is_flag=False,
    flag_value="*",
    metavar="[STEP]",
    help="Recompute STEP despite the cache (repeat); alone: recompute everything.",
)
@store_option
@click.option(
    "--on-error",
    type=click.Choice(["raise", "continue"]),
    default="raise",
    show_default=True,
    help="Stop at the first failure, or run every branch that does not depend on it.",
)
@click.option("--report", metavar="FILE.html", help="Write a self-contained HTML report.")
@click.option(
    "--tag", "tags", multiple=True, help="A label recorded with the run (not --tags). Repeat."
)
@click.option("--profile", is_flag=True, help="Measure each step's peak memory.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress display, no values of terminal outputs."
)
@common
def run_command(
    target: str,
    params: tuple[str, ...],
    config_file: str | None,
    sets: tuple[str, ...],
    env: str | None,
    outputs: str | None,
    from_steps: str | None,
    to_steps: str | None,
    step_tags: str | None,
    executor: str | None,
    worker_setup: str | None,
    force: tuple[str, ...],
    store: str | None,
    on_error: str,
    report: str | None,
    tags: tuple[str, ...],
    profile: bool,
    as_json: bool,
    quiet: bool,
) -> int:
    """Run the pipeline TARGET, with a live progress display on a terminal.

    It ends with the values of the outputs no step consumes (or of --outputs).
    """
    from plait.cli._running import conclude, execute, hooks_for, recorded_target
    from plait.cli._target import select

    wanted = split_names(outputs)

    def selected(full: Pipeline) -> Pipeline:
        return select(
            full,
            from_steps=split_names(from_steps, "--from-steps"),
            to_steps=split_names(to_steps, "--to-steps"),
            tags=split_names(step_tags, "--tags"),
            outputs=wanted,
        )

    pipeline, values, config = prepare(
        target, params, ConfigOptions(config_file, sets, env), selected
    )
    if executor is None:
        executor = _project_executor()
    chosen_executor = _with_worker_setup(executor, worker_setup)
    forced: bool | list[str] = True if "*" in force else list(force)
    total, terminal = _planned(pipeline, values, wanted, config)
    chosen = open_store(store)
    result = execute(
        lambda: pipeline.run(
            params=values,
            outputs=wanted,
            executor=chosen_executor,
            store=chosen,
            force=forced,
            on_error=on_error,
            tags=list(tags) or None,
            hooks=hooks_for(quiet=quiet, profile=profile, total=total),
            config=config,
            target=recorded_target(target),
        )
    )
    return conclude(
        result,
        outputs=wanted,
        as_json=as_json,
        report=report,
        profile=profile,
        terminal=terminal,
        quiet=quiet,
    )


def _with_worker_setup(executor: str, option: str | None) -> Any:
    """The executor, made here with the worker setup of ``--worker-setup`` or
    ``[tool.plait] worker_setup`` when there is one (the run then owns it all the same:
    :class:`plait.run.executors.Owned`); else the executor string itself."""
    from plait.config import ConfigError, project_settings
    from plait.errors import UsageError
    from plait.run.executors import Owned, make_executor

    setup = option
    if setup is None:
        try:
            setup = project_settings().worker_setup
        except ConfigError as exc:
            raise CommandError(str(exc), "fix the [tool.plait] table of pyproject.toml") from exc
    if setup is None:
        return executor
    try:
        made, _ = make_executor(executor, setup=setup)
    except UsageError as exc:
        raise CommandError(str(exc), "give --worker-setup MODULE:FUNCTION") from exc
    return Owned(made)


def _project_executor() -> str:
    """``[tool.plait] executor``, else ``"sequential"``."""
    from plait.config import ConfigError, project_settings

    try:
        return project_settings().executor or "sequential"
    except ConfigError as exc:
        raise CommandError(str(exc), "fix the [tool.plait] table of pyproject.toml") from exc


def _planned(
    pipeline: Pipeline, params: dict[str, Any], outputs: list[str] | None, config: Any
) -> tuple[int | None, list[str]]:
    """How many steps the run has, and its terminal outputs (which no step of it reads)."""
    try:
        plan = pipeline.plan(params, outputs, config)
    except Exception:  # the run itself reports what is wrong
        return None, []
    terminal = [o for item in plan.order for o in item.outputs if o not in plan.consumed]
    return len(plan.order), terminal


@cli.command("show")
@click.argument("target")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["ascii", "mermaid", "dot", "svg"]),
    default="ascii",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of the terminal.")
@common
def show_command(target: str, fmt: str, output: str | None) -> int:
    """Draw the pipeline TARGET (svg: plait's own drawing, as in HTML reports)."""
    from plait.cli._target import check_structure, load_pipeline

    pipeline = load_pipeline(target)
    check_structure(pipeline)
    if fmt == "ascii":
        text = pipeline.to_ascii()
    elif fmt == "mermaid":
        text = pipeline.to_mermaid()
    elif fmt == "dot":
        text = pipeline.to_dot()
    else:
        text = _svg(pipeline)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)
    return EXIT_OK


def _svg(pipeline: Pipeline) -> str:
    """A standalone SVG file of the pipeline, from the drawing of the HTML view."""
    import re

    from plait.viz import pipeline_to_html

    match = re.search(r"<svg\b.*?</svg>", pipeline_to_html(pipeline), re.DOTALL)
    if match is None:
        raise CommandError(
            f"pipeline {pipeline.name!r} is too large to draw as SVG here",
            "use Graphviz: plait show TARGET -f dot | dot -Tsvg -o graph.svg",
            exit_code=EXIT_FAILED,
        )
    svg = match.group(0).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg


@cli.command("why")
@click.argument("target")
@click.argument("step")
@param_options
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@common
def why_command(
    target: str,
    step: str,
    params: tuple[str, ...],
    config_file: str | None,
    sets: tuple[str, ...],
    env: str | None,
    store: str | None,
    as_json: bool,
) -> int:
    """Would STEP of TARGET run now, and why? A cache check that executes nothing."""
    import json

    from plait.cli._why import explain, render

    pipeline, values, config = prepare(target, params, ConfigOptions(config_file, sets, env))
    chosen = open_store(store, must_exist=True)
    verdicts = explain(pipeline, step, chosen, values, config)
    if as_json:
        rows = [
            {"step": v.step, "decision": v.decision, "reason": v.reason, "waits_on": v.waits_on}
            for v in verdicts
        ]
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(render(verdicts, step, pipeline.name, chosen.url))
    return EXIT_OK


def _register() -> None:
    from plait.cli import _datasets, _debug, _doctor, _history, _new, _serve, _ui
    from plait.cli._assets import assets_group

    cli.add_command(assets_group)
    cli.add_command(_debug.debug_command)
    cli.add_command(_doctor.doctor_command)
    cli.add_command(_datasets.datasets_group)
    cli.add_command(_history.runs_group)
    cli.add_command(_history.lineage_command)
    cli.add_command(_history.cache_group)
    cli.add_command(_new.new_command)
    cli.add_command(_ui.ui_command)
    cli.add_command(_serve.serve_command)
    cli.add_command(_serve.stream_command)


_register()
