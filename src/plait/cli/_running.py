"""What ``plait run``, ``plait runs resume`` and ``plait runs rerun`` share: the hooks
they add, catching a failed run, and reporting a result (summary, values, report, exit
code)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_FAILED, EXIT_OK, CommandError

if TYPE_CHECKING:
    from plait.results import RunResult

__all__ = [
    "conclude",
    "execute",
    "format_value",
    "hooks_for",
    "json_values",
    "recorded_target",
    "short_value",
]

_VALUE_LIMIT = 2000  # characters of a value shown in full (plait debug, --json)
_SHORT_LIMIT = 120  # characters of a value on its ``name = repr`` line after a run


def hooks_for(*, quiet: bool, profile: bool, total: int | None) -> list[Any]:
    """The hooks of a command-line run: progress (unless quiet), profiling if asked."""
    hooks: list[Any] = []
    if not quiet:
        from plait.observe.progress import ProgressHook

        hooks.append(ProgressHook(total=total))
    if profile:
        from plait.observe.profile import ProfileHook

        hooks.append(ProfileHook())
    return hooks


def recorded_target(target: str) -> str:
    """The target as recorded with a run, so a resume elsewhere loads the same code: a
    file (``flow.py:NAME``, ``pipeline.yaml``) made absolute; ``MODULE:NAME`` as given.

    >>> recorded_target("pkg.flows:etl")
    'pkg.flows:etl'
    >>> recorded_target("/srv/flow.py:p")
    '/srv/flow.py:p'
    """
    import os

    if target.endswith((".yaml", ".yml")):
        return os.path.abspath(target)
    location, colon, name = target.rpartition(":") if ":" in target else (target, "", "")
    if location.endswith(".py") or os.sep in location or "/" in location:
        return os.path.abspath(location) + colon + name
    return target


def execute(start: Callable[[], RunResult]) -> RunResult:
    """Run ``start``; a failed run's result is returned rather than raised."""
    from plait.errors import RunFailed

    try:
        return start()
    except RunFailed as failed:
        return failed.result


def conclude(
    result: RunResult,
    *,
    outputs: Sequence[str] | None,
    as_json: bool,
    report: str | None,
    profile: bool = False,
    terminal: Sequence[str] = (),
    quiet: bool = False,
) -> int:
    """Print what the run did and return the exit code (0 succeeded, 1 failed).

    Args:
        result: The run's result.
        outputs: The outputs asked for with ``--outputs``: their values are printed.
        as_json: Print the result as JSON (with a ``values`` object) instead of text.
        report: Write the HTML report there.
        profile: Print each step's memory figures.
        terminal: The outputs no step of the run consumes: their values are printed
            when ``outputs`` asks for none.
        quiet: Print no values of terminal outputs (the summary and the values of
            ``outputs`` still).
    """
    if report:
        _write_report(result, report)
    shown = [name for name in (outputs or terminal) if name in result.outputs]
    if as_json:
        data = result.to_dict()
        data["values"], data["values_as_repr"] = json_values(result.outputs, shown)
        click.echo(json.dumps(data, indent=2, default=repr))
    else:
        click.echo(result.summary())
        if profile:
            click.echo(_profile_table(result))
        if outputs:  # asked for by name: printed in full (up to 2,000 characters)
            for name in shown:
                click.echo(f"{name} = {format_value(result.outputs[name])}")
        elif not quiet:
            for name in shown:
                click.echo(f"{name} = {short_value(result.outputs[name])}")
    failed = [r for r in result.steps.values() if r.status == "failed"]
    for record in failed:
        if record.error is None:
            continue
        click.echo(f"\nstep {record.name!r} failed: {record.error}", err=True)
        if record.error.traceback:
            click.echo(record.error.traceback.rstrip(), err=True)
    if report:
        click.echo(f"report written to {report}", err=True)
    return EXIT_OK if result.ok else EXIT_FAILED


def json_values(
    values: Mapping[str, Any], names: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """``names`` -> value as JSON where possible, and the names shown as a repr instead.

    A value that JSON cannot encode (NaN included), or whose JSON is over 2,000 characters,
    is given as its (truncated) repr string.

    >>> json_values({"a": 1, "b": {1}}, ["a", "b"])
    ({'a': 1, 'b': '{1}'}, ['b'])
    """
    shown: dict[str, Any] = {}
    as_repr: list[str] = []
    for name in names:
        value = values[name]
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            encoded = None
        if encoded is not None and len(encoded) <= _VALUE_LIMIT:
            shown[name] = value
        else:
            shown[name] = short_value(value, limit=_VALUE_LIMIT)
            as_repr.append(name)
    return shown, as_repr


def short_value(value: Any, *, limit: int = _SHORT_LIMIT) -> str:
    """The repr of ``value`` on one line, cut to ``limit`` characters.

    >>> short_value("abc")
    "'abc'"
    >>> short_value(list(range(100)), limit=12)
    '[0, 1, 2, 3,… (390 characters)'
    """
    text = repr(value)
    line = text.split("\n", 1)[0]
    if len(line) > limit or line != text:
        return f"{line[:limit]}… ({len(text)} characters)"
    return text


def format_value(value: Any) -> str:
    """The repr of ``value``, cut after 2,000 characters."""
    text = repr(value)
    if len(text) > _VALUE_LIMIT:
        return f"{text[:_VALUE_LIMIT]}… ({len(text)} characters; use --json or a sink step)"
    return text


def _write_report(result: RunResult, path: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(result.to_html())
    except OSError as exc:
        raise CommandError(
            f"cannot write the report to {path!r}: {exc.strerror}", exit_code=EXIT_FAILED
        ) from exc


def _profile_table(result: RunResult) -> str:
    from plait.cli._records import table

    rows = [("STEP", "PEAK MEMORY", "RSS CHANGE")]
    for record in result.steps.values():
        peak = record.metrics.get("peak_memory_bytes")
        if peak is None:
            continue
        rss = record.metrics.get("rss_delta_bytes")
        rows.append((record.name, _mib(peak), "-" if rss is None else _mib(rss)))
    if len(rows) == 1:
        return "profile: no step ran in this process"
    return "profile:\n" + table(rows)


def _mib(count: float) -> str:
    return f"{count / 2**20:.2f} MiB"
