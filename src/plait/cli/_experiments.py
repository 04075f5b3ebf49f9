"""The experiment views of ``plait runs``: ``runs list --experiment E [--sort METRIC]``
(the experiment table) and ``runs compare A B C ...`` (several runs side by side)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import CommandError

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["RUN_SORTS", "compare_many_text", "experiment_listing"]

#: ``--sort`` values that are columns of the runs table (anything else is a metric).
RUN_SORTS = ("started", "duration", "pipeline", "status")


def experiment_listing(
    chosen: Store,
    experiment: str,
    *,
    sort: str | None,
    descending: bool,
    limit: int,
    as_json: bool,
    project: str | None,
    filters: Mapping[str, Any],
) -> None:
    """Print the experiment table (as JSON with ``as_json``)."""
    from plait.errors import PlaitError
    from plait.history.experiments import experiment_table

    given = {k: v for k, v in filters.items() if v is not None}
    if not chosen.history.runs(experiment=experiment, project=project, limit=1, **given):
        shown = " ".join(f"--{k} {v}" for k, v in {"experiment": experiment, **given}.items())
        scope = f" (project {project!r}; --all-projects for every project)" if project else ""
        click.echo(f"no run matched {shown} in {chosen.url}{scope}")
        return
    try:
        table = experiment_table(
            chosen.history,
            experiment,
            project=project,
            limit=limit,
            filters=given,
        )
        if sort is not None:
            table = table.sort(sort, descending=descending)
    except PlaitError as exc:
        raise CommandError(str(exc), "list the runs with: plait runs list") from exc
    click.echo(json.dumps(table.to_dict(), indent=2, default=repr) if as_json else table.to_text())


def _cell(value: Any, width: int = 24) -> str:
    if value is None:
        return "-"
    text = (
        f"{value:.4g}"
        if isinstance(value, float)
        else value
        if isinstance(value, str)
        else (json.dumps(value, default=repr))
    )
    return text if len(text) <= width else text[: width - 1] + "…"


def compare_many_text(diff: Mapping[str, Any]) -> str:
    """``plait runs compare A B C ...``: one column per run."""
    from plait.cli._records import table

    runs: Sequence[str] = diff["runs"]
    letters = [chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(runs))]
    lines = [
        f"{letter} = run {run_id} ({status}, version {version or '-'})"
        for letter, run_id, status, version in zip(
            letters, runs, diff["status"], diff["version"], strict=True
        )
    ]
    for part, title in (
        ("metrics", "metrics"),
        ("params", "params that differ"),
        ("config", "config values that differ"),
    ):
        values: Mapping[str, list[Any]] = diff[part]
        if not values:
            lines.append(f"{part}: {'none' if part == 'metrics' else 'same'}")
            continue
        lines.append(f"{title}:")
        rows = [("", *letters)]
        rows += [(f"  {key}", *(_cell(v) for v in per_run)) for key, per_run in values.items()]
        lines.append(table([(*row, "") for row in rows]))
    rows = [("STEP", *(f"STATUS {x}" for x in letters), "CODE", "OUTPUT")]
    for name, step in diff["steps"].items():
        missing = [x for x, s in zip(letters, step["status"], strict=True) if s is None]
        code = "same" if step["same_code"] else "CHANGED"
        output = "same" if step["same_output"] else "CHANGED"
        if missing:
            code = output = "not in " + ",".join(missing)
        rows.append((name, *(s or "-" for s in step["status"]), code, output))
    lines.append(table(rows))
    return "\n".join(lines)
