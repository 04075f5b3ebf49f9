"""Experiments: the runs of one experiment side by side, and the best of them.

``history.experiment("pricing")`` reads the experiment's runs (newest first) and builds
an :class:`ExperimentTable`: one row per run with its status, version, tags, the params
and config values *that differ between the runs* (a value every run shares says nothing
about why their metrics differ), and its metrics. ``table.sort("r2")`` orders the rows
by a metric (runs without it last); ``history.best("pricing", "r2", mode="max")`` is the
run with the best value.

A run's metrics are its steps' metrics (``current().log_metric`` and ``Metrics`` assets)
under the metric's name, or ``"step.metric"`` when two steps log one name. A step served
from the cache logged nothing in that run: its metrics are those of the execution that
computed the cached value (the newest executed record with the same cache key), so a run
that reuses a result still shows the metrics of that result. Internal measurements
(``peak_memory_bytes``) are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from plait.errors import PlaitError, suggest

if TYPE_CHECKING:
    from plait.history.history import History
    from plait.history.records import RunRecord

__all__ = [
    "ExperimentRow",
    "ExperimentTable",
    "best_run",
    "compare_runs",
    "experiment_table",
    "experiments",
    "run_metrics",
]

_INTERNAL = frozenset({"peak_memory_bytes"})


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One run of an experiment: what varied, and what it measured."""

    run_id: str
    status: str
    started_at: float
    version: str | None
    tags: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "version": self.version,
            "tags": list(self.tags),
            "params": self.params,
            "config": self.config,
            "metrics": self.metrics,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True, slots=True)
