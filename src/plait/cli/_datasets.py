"""``plait datasets list TARGET``: a pipeline's datasets, their files and last versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_OK
from plait.cli._main import common

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = ["datasets_group"]


@click.group("datasets")
@common
def datasets_group() -> None:
    """A pipeline's datasets (see docs/datasets.md)."""


@datasets_group.command("list")
@click.argument("target")
@click.option(
    "--env",
    metavar="ENV",
    help="The conf env merged over conf/base (default: PLAIT_ENV, [tool.plait] env, local).",
)
@common
def list_command(target: str, env: str | None) -> int:
    """Each dataset of TARGET: name, role (source, sink or unused), type, whether its file
    exists, its last version (a versioned dataset's latest version, else the start of its
    file's content hash) and its path. TARGET is loaded as ``plait run`` loads it: for
    ENV, with the project's conf folder read (a wrong env or conf is the same error)."""
    from plait.cli._target import load_pipeline
    from plait.cli._values import project_config

    pipeline = load_pipeline(target, env)
    project_config(env)  # as plait run reads it, so a bad env or conf fails the same way
    if not pipeline.datasets:
        click.echo(f"pipeline {pipeline.name!r} has no datasets")
        return EXIT_OK
    rows = [["name", "role", "type", "exists", "last version", "path"]]
    rows += [_row(pipeline, name, dataset) for name, dataset in pipeline.datasets.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    return EXIT_OK


def _row(pipeline: Pipeline, name: str, dataset: Any) -> list[str]:
    from plait.io import FileDataset, dataset_path

    read = {d for item in pipeline.steps.values() for d in item.data_inputs.values()}
    role = "sink" if name in pipeline.producers else "source" if name in read else "unused"
    path = dataset.path if isinstance(dataset, FileDataset) else dataset_path(dataset) or "-"
    exists = _exists(dataset)
    return [
        name,
        role,
        type(dataset).__name__,
        "yes" if exists else "no",
        _last_version(dataset) if exists else "-",
        path,
    ]


def _exists(dataset: Any) -> bool:
    exists = getattr(dataset, "exists", None)
    if exists is None:
        return False
    try:
        return bool(exists())
    except Exception:  # a dataset that cannot tell
        return False


def _last_version(dataset: Any) -> str:
    from plait.io import FileDataset
    from plait.io._versions import FileVersions

    if not isinstance(dataset, FileDataset):
        return "-"
    if dataset.versioned:
        return dataset.latest_version() or "-"
    fs, path = dataset.filesystem()
    try:
        return FileVersions().version(fs, path)[:12]
    except OSError:
        return "-"
