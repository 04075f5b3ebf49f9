"""What ``plait run``, ``plait runs resume`` and ``plait runs rerun`` share: the hooks
they add, catching a failed run, and reporting a result (summary, values, report, exit
code)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_FAILED, EXIT_OK, CommandError

if TYPE_CHECKING:
    from plait.results import RunResult

__all__ = ["conclude", "execute", "format_value", "hooks_for"]

_VALUE_LIMIT = 2000


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
) -> int:
    """Print what the run did and return the exit code (0 succeeded, 1 failed)."""
    if report:
        _write_report(result, report)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=repr))
    else:
        click.echo(result.summary())
        if profile:
            click.echo(_profile_table(result))
        for name in outputs or ():
            if name in result.outputs:
                click.echo(f"{name} = {format_value(result.outputs[name])}")
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


def format_value(value: Any) -> str:
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