class ExperimentTable:
    """Runs by (params and config values that differ) and metrics.

    Attributes:
        name: The experiment.
        rows: One :class:`ExperimentRow` per run.
        params: The param names whose values differ between the runs (columns).
        config: The config keys whose values differ between the runs.
        metrics: Every metric name any run has.
    """

    name: str
    rows: tuple[ExperimentRow, ...]
    params: tuple[str, ...]
    config: tuple[str, ...]
    metrics: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def sort(self, metric: str, *, descending: bool = True) -> ExperimentTable:
        """The rows ordered by ``metric`` (runs without a number for it last).

        Raises:
            PlaitError: When no run has that metric (with the names it has).
        """
        if self.rows and metric not in self.metrics:
            raise PlaitError(
                f"experiment {self.name!r} has no metric {metric!r}; its metrics: "
                f"{list(self.metrics)}{suggest(metric, self.metrics)}"
            )
        scored = [r for r in self.rows if _number(r.metrics.get(metric)) is not None]
        rest = [r for r in self.rows if _number(r.metrics.get(metric)) is None]
        scored.sort(key=lambda r: _number(r.metrics[metric]) or 0.0, reverse=descending)
        return ExperimentTable(self.name, (*scored, *rest), self.params, self.config, self.metrics)

    def columns(self) -> list[str]:
        """The column names of :meth:`records`."""
        return [
            "run_id",
            "status",
            "version",
            *(f"params.{p}" for p in self.params),
            *(f"config.{c}" for c in self.config),
            *self.metrics,
        ]

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row (keys :meth:`columns`), for printing or a data frame."""
        return [
            {
                "run_id": r.run_id,
                "status": r.status,
                "version": r.version,
                **{f"params.{p}": r.params.get(p) for p in self.params},
                **{f"config.{c}": r.config.get(c) for c in self.config},
                **{m: r.metrics.get(m) for m in self.metrics},
            }
            for r in self.rows
        ]

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame indexed by run id (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.records(), columns=self.columns()).set_index("run_id")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "experiment": self.name,
            "params": list(self.params),
            "config": list(self.config),
            "metrics": list(self.metrics),
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_text(self) -> str:
        """A plain text table (run ids shortened to 12 characters)."""
        header = self.columns()
        lines = [
            [_cell(v)[:12] if k == "run_id" else _cell(v) for k, v in rec.items()]
            for rec in self.records()
        ]
        widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        out += [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def run_metrics(history: History, record: RunRecord) -> dict[str, Any]:
    """A run's metrics by name (``"step.metric"`` where two steps log one name), those of
    cached steps taken from the execution that computed their value."""
    by_step: dict[str, dict[str, Any]] = {}
    reused: dict[str, str] = {}  # cached step -> its cache key
    for name, step in record.steps.items():
        metrics = {k: v for k, v in step.metrics.items() if k not in _INTERNAL}
        if metrics:
            by_step[name] = metrics
        elif step.cached and step.cache_key:
            reused[name] = step.cache_key
    if reused:
        computed = _computed_metrics(history, set(reused.values()))
        for name, key in reused.items():
            if computed.get(key):
                by_step[name] = computed[key]
    counts: dict[str, int] = {}
    for metrics in by_step.values():
        for key in metrics:
            counts[key] = counts.get(key, 0) + 1
    merged: dict[str, Any] = {}
    for step_name in record.steps:  # in the order the steps ran
        for key, value in by_step.get(step_name, {}).items():
            merged[key if counts[key] == 1 else f"{step_name}.{key}"] = value
    return merged


_CHUNK = 500  # cache keys per query


def _computed_metrics(history: History, keys: set[str]) -> dict[str, dict[str, Any]]:
    """Cache key -> the metrics of the newest execution that computed it (few queries,
    however many steps were cached)."""
    found: dict[str, dict[str, Any]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        part = ordered[start : start + _CHUNK]
        rows = history.db.execute(
            "SELECT cache_key, metrics FROM steps WHERE cache_key IN "
            f"({', '.join('?' * len(part))}) AND cached = 0 AND status = 'ok' "
            "AND metrics IS NOT NULL ORDER BY started_at",
            part,
        )
        for key, text in rows:  # oldest first: the newest execution wins
            try:
                metrics = json.loads(text) if text else {}
            except ValueError:
                continue
            if isinstance(metrics, dict):
                kept = {k: v for k, v in metrics.items() if k not in _INTERNAL}
                if kept:
                    found[str(key)] = kept
    return found


def _varying(values: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    keys = sorted({k for v in values for k in v})
    if len(values) < 2:
        return tuple(keys)
    missing = object()
    return tuple(
        k
        for k in keys
        if len({json.dumps(v.get(k, missing), default=repr, sort_keys=True) for v in values}) > 1
    )


def experiment_table(
    history: History,
    name: str,
    *,
    project: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    sort: str | None = None,
    descending: bool = True,
    filters: Mapping[str, Any] | None = None,
) -> ExperimentTable:
    """The table of experiment ``name``'s runs (see the module docstring); ``filters``
    are more keyword arguments of ``history.runs`` (``version``, ``pipeline``...).

    Raises:
        PlaitError: When the experiment has no runs (naming those that exist), or no run
            has the ``sort`` metric.
    """
    records = history.runs(
        experiment=name, project=project, status=status, limit=limit, **dict(filters or {})
    )
    if not records:
        known = experiments(history, project=project)
        raise PlaitError(
            f"no runs of experiment {name!r} in {history.url}"
            + (f" (project {project!r})" if project else "")
            + f"; experiments: {known[:20]}{suggest(name, known)}"
        )
    rows = []
    for record in records:
        rows.append(
            ExperimentRow(
                run_id=record.run_id,
                status=record.status,
                started_at=record.start_time,
                version=record.version,
                tags=tuple(record.tags),
                params=dict(record.params),
                config=dict(record.config),
                metrics=run_metrics(history, record),
            )
        )
    metric_names: dict[str, None] = {}
    for row in rows:
        metric_names.update((m, None) for m in row.metrics)
    params = _varying([r.params for r in rows])
    config = _varying([r.config for r in rows])
    table = ExperimentTable(
        name,
        tuple(
            ExperimentRow(
                r.run_id,
                r.status,
                r.started_at,
                r.version,
                r.tags,
                {p: r.params[p] for p in params if p in r.params},
                {c: r.config[c] for c in config if c in r.config},
                r.metrics,
            )
            for r in rows
        ),
        params,
        config,
        tuple(metric_names),
    )
    return table if sort is None else table.sort(sort, descending=descending)


def experiments(history: History, *, project: str | None = None) -> list[str]:
    """The names of the experiments with recorded runs, sorted."""
    sql = "SELECT DISTINCT experiment FROM runs WHERE experiment IS NOT NULL"
    args: list[Any] = []
    if project is not None:
        sql += " AND project = ?"
        args.append(project)
    return sorted(str(r[0]) for r in history.db.execute(sql, args))


def best_run(
    history: History,
    name: str,
    metric: str,
    *,
    mode: Literal["max", "min"] = "max",
    project: str | None = None,
) -> RunRecord:
    """The succeeded run of experiment ``name`` with the highest (``mode="max"``) or
    lowest (``"min"``) ``metric`` (the newest among equals).

    Raises:
        PlaitError: When ``mode`` is neither, or no succeeded run has ``metric``.
    """
    if mode not in ("max", "min"):
        raise PlaitError(f"best(..., mode={mode!r}): mode is 'max' or 'min'")
    table = experiment_table(history, name, project=project, status="succeeded")
    ranked = table.sort(metric, descending=mode == "max")
    top = ranked.rows[0] if ranked.rows else None
    if top is None or _number(top.metrics.get(metric)) is None:
        raise PlaitError(f"no succeeded run of experiment {name!r} has a number for {metric!r}")
    return history.run(top.run_id)


def compare_runs(history: History, run_ids: Sequence[str]) -> dict[str, Any]:
    """Several runs side by side: every key maps to one value per run, in ``run_ids``
    order (None where a run lacks it). Params and config keep only the keys whose values
    differ; ``metrics`` keeps every metric; ``steps`` lists each step (in the first
    run's pipeline order) with its ``status``, ``cached``, ``code`` (function
    fingerprint), ``data_versions``, and ``same_code`` / ``same_output`` across runs.

    Raises:
        KeyError: When a run id matches no run or several.
        PlaitError: With fewer than two runs.
    """
    if len(run_ids) < 2:
        raise PlaitError(f"compare needs at least two runs, got {len(run_ids)}")
    records = [history.run(run_id) for run_id in run_ids]
    metrics = [run_metrics(history, record) for record in records]

    def per_run(values: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, list[Any]]:
        return {key: [v.get(key) for v in values] for key in keys}

    metric_names: dict[str, None] = {}
    for found in metrics:
        metric_names.update((m, None) for m in found)
    order: dict[str, None] = {}
    for record in records:
        if record.structure is not None:
            order.update((s.name, None) for s in record.structure.order)
    for record in records:
        order.update((name, None) for name in record.steps)
    steps: dict[str, dict[str, Any]] = {}
    for name in order:
        found_steps = [record.steps.get(name) for record in records]
        if not any(found_steps):
            continue
        codes = [s.fingerprint if s else None for s in found_steps]
        outputs = [s.data_versions if s else None for s in found_steps]
        steps[name] = {
            "status": [s.status if s else None for s in found_steps],
            "cached": [s.cached if s else None for s in found_steps],
            "code": codes,
            "data_versions": outputs,
            "same_code": all(found_steps) and len(set(codes)) == 1,
            "same_output": all(found_steps)
            and len({json.dumps(o, sort_keys=True) for o in outputs}) == 1,
        }
    return {
        "runs": [r.run_id for r in records],
        "status": [r.status for r in records],
        "version": [r.version for r in records],
        "experiment": [r.experiment for r in records],
        "params": per_run([r.params for r in records], _varying([r.params for r in records])),
        "config": per_run([r.config for r in records], _varying([r.config for r in records])),
        "metrics": per_run(metrics, list(metric_names)),
        "fingerprint": [r.fingerprint for r in records],
        "steps": steps,
    }
