"""Datasets from plain data: ``dataset_from_config`` and ``load_catalog``.

Design note
-----------
A catalog entry is a mapping with a ``type`` and the dataset's keyword arguments, as in
Kedro's ``catalog.yml``::

    companies:
      type: CSV
      path: data/01_raw/companies.csv
      load_args: {sep: ","}

``type`` names one of plait's datasets (``CSV``, ``Parquet``... or Kedro's spelling
``pandas.CSVDataset``). A ``"module:Class"`` (or ``"module.Class"``) type imports code, so
it is refused unless the caller allows the module with ``allow_imports=("prefix.",)``: a
catalog file is data and must not run arbitrary code by naming it. Every problem of a
catalog is collected and raised once, naming the entry and the key.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait.errors import suggest
from plait.io._base import DatasetError
from plait.io._formats import CSV, JSON, YAML, Excel, Feather, Parquet, Pickle, Text

__all__ = ["DATASET_TYPES", "Credentials", "dataset_from_config", "load_catalog"]

Credentials = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None
"""What ``credentials=`` takes: name -> credentials, a function returning that (called
once, only when an entry names credentials), or None: the conf folder's
``credentials*.yml`` (:func:`plait.config.load_credentials`)."""

DATASET_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (CSV, Parquet, JSON, YAML, Text, Pickle, Excel, Feather)
}
_KEDRO_NAMES = {  # kedro-datasets spellings of the same formats
    "pandas.CSVDataset": CSV,
    "pandas.ParquetDataset": Parquet,
    "pandas.FeatherDataset": Feather,
    "pandas.ExcelDataset": Excel,
    "json.JSONDataset": JSON,
    "yaml.YAMLDataset": YAML,
    "text.TextDataset": Text,
    "pickle.PickleDataset": Pickle,
}
_PATH_KEYS = ("path", "filepath")  # Kedro says filepath


def dataset_from_config(
    name: str,
    mapping: Mapping[str, Any],
    *,
    allow_imports: Sequence[str] = (),
    root: str | os.PathLike[str] | None = None,
    credentials: Credentials = None,
) -> Any:
    """Build one dataset from plain data.

    Args:
        name: The dataset's name (for messages).
        mapping: ``{"type": "CSV", "path": "...", "load_args": {...}, ...}``; ``filepath``
            is accepted for ``path`` (Kedro's spelling).
        allow_imports: Module prefixes (``("my_project.",)``) whose classes a
            ``"module:Class"`` type may name; nothing is imported otherwise.
        root: The folder a relative local ``path``/``filepath`` is under (None: as
            written, so relative to the current directory when the dataset is used).
        credentials: Where a ``credentials: NAME`` entry is looked up (see
            :data:`Credentials`). A plait dataset gets them merged under its
            ``storage_options``, still :class:`~plait.config.Secret` values (shown as
            ``***``, revealed only to the filesystem); any other class gets
            ``credentials=`` with the values, as Kedro's datasets take them.

    Returns:
        The dataset: any object with ``load()`` and ``save(data)``.

    Raises:
        DatasetError: For a missing or unknown type, an import that is not allowed, or
            arguments the dataset does not take (with suggestions).
    """
    if not isinstance(mapping, Mapping):
        raise DatasetError(
            f"dataset {name!r}: expected a mapping with a 'type', got {mapping!r}", dataset=name
        )
    options = _rooted(mapping, os.fspath(root)) if root is not None else dict(mapping)
    kind = options.pop("type", None)
    if not isinstance(kind, str) or not kind:
        raise DatasetError(
            f"dataset {name!r}: no 'type' (one of {', '.join(sorted(DATASET_TYPES))}, or "
            "'module:Class' with allow_imports)",
            dataset=name,
        )
    cls = _dataset_class(name, kind, allow_imports)
    if cls in DATASET_TYPES.values():
        for key in _PATH_KEYS[1:]:
            if key in options and "path" not in options:
                options["path"] = options.pop(key)
    if "credentials" in options:
        _add_credentials(name, cls, options, credentials)
    _check_arguments(name, cls, options)
    try:
        return cls(**options)
    except Exception as exc:
        raise DatasetError(f"dataset {name!r}: {kind}(...) failed: {exc}", dataset=name) from exc


def _dataset_class(name: str, kind: str, allow_imports: Sequence[str]) -> type:
    found = DATASET_TYPES.get(kind) or _KEDRO_NAMES.get(kind)
    if found is not None:
        return found
    if ":" not in kind and "." not in kind:
        raise DatasetError(
            f"dataset {name!r}: unknown type {kind!r}"
            f"{suggest(kind, list(DATASET_TYPES) + list(_KEDRO_NAMES))}",
            dataset=name,
        )
    module, _, attribute = kind.partition(":") if ":" in kind else kind.rpartition(".")
    if not any(module == p.rstrip(".") or module.startswith(p) for p in allow_imports):
        raise DatasetError(
            f"dataset {name!r}: type {kind!r} would import module {module!r}, which is not "
            f"allowed; allow it with allow_imports=({module.split('.')[0] + '.'!r},)",
            dataset=name,
        )
    try:
        target: Any = importlib.import_module(module)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise DatasetError(f"dataset {name!r}: cannot find {kind!r}: {exc}", dataset=name) from exc
    if not isinstance(target, type):
        raise DatasetError(f"dataset {name!r}: {kind!r} is not a class", dataset=name)
    return target


def _add_credentials(
    name: str, cls: type, options: dict[str, Any], credentials: Credentials
) -> None:
    """Replace ``options["credentials"]`` (a name) by the credentials it names."""
    wanted = options["credentials"]
    if not isinstance(wanted, str):
        return  # a mapping given inline: the dataset's own business
    if credentials is None:
        from plait.config import load_credentials

        credentials = load_credentials
    known = credentials() if callable(credentials) else credentials
    found = known.get(wanted)
    if not isinstance(found, Mapping):
        detail = "is not a mapping" if wanted in known else "are not in the conf folder"
        raise DatasetError(
            f"dataset {name!r}: credentials {wanted!r} {detail}"
            f"{suggest(wanted, list(known))}; credentials are read from "
            f"conf/<env>/credentials*.yml, e.g. '{wanted}: {{key: ..., secret: ...}}'",
            dataset=name,
        )
    if cls in DATASET_TYPES.values():
        del options["credentials"]
        options["storage_options"] = {**found, **(options.get("storage_options") or {})}
    else:
        options["credentials"] = revealed(found)


def revealed(value: Any) -> Any:
    """``value`` with every :class:`~plait.config.Secret` inside it replaced by its value
    (for the filesystem or the dataset that needs them, and nothing else)."""
    if isinstance(value, Mapping):
        return {key: revealed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(revealed(item) for item in value)
    from plait.config import Secret

    return value.value if isinstance(value, Secret) else value


def _check_arguments(name: str, cls: type, options: Mapping[str, Any]) -> None:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [key for key in options if key not in parameters]
    if unknown:
        known = [p for p in parameters if p != "self"]
        hints = "".join(f"; {key!r}{suggest(key, known) or ' is unknown'}" for key in unknown)
        raise DatasetError(
            f"dataset {name!r}: {cls.__name__} does not take {', '.join(map(repr, unknown))}"
            f"{hints}; it takes {', '.join(known)}",
            dataset=name,
        )


def load_catalog(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    allow_imports: Sequence[str] = (),
    credentials: Credentials = None,
) -> dict[str, Any]:
    """Read a catalog file (plain YAML: name -> dataset mapping) into datasets.

    Relative local paths in the file are relative to ``root`` when given, else taken as
    they are (relative to the current directory when used), as in Kedro.

    Args:
        path: The YAML file.
        root: The folder relative local paths of the catalog are under.
        allow_imports: Module prefixes that ``"module:Class"`` types may import.
        credentials: Where ``credentials: NAME`` entries are looked up (default: the
            conf folder's ``credentials*.yml``, read once, when an entry names some).

    Returns:
        Dataset name -> dataset, in the file's order.

    Raises:
        DatasetError: For a file that is not a mapping of mappings, or any bad entry
            (every entry is checked; the message lists them all).
    """
    import yaml

    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{os.fspath(path)}: a catalog is a mapping of dataset names")
    datasets: dict[str, Any] = {}
    errors: list[str] = []
    credentials = _once(credentials)
    for name, given in raw.items():
        if str(name).startswith("_"):  # YAML anchors' holders, as in Kedro
            continue
        try:
            datasets[str(name)] = dataset_from_config(
                str(name), given, allow_imports=allow_imports, root=root, credentials=credentials
            )
        except DatasetError as exc:
            errors.append(str(exc))
    if errors:
        raise DatasetError(f"{os.fspath(path)}: " + "; ".join(errors))
    return datasets


def _once(credentials: Credentials) -> Credentials:
    """``credentials`` as a function that reads them at most once."""
    if isinstance(credentials, Mapping):
        return credentials
    read: list[Mapping[str, Any]] = []

    def once() -> Mapping[str, Any]:
        if not read:
            if credentials is None:
                from plait.config import load_credentials

                read.append(load_credentials())
            else:
                read.append(credentials())
        return read[0]

    return once


def _rooted(entry: Mapping[str, Any], root: str) -> dict[str, Any]:
    """``entry`` with a relative local ``path``/``filepath`` put under ``root``."""
    rooted = dict(entry)
    for key in _PATH_KEYS:
        value = rooted.get(key)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
            rooted[key] = os.path.join(root, value)
    return rooted
