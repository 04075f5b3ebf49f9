"""``plait doctor``: check a store, and with ``--repair`` fix what can be fixed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from plait.cli._errors import EXIT_FAILED, EXIT_OK
from plait.cli._main import common, open_store, store_option

if TYPE_CHECKING:
    from plait.store.doctor import Report

__all__ = ["doctor_command"]


@click.command("doctor")
@store_option
@click.option("--repair", is_flag=True, help="Fix what can be fixed (see docs/cli.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@common
def doctor_command(store: str | None, repair: bool, as_json: bool) -> int:
    """Check the store's index, artifacts and history; exit 1 when something is wrong.

    With --repair: drop entries whose artifacts are missing or damaged, delete leftover
    temporary files and unnamed artifacts, rebuild a lost cache index from the history,
    and move a damaged history aside, recovering its readable rows.
    """
    from plait.store.doctor import check
    from plait.store.doctor import repair as repair_store

    chosen = open_store(store, must_exist=True)
    report = repair_store(chosen) if repair else check(chosen)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(render(report, repaired=repair))
    return EXIT_OK if report.healthy else EXIT_FAILED


def render(report: Report, *, repaired: bool = False) -> str:
    """The report as text: what was done, what is wrong and what --repair would do."""
    lines = [f"repaired store {report.store}:"] if report.actions else []
    lines += [f"  {action}" for action in report.actions]
    history = (
        f", history schema version {report.history_version}"
        if report.history_version is not None
        else ""
    )
    counts = f"{report.entries} entries, {report.artifacts} artifacts{history}"
    if report.healthy:
        lines.append(f"store {report.store} is healthy: {counts}")
        return "\n".join(lines)
    count = len(report.problems)
    lines.append(f"store {report.store}: {count} problem{'s' if count > 1 else ''} ({counts})")
    for problem in report.problems:
        lines.append(f"  {problem.kind:<17} {problem.path}: {problem.detail}")
        fix = problem.repair or "no automatic repair: see docs/trust.md#repair"
        lines.append(f"  {'':<17} {'left as is' if repaired else '--repair'}: {fix}")
    if not repaired and any(problem.repair for problem in report.problems):
        lines.append("run plait doctor --repair to fix what can be fixed")
    return "\n".join(lines)
