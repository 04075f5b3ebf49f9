"""The catalog: every version of every asset, with its run, step, metadata and lineage.

Rows live in the history database (schema version 6): ``assets`` holds one row per
(project, name, version), where the version is the data version of the asset's plain
value, so two runs that produce equal data share one version (the first run that made
it is the one recorded); ``asset_aliases`` maps (project, name, alias) to one version:
``catalog.tag("price-model", version, "production")`` moves the alias there.

Resolving a version. ``load(name, version)`` and friends accept ``"latest"`` (the
newest version), an alias (``"production"``), a data version or a unique prefix of one,
or the id (or unique prefix) of the run that produced it, tried in that order; last, the
id of a run that reused a version from the cache names that version.

Loading reads the value from the store through the cache entry of the step execution
that produced it (or any later one that produced the same data version), with the
store's usual checks (checksum, signature with a secret): a damaged or planted artifact
is refused, never returned. Retention: ``Store.gc`` keeps the runs that produced an
aliased version, so an aliased version stays loadable (see :meth:`Catalog.protected_runs`).

Projects. A catalog opened through a store with a ``project`` lists, resolves and tags
only that project's assets unless ``all_projects=True``; a store without a project sees
every project's assets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, suggest

if TYPE_CHECKING:
    from plait.assets._types import AssetInfo
    from plait.history.history import History
    from plait.history.records import StepRecord
    from plait.store.store import Store

__all__ = ["AssetNotFound", "AssetVersion", "Catalog", "record_assets"]

_COLUMNS = (
    "project, name, version, kind, output, run_id, step, pipeline, experiment, metadata, "
    "tags, created_at"
)


class AssetNotFound(PlaitError, KeyError):
    """No asset, or no version of it, matches what was asked."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class AssetVersion:
    """One version of an asset, as the catalog recorded it.

    Attributes:
        name: The asset's name.
        version: Its data version (the content hash of the plain value).
        kind: ``"dataset"``, ``"model"``, ``"metrics"`` or ``"asset"``.
        project: The project of the run that produced it (``""``: none).
        output: The data name of the step output it is.
        run_id: The run that first produced this version; ``step`` the step.
        pipeline: That run's pipeline; ``experiment`` its experiment.
        metadata: What was captured (automatic facts plus the asset's own metadata).
        tags: The asset's tags (``Asset(tags=...)``).
        aliases: The aliases pointing at this version (``"production"``...).
        created_at: When it was recorded (epoch seconds).
    """

    name: str
    version: str
    kind: str
    project: str
    output: str
    run_id: str
    step: str
    pipeline: str
    experiment: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    created_at: float = 0.0

    @property
    def created(self) -> datetime:
        """When it was recorded (UTC)."""
        return datetime.fromtimestamp(self.created_at, UTC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "project": self.project,
            "output": self.output,
            "run_id": self.run_id,
            "step": self.step,
            "pipeline": self.pipeline,
            "experiment": self.experiment,
            "metadata": self.metadata,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "created_at": self.created_at,
        }


