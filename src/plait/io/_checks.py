"""Validation of a pipeline's datasets, reported with the graph's other problems.

Three problems, each naming the dataset and the fix: a dataset that no step reads or
writes (usually a typo of an input or output name), a source whose file does not exist
(named with its path and the step that needs it), and two datasets on one path (two
writers, or a step reading what another overwrites). The existence check runs at every
``validate()`` and ``run()``, not with the cached plan: a file may appear between runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.errors import Problem, suggest
from plait.graph import FROM_DATASET, Graph, Plan
from plait.io._base import dataset_path

__all__ = ["dataset_problems"]


def dataset_problems(graph: Graph, plan: Plan, datasets: Mapping[str, Any]) -> list[Problem]:
    """Every problem of ``datasets`` in a pipeline of ``graph`` run as ``plan``."""
    problems = _unused(graph, datasets)
    problems.extend(_shared_paths(datasets))
    problems.extend(_missing_sources(plan, datasets))
    return problems


def _unused(graph: Graph, datasets: Mapping[str, Any]) -> list[Problem]:
    read = {data for item in graph.steps.values() for data in item.data_inputs.values()}
    names = sorted(read | set(graph.producers))
    return [
        Problem(
            "unused_dataset",
            f"dataset {name!r} ({dataset!r}) is neither read nor written by any step"
            f"{suggest(name, names)}; name it like the input or output it is for, or "
            "remove it",
        )
        for name, dataset in datasets.items()
        if name not in read and name not in graph.producers
    ]


def _shared_paths(datasets: Mapping[str, Any]) -> list[Problem]:
    owners: dict[str, str] = {}
    problems = []
    for name, dataset in datasets.items():
        path = dataset_path(dataset)
        if path is None:
            continue
        other = owners.setdefault(path, name)
        if other != name:
            problems.append(
                Problem(
                    "shared_dataset_path",
                    f"datasets {other!r} and {name!r} are both on {path!r}; give each its "
                    "own path (one name can be both a sink and, in the steps after it, "
                    "an input)",
                )
            )
    return problems


def _missing_sources(plan: Plan, datasets: Mapping[str, Any]) -> list[Problem]:
    problems = []
    reported: set[str] = set()
    for item in plan.order:
        for source in plan.sources.get(item.name, ()):
            if source.kind != FROM_DATASET or source.data in reported:
                continue
            dataset = datasets[source.data]
            exists = getattr(dataset, "exists", None)
            if exists is None or _exists(exists):
                continue
            reported.add(source.data)
            path = dataset_path(dataset)
            where = f", and {path!r} does not exist" if path else ", which has nothing to load"
            problems.append(
                Problem(
                    "missing_dataset_file",
                    f"step {item.name!r}: input {source.data!r} is read from {dataset!r}"
                    f"{where}; create it, fix the path, or add a step that produces "
                    f"{source.data!r}",
                    item.name,
                )
            )
    return problems


def _exists(exists: Any) -> bool:
    try:
        return bool(exists())
    except Exception:  # a dataset that cannot tell: let loading say what is wrong
        return True
