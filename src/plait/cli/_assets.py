"""``plait assets list|show|load|tag|untag``: the catalog of datasets, models and metrics.

Versions may be given as ``latest``, an alias (``production``), a data version or a
unique prefix of one, or the id (or a prefix) of the run that produced it. Listings
show the store's project only (``[tool.plait] project``) unless ``--all-projects``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import EXIT_OK, CommandError
from plait.cli._main import common, open_store, store_option

if TYPE_CHECKING:
    from plait.assets._catalog import AssetVersion, Catalog

__all__ = ["assets_group"]


def _catalog(store: str | None, all_projects: bool = False) -> Catalog:
    chosen = open_store(store, must_exist=True)
    catalog = chosen.catalog
    if all_projects:
        catalog.project = None
    return catalog


def _get(catalog: Catalog, name: str, version: str) -> AssetVersion:
    from plait.assets._catalog import AssetNotFound

    try:
        return catalog.get(name, version)
    except AssetNotFound as exc:
        raise CommandError(str(exc), "list the assets with: plait assets list") from exc


def _when(seconds: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _summary(found: AssetVersion) -> str:
    meta = found.metadata
    if "shape" in meta:
        return "shape " + "x".join(str(n) for n in meta["shape"])
    if found.kind == "model" and "class" in meta:
        return str(meta["class"]).rsplit(".", 1)[-1]
    if isinstance(meta.get("values"), dict):
        shown = ", ".join(f"{k}={_short(v)}" for k, v in list(meta["values"].items())[:4])
        return shown
    if "length" in meta:
        return f"length {meta['length']}"
    return str(meta.get("type", "")).rsplit(".", 1)[-1]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@click.group("assets", invoke_without_command=True)
@common
@click.pass_context
def assets_group(ctx: click.Context) -> int | None:
    """The catalog of assets (datasets, models, metrics): list, show, load, tag."""
    if ctx.invoked_subcommand is None:
        result: int = ctx.invoke(assets_list)
        return result
    return None


@assets_group.command("list")
@click.option("--kind", type=click.Choice(["dataset", "model", "metrics", "asset"]))
@click.option("--name", help="Only the versions of this asset.")
@click.option("--tag", "tags", multiple=True, help="Only versions with this tag or alias.")
@click.option("--pipeline", help="Only assets produced by this pipeline.")
@click.option("--all-projects", is_flag=True, help="Every project's assets.")
@click.option("-n", "--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def assets_list(
    kind: str | None,
    name: str | None,
    tags: tuple[str, ...],
    pipeline: str | None,
    all_projects: bool,
    limit: int,
    as_json: bool,
    store: str | None,
) -> int:
    """Asset versions, newest first."""
    from plait.cli._records import table

    catalog = _catalog(store, all_projects)
    found = catalog.find(kind=kind, name=name, tags=tags or None, pipeline=pipeline, limit=limit)
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in found], indent=2, default=repr))
        return EXIT_OK
    if not found:
        scope = f" of project {catalog.project!r}" if catalog.project else ""
        click.echo(f"no assets{scope} in {catalog.history.url}")
        return EXIT_OK
    rows = [("NAME", "KIND", "VERSION", "RUN", "STEP", "CREATED (UTC)", "ALIASES", "SUMMARY")]
    for v in found:
        rows.append(
            (
                v.name,
                v.kind,
                v.version[:12],
                v.run_id[:12],
                v.step,
                _when(v.created_at),
                ",".join(v.aliases) or "-",
                _summary(v),
            )
        )
    click.echo(table(rows))
    return EXIT_OK


@assets_group.command("show")
@click.argument("name")
@click.argument("version", default="latest")
@click.option("--all-projects", is_flag=True, help="Look in every project's assets.")
@click.option("--json", "as_json", is_flag=True)
@store_option
@common
def assets_show(
    name: str, version: str, all_projects: bool, as_json: bool, store: str | None
) -> int:
    """One asset version: metadata, run, step, aliases, lineage and other versions."""
    catalog = _catalog(store, all_projects)
    found = _get(catalog, name, version)
    lineage = catalog.history.lineage(found.version)
    if as_json:
        data = found.to_dict()
        data["lineage"] = [{"run_id": r.run_id, "step": r.name} for r in lineage]
        click.echo(json.dumps(data, indent=2, default=repr))
        return EXIT_OK
    lines = [
        f"asset {found.name} ({found.kind})",
        f"  version:    {found.version}",
        f"  run:        {found.run_id}  (pipeline {found.pipeline}, step {found.step}, "
        f"output {found.output})",
        f"  created:    {_when(found.created_at)} UTC",
    ]
    if found.project:
        lines.append(f"  project:    {found.project}")
    if found.experiment:
        lines.append(f"  experiment: {found.experiment}")
    lines.append(f"  aliases:    {', '.join(found.aliases) or '-'}")
    lines.append(f"  tags:       {', '.join(found.tags) or '-'}")
    lines.append("  metadata:")
    for key, value in found.metadata.items():
        lines.append(f"    {key}: {json.dumps(value, default=repr)}")
    lines.append("  lineage (producing step first):")
    for record in lineage[:20]:
        lines.append(f"    {record.name}  (run {record.run_id[:12]})")
    others = [v for v in catalog.find(name=name) if v.version != found.version]
    if others:
        lines.append("  other versions (newest first):")
        for other in others[:10]:
            alias = f"  [{', '.join(other.aliases)}]" if other.aliases else ""
            lines.append(f"    {other.version[:12]}  run {other.run_id[:12]}{alias}")
    click.echo("\n".join(lines))
    return EXIT_OK


def _write(value: Any, path: str) -> None:
    extension = os.path.splitext(path)[1].lower()
    if extension in (".csv", ".parquet") and hasattr(value, "to_csv"):
        if extension == ".csv":
            value.to_csv(path, index=False)
        else:
            value.to_parquet(path)
        return
    if extension == ".json":
        with open(path, "w", encoding="utf-8") as file:
            json.dump(value, file, indent=2, default=repr)
        return
    if extension in (".pkl", ".pickle"):
        import cloudpickle

        with open(path, "wb") as file:
            cloudpickle.dump(value, file)
        return
    raise CommandError(
        f"cannot write an asset to {path!r}",
        "write to FILE.pkl (any value), FILE.json (plain data), FILE.csv or FILE.parquet (frames)",
    )


@assets_group.command("load")
@click.argument("name")
@click.argument("version", default="latest")
@click.option(
    "-o", "--output", metavar="FILE", help="Write the value (.pkl, .json, .csv, .parquet)."
)
@click.option("--all-projects", is_flag=True, help="Look in every project's assets.")
@store_option
@common
def assets_load(
    name: str, version: str, output: str | None, all_projects: bool, store: str | None
) -> int:
    """Load an asset version from the store (verified); print it or write it to FILE."""
    catalog = _catalog(store, all_projects)
    found = _get(catalog, name, version)
    value = catalog.load(name, found.version)
    if output:
        _write(value, output)
        click.echo(f"wrote {found.name} {found.version[:12]} to {output}")
    else:
        click.echo(repr(value))
    return EXIT_OK


@assets_group.command("tag")
@click.argument("name")
@click.argument("version")
@click.argument("alias")
@store_option
@common
def assets_tag(name: str, version: str, alias: str, store: str | None) -> int:
    """Point ALIAS (production, staging...) at VERSION of asset NAME; gc keeps it."""
    catalog = _catalog(store)
    _get(catalog, name, version)
    tagged = catalog.tag(name, version, alias)
    click.echo(f"{name} {tagged.version[:12]} (run {tagged.run_id[:12]}) is now {alias!r}")
    return EXIT_OK


@assets_group.command("untag")
@click.argument("name")
@click.argument("alias")
@store_option
@common
def assets_untag(name: str, alias: str, store: str | None) -> int:
    """Remove ALIAS from asset NAME."""
    catalog = _catalog(store)
    if not catalog.untag(name, alias):
        raise CommandError(f"asset {name!r} has no alias {alias!r}", "see: plait assets show NAME")
    click.echo(f"removed alias {alias!r} of {name}")
    return EXIT_OK