def _loads(text: Any, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def record_assets(
    history: History,
    infos: Sequence[AssetInfo],
    data_versions: Mapping[str, str],
    *,
    run_id: str,
    step: str,
    pipeline: str,
    experiment: str | None,
    project: str | None,
) -> int:
    """Write the catalog rows of the assets one step execution produced (a version
    already in the catalog is left as first recorded); return how many were new."""
    rows = []
    now = time.time()
    for info in infos:
        version = data_versions.get(info.output)
        if not version:
            continue  # not versioned (unhashable): nothing the catalog could load back
        rows.append(
            (
                project or "",
                info.name,
                version,
                info.kind,
                info.output,
                run_id,
                step,
                pipeline,
                experiment,
                json.dumps(info.metadata, default=repr),
                json.dumps(list(info.tags)),
                now,
            )
        )
    if not rows:
        return 0
    with history.db.transaction() as cursor:
        history.db.insert(
            cursor,
            "assets",
            _COLUMNS,
            rows,
            conflict="ON CONFLICT (project, name, version) DO NOTHING",
        )
    return len(rows)


class Catalog:
    """The assets recorded in a store's history (``store.catalog``).

    Args:
        history: The history holding the catalog.
        store: The store values are loaded from (None: ``load`` is unavailable).
        project: Only this project's assets (None: every project's).
    """

    def __init__(
        self, history: History, store: Store | None = None, project: str | None = None
    ) -> None:
        self.history = history
        self.store = store
        self.project = project

    def __repr__(self) -> str:
        scope = f", project={self.project!r}" if self.project else ""
        return f"Catalog({self.history.url!r}{scope})"

    # -- reading ---------------------------------------------------------------------
    def _scope(self, all_projects: bool) -> tuple[list[str], list[Any]]:
        if all_projects or self.project is None:
            return [], []
        return ["project = ?"], [self.project]

    def _aliases(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str, str], list[str]]:
        wanted = {name for _, name in keys}
        found: dict[tuple[str, str, str], list[str]] = {}
        if not wanted:
            return found
        marks = ", ".join("?" * len(wanted))
        rows = self.history.db.execute(
            f"SELECT project, name, alias, version FROM asset_aliases WHERE name IN ({marks}) "
            "ORDER BY alias",
            sorted(wanted),
        )
        for project, name, alias, version in rows:
            found.setdefault((str(project), str(name), str(version)), []).append(str(alias))
        return found

    def _versions(self, where: list[str], args: list[Any], limit: int | None) -> list[AssetVersion]:
        sql = f"SELECT {_COLUMNS} FROM assets"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, name, version"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.history.db.execute(sql, args)
        aliases = self._aliases((str(r[0]), str(r[1])) for r in rows)
        return [
            AssetVersion(
                name=str(name),
                version=str(version),
                kind=str(kind),
                project=str(project),
                output=str(output),
                run_id=str(run_id),
                step=str(step),
                pipeline=str(pipeline),
                experiment=None if experiment is None else str(experiment),
                metadata=_loads(metadata, {}),
                tags=tuple(_loads(tags, [])),
                aliases=tuple(aliases.get((str(project), str(name), str(version)), ())),
                created_at=float(created or 0.0),
            )
            for (
                project,
                name,
                version,
                kind,
                output,
                run_id,
                step,
                pipeline,
                experiment,
                metadata,
                tags,
                created,
            ) in rows
        ]

    def find(
        self,
        kind: str | None = None,
        name: str | None = None,
        tags: Iterable[str] | str | None = None,
        pipeline: str | None = None,
        *,
        run_id: str | None = None,
        all_projects: bool = False,
        limit: int | None = None,
    ) -> list[AssetVersion]:
        """Asset versions, newest first.

        Args:
            kind: Only this kind (``"dataset"``, ``"model"``, ``"metrics"``, ``"asset"``).
            name: Only the versions of this asset.
            tags: Only versions carrying every one of these tags or aliases.
            pipeline: Only versions produced by this pipeline's runs.
            run_id: Only versions first produced by this run.
            all_projects: Every project's assets, not only the store's project's.
            limit: At most this many.
        """
        from plait.assets._types import KINDS

        if kind is not None and kind not in KINDS:
            raise PlaitError(
                f"no asset kind {kind!r}; kinds: {sorted(KINDS)}{suggest(kind, KINDS)}"
            )
        where, args = self._scope(all_projects)
        for column, value in (("kind", kind), ("name", name), ("pipeline", pipeline)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if run_id is not None:
            where.append("run_id = ?")
            args.append(self.history.resolve(run_id))
        wanted = {tags} if isinstance(tags, str) else set(tags or ())
        found = self._versions(where, args, None if wanted else limit)
        if wanted:
            found = [v for v in found if wanted <= set(v.tags) | set(v.aliases)]
            found = found if limit is None else found[:limit]
        return found

    def names(self, *, all_projects: bool = False) -> list[str]:
        """The names of the assets in the catalog, sorted."""
        where, args = self._scope(all_projects)
        sql = "SELECT DISTINCT name FROM assets" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        return sorted(str(row[0]) for row in self.history.db.execute(sql + " ORDER BY name", args))

    def get(
        self, name: str, version: str = "latest", *, all_projects: bool = False
    ) -> AssetVersion:
        """One version of an asset: ``"latest"``, an alias, a data version (or unique
        prefix) or the id (or unique prefix) of the run that produced it (or that reused
        it from the cache).

        Raises:
            AssetNotFound: When the asset or the version is unknown, or a prefix is
                ambiguous.
        """
        every = self.find(name=name, all_projects=all_projects)
        if not every:
            raise AssetNotFound(
                f"no asset {name!r} in the catalog of {self.history.url}"
                f"{self._where()}{suggest(name, self.names(all_projects=all_projects))}"
            )
        if version == "latest":
            return every[0]
        by_alias = [v for v in every if version in v.aliases]
        if by_alias:
            return by_alias[0]
        for label, matches in (
            ("data version", [v for v in every if v.version.startswith(version)]),
            ("run", [v for v in every if v.run_id.startswith(version)]),
        ):
            if len({v.version for v in matches}) == 1:
                return matches[0]
            if matches:
                raise AssetNotFound(
                    f"{version!r} matches several versions of asset {name!r} (as a {label} "
                    "prefix): give more characters"
                )
        reused = self._reused_by_run(version, every)
        if reused is not None:
            return reused
        aliases = sorted({a for v in every for a in v.aliases})
        raise AssetNotFound(
            f"asset {name!r} has no version {version!r} (not 'latest', an alias, a data "
            f"version or a run id); aliases: {aliases or 'none'}; newest versions: "
            f"{[v.version[:12] for v in every[:5]]}{suggest(version, aliases)}"
        )

    def _reused_by_run(self, run_id: str, every: list[AssetVersion]) -> AssetVersion | None:
        """The version a run had from the cache (a run that reused a version is not its
        producer, but asking for the version of that run means it)."""
        try:
            full = self.history.resolve(run_id)
        except KeyError:
            return None
        rows = self.history.db.execute(
            "SELECT DISTINCT step, name, version FROM data WHERE run_id = ? AND role = 'out'",
            [full],
        )
        made = {(str(step), str(output), str(version)) for step, output, version in rows}
        for candidate in every:  # newest first
            if (candidate.step, candidate.output, candidate.version) in made:
                return candidate
        return None

    def _where(self) -> str:
        return (
            f" (project {self.project!r}; all_projects=True for every project)"
            if self.project
            else ""
        )

    def lineage(self, name: str, version: str = "latest") -> list[StepRecord]:
        """The step executions upstream of an asset version, across runs (nearest first:
        the producing step, then what produced its inputs...)."""
        return self.history.lineage(self.get(name, version).version)

    def load(self, name: str, version: str = "latest") -> Any:
        """The stored value of an asset version, read and verified like any artifact.

        Raises:
            AssetNotFound: When the version is unknown.
            PlaitError: When its value is no longer in the store (cleared, or collected
                by ``gc``), or the catalog has no store to read from.
            CorruptArtifact: When the stored bytes are damaged or not signed right.
        """
        found = self.get(name, version)
        if self.store is None:
            raise PlaitError("this catalog has no store to load values from: use store.catalog")
        rows = self.history.db.execute(
            "SELECT cache_key FROM steps WHERE run_id = ? AND name = ? AND cache_key IS NOT NULL",
            [found.run_id, found.step],
        )
        rows += self.history.db.execute(
            "SELECT s.cache_key FROM data d JOIN steps s ON s.run_id = d.run_id AND "
            "s.name = d.step WHERE d.version = ? AND d.role = 'out' AND s.cache_key IS NOT NULL",
            [found.version],
        )
        for (key,) in rows:
            entry = self.store.lookup(str(key))
            if entry is None:
                continue
            for ref in entry.outputs.values():
                if ref.version == found.version:
                    return self.store.get(ref)
        raise PlaitError(
            f"asset {name!r} version {found.version[:12]} (run {found.run_id[:12]}, step "
            f"{found.step!r}) is no longer in the store {self.store.url} (cleared or "
            f"collected); re-run run {found.run_id[:12]} to make it again, and tag the "
            "versions to keep (store.catalog.tag) so gc keeps them"
        )

    # -- aliases ---------------------------------------------------------------------
    def tag(self, name: str, version: str, alias: str) -> AssetVersion:
        """Point ``alias`` (``"production"``, ``"staging"``...) at one version of an asset
        (moving it from any other); returns that version.

        Raises:
            AssetNotFound: When the asset or version is unknown.
            PlaitError: When ``alias`` is ``"latest"`` or could be taken for a version.
        """
        if not isinstance(alias, str) or not alias or alias == "latest" or alias.strip() != alias:
            raise PlaitError(f"alias {alias!r} is not valid: use a word such as 'production'")
        found = self.get(name, version)
        if any(
            v.version.startswith(alias) or v.run_id.startswith(alias) for v in self.find(name=name)
        ):
            raise PlaitError(
                f"alias {alias!r} of asset {name!r} reads like a version or run id prefix: "
                "choose another word"
            )
        self.history.db.execute(
            "INSERT INTO asset_aliases (project, name, alias, version, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, name, alias) DO UPDATE SET "
            "version = excluded.version, created_at = excluded.created_at",
            [found.project, name, alias, found.version, time.time()],
        )
        return self.get(name, alias)

    def untag(self, name: str, alias: str) -> bool:
        """Remove an alias; True when it existed."""
        where, args = self._scope(False)
        sql = "DELETE FROM asset_aliases WHERE name = ? AND alias = ?"
        if where:
            sql += " AND " + " AND ".join(where)
        count = "SELECT COUNT(*) FROM asset_aliases WHERE name = ? AND alias = ?"
        if where:
            count += " AND " + " AND ".join(where)
        before = self.history.db.execute(count, [name, alias, *args])
        self.history.db.execute(sql, [name, alias, *args])
        return bool(before and before[0][0])

    def protected_runs(self) -> set[str]:
        """The runs that produced an aliased version (of any project): ``gc`` keeps them,
        and so their values."""
        rows = self.history.db.execute(
            "SELECT DISTINCT a.run_id FROM assets a JOIN asset_aliases t ON "
            "t.project = a.project AND t.name = a.name AND t.version = a.version"
        )
        return {str(row[0]) for row in rows}
