"""Parsing what the command line gives: params, config files, the store, durations.

Config reaches a run in layers, each merged deeply over the one before: the pipeline's own
config, the project's conf folder (``conf/base`` + ``conf/<env>``, when there is one:
:func:`project_config`), ``--config FILE``, then each ``--set KEY=VALUE``.

``--param NAME=VALUE`` is typed by the annotation of the step parameter that consumes
``NAME`` when there is one (``int``, ``float``, ``bool``, ``str``, ``Path``, enums,
``Literal``, ``X | None``, lists and dicts as JSON ...); otherwise the value is read as
JSON when it parses (``3``, ``true``, ``[1, 2]``) and kept as a string when it does not.
"""

from __future__ import annotations

import enum
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from plait.cli._errors import CommandError

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = [
    "check_config_keys",
    "check_set_keys",
    "load_config",
    "merge_config",
    "open_store",
    "param_annotations",
    "parse_duration",
    "parse_params",
    "parse_sets",
    "project_config",
    "store_location",
]

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
_EXAMPLES = {int: "7", float: "0.5", bool: "true", str: "text"}


# -- params -------------------------------------------------------------------------------
def param_annotations(pipeline: Pipeline) -> dict[str, tuple[Any, str, str]]:
    """Param name -> (annotation, step, parameter) of the first step that annotates it."""
    producers = pipeline.producers
    found: dict[str, tuple[Any, str, str]] = {}
    for item in pipeline.steps.values():
        annotations = item.signature.annotations
        for parameter, data in item.data_inputs.items():
            if data in producers or data in found or data.startswith("config"):
                continue
            annotation = annotations.get(parameter)
            if annotation is not None and annotation is not typing.Any:
                found[data] = (annotation, item.name, parameter)
    return found


def parse_params(pairs: Sequence[str], pipeline: Pipeline) -> dict[str, Any]:
    """``["k=v", ...]`` as a params dict, each value typed for the step that reads it.

    Raises:
        CommandError: For a pair without ``=`` or a value its annotation rejects.
    """
    annotations = param_annotations(pipeline)
    params: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(
                f"--param {pair!r} is not NAME=VALUE", "write it like --param seed=7"
            )
        if name in given:
            raise CommandError(
                f"--param {name!r} is given twice ({given[name]!r} and {pair!r})",
                f"give --param {name}=... once",
            )
        given[name] = pair
        known = annotations.get(name)
        if known is None:
            params[name] = _json_or_text(text)
            continue
        annotation, step_name, parameter = known
        try:
            params[name] = convert(text, annotation)
        except (ValueError, TypeError) as exc:
            wanted = _type_name(annotation)
            raise CommandError(
                f"--param {name}={text!r}: step {step_name!r} expects {wanted} for "
                f"{parameter!r} ({exc})",
                f"give a value of type {wanted}, e.g. --param {name}={_example(annotation)}",
            ) from exc
    return params


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def convert(text: str, annotation: Any) -> Any:
    """``text`` converted to ``annotation``.

    >>> convert("7", int), convert("yes", bool), convert("none", int | None)
    (7, True, None)
    >>> convert("[1, 2]", list[int])
    [1, 2]

    Raises:
        ValueError: When the text is not a value of that type.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(text, typing.get_args(annotation))
    if origin is typing.Literal:
        for choice in typing.get_args(annotation):
            if str(choice) == text or _json_or_text(text) == choice:
                return choice
        raise ValueError(f"not one of {list(typing.get_args(annotation))}")
    if origin is typing.Annotated:
        return convert(text, typing.get_args(annotation)[0])
    target = origin if isinstance(origin, type) else annotation
    if not isinstance(target, type):
        return _json_or_text(text)
    return _convert_type(text, target)


def _convert_union(text: str, members: tuple[Any, ...]) -> Any:
    if type(None) in members and text.strip().lower() in ("none", "null", ""):
        return None
    errors = []
    for member in members:
        if member is type(None):
            continue
        try:
            return convert(text, member)
        except (ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise ValueError("; ".join(errors) or "no type matches")


def _convert_type(text: str, target: type) -> Any:
    if target is str:
        return text
    if target is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not a boolean (true/false, yes/no, 1/0)")
    if target is int:
        return int(text)
    if target is float:
        return float(text)
    if issubclass(target, enum.Enum):
        if text in target.__members__:
            return target[text]
        for member in target:
            if str(member.value) == text:
                return member
        raise ValueError(f"not one of {list(target.__members__)}")
    if issubclass(target, PurePath):
        return target(text)
    if target in (list, tuple, set, frozenset, dict):
        value = json.loads(text)
        if target is dict:
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return value
        if not isinstance(value, list):
            raise ValueError("not a JSON array")
        return target(value)
    from datetime import date, datetime

    if target in (datetime, date):
        return target.fromisoformat(text)
    return _json_or_text(text)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _example(annotation: Any) -> str:
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation.__members__), "NAME")
        return _EXAMPLES.get(annotation, "'[1, 2]'" if annotation in (list, tuple) else "...")
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str(args[0])
    return _example(args[0]) if args else "..."


# -- config -------------------------------------------------------------------------------
def load_config(path: str) -> dict[str, Any]:
    """Read a ``.toml``, ``.json``, ``.yaml`` or ``.yml`` file into a dict.

    Raises:
        CommandError: For a missing or unreadable file, an unknown extension, or a file
            whose top level is not a table/object/mapping.
    """
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CommandError(f"cannot read config file {path!r}: {exc.strerror}") from exc
    try:
        if suffix == ".toml":
            import tomllib

            loaded: Any = tomllib.loads(data.decode())
        elif suffix == ".json":
            loaded = json.loads(data)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped, unused-ignore]
            except ImportError as exc:
                raise CommandError(
                    f"reading {path!r} needs PyYAML, which is not installed",
                    "pip install pyyaml (or use a .toml or .json config)",
                ) from exc
            loaded = yaml.safe_load(data)
        else:
            raise CommandError(
                f"config file {path!r} has an unknown extension {suffix!r}",
                "use a .toml, .json, .yaml or .yml file",
            )
    except CommandError:
        raise
    except Exception as exc:  # each parser has its own error type
        raise CommandError(f"config file {path!r} is not valid {suffix[1:]}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise CommandError(
            f"config file {path!r} holds a {type(loaded).__name__}, not a table of keys",
            "write the config as keys and values at the top level",
        )
    return loaded


def check_config_keys(pipeline: Pipeline, overrides: Mapping[str, Any], path: str) -> None:
    """Every key of a ``--config`` file must be read by a step of ``pipeline``.

    A key is read when a step reads it (``"config.a.b"`` or a bare top-level name), a part
    of it (``"config.a"`` reads every key under ``a``) or the whole config (``"config"``).
    Pipelines with dynamic steps are not checked: what they read is known only as they run.

    Raises:
        CommandError: Listing every key no step reads, with suggestions.
    """
    reads = _config_reads(pipeline)
    if reads is None:
        return
    unread = _unread_keys(overrides, (), reads)
    if not unread:
        return
    from plait.errors import suggest

    known = sorted(".".join(read) for read in reads)
    described = [f"{key!r}{suggest(key, known)}" for key in unread]
    raise CommandError(
        f"--config {path!r} sets {', '.join(described)}, which no step reads",
        "remove or rename the key; the config keys the steps can read: "
        + (", ".join(known) or "none"),
    )


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """``["a.b=0.3", ...]`` as ``{"a.b": 0.3}``, typed by YAML's scalar rules.

    Raises:
        CommandError: For a pair that is not KEY=VALUE or a key given twice.
    """
    from plait.config import ConfigError, parse_set

    values: dict[str, Any] = {}
    for pair in pairs:
        try:
            key, value = parse_set(pair)
        except ConfigError as exc:
            raise CommandError(str(exc), "write it like --set model_options.test_size=0.3") from exc
        if key in values:
            raise CommandError(f"--set {key!r} is given twice", f"give --set {key}=... once")
        values[key] = value
    return values


def check_set_keys(pipeline: Pipeline, sets: Mapping[str, Any], pairs: Sequence[str]) -> None:
    """Every ``--set`` key must be one a step of ``pipeline`` reads (as ``--config``'s).

    Raises:
        CommandError: Naming each key no step reads, with suggestions.
    """
    reads = _config_reads(pipeline)
    if reads is None:
        return
    from plait.errors import suggest

    known = sorted(".".join(read) for read in reads)
    for key, pair in zip(sets, pairs, strict=True):
        parts = tuple(key.split("."))
        if not _unread_keys({parts[0]: _nested(parts[1:])}, (), reads):
            continue
        raise CommandError(
            f"--set {pair}: no step reads {key!r}{suggest(key, known)}",
            "the config keys the steps can read: " + (", ".join(known) or "none"),
        )


def _nested(parts: tuple[str, ...]) -> Any:
    return {parts[0]: _nested(parts[1:])} if parts else None


def project_config(env: str | None) -> dict[str, Any] | None:
    """The project's conf folder (``[tool.plait] conf``, else ``conf`` beside the project's
    ``pyproject.toml``, else ``./conf``) read for ``env``; None when there is none.

    Raises:
        CommandError: When ``--env`` is given without a conf folder, or the conf is wrong.
    """
    from plait.config import ConfigError, load_config, project_settings

    try:
        settings = project_settings()
        folder = Path(settings.conf) if settings.conf else settings.root / "conf"
        if not folder.is_dir():
            if env:
                raise CommandError(
                    f"--env {env!r}: there is no conf folder ({folder})",
                    "make conf/base/ and conf/<env>/ (plait new NAME makes a project with "
                    "them), or set [tool.plait] conf",
                )
            return None
        return load_config(folder, env)
    except ConfigError as exc:
        raise CommandError(str(exc), "fix the project's conf folder or pick another --env") from exc


def _config_reads(pipeline: Pipeline) -> set[tuple[str, ...]] | None:
    """The config paths the steps read; None when they read the whole config (or may)."""
    producers = pipeline.producers
    reads: set[tuple[str, ...]] = set()
    for item in pipeline.steps.values():
        if item.options.dynamic:
            return None
        for data in item.data_inputs.values():
            if data == "config":
                return None
            if data.startswith("config."):
                reads.add(tuple(data.split(".")[1:]))
            elif data not in producers:
                reads.add((data,))
    return reads


def _unread_keys(
    values: Mapping[str, Any], prefix: tuple[str, ...], reads: set[tuple[str, ...]]
) -> list[str]:
    """Dotted keys of ``values`` (under ``prefix``) that no path in ``reads`` reaches."""
    unread = []
    for key, value in values.items():
        here = (*prefix, str(key))
        if any(here[: len(read)] == read for read in reads):
            continue  # this key, or a table holding it, is read
        deeper = [read for read in reads if read[: len(here)] == here]
        if not deeper:
            unread.append(".".join(here))
        elif isinstance(value, Mapping):
            unread.extend(_unread_keys(value, here, reads))
    return unread


def merge_config(base: Any, overrides: Mapping[str, Any]) -> Any:
    """The pipeline's config with ``overrides`` merged in, deeply
    (:func:`plait.config.deep_merge`: a dict is merged, a dataclass copied with fields
    replaced, a pydantic model re-validated; no config becomes the overrides).

    Raises:
        CommandError: For a key a dataclass has not, or a config of another kind.
    """
    from plait.config import ConfigError, deep_merge

    try:
        return deep_merge(base, overrides, what="--config")
    except ConfigError as exc:
        raise CommandError(str(exc), "fix the key or the value in the config file") from exc


# -- the store ------------------------------------------------------------------------------
def store_location(option: str | None) -> tuple[str, str]:
    """Where the store is, and what said so.

    ``--store``, else ``PLAIT_STORE``, else ``store`` in ``[tool.plait]`` of the nearest
    ``pyproject.toml`` (relative to that file), else ``./.plait``.
    """
    if option:
        return option, "--store"
    env = os.environ.get("PLAIT_STORE")
    if env:
        return env, "PLAIT_STORE"
    found = _pyproject_store()
    if found is not None:
        return found
    return ".plait", "the default"


def _pyproject_store() -> tuple[str, str] | None:
    directory = Path.cwd()
    for folder in (directory, *directory.parents):
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        import tomllib

        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {candidate}: {exc}") from exc
        value = data.get("tool", {}).get("plait", {}).get("store")
        if value is None:
            return None
        if not isinstance(value, str):
            raise CommandError(f"[tool.plait] store in {candidate} must be a string")
        path = value if "://" in value else str(folder / value)
        return path, f"[tool.plait] in {candidate}"
    return None


# What a store holds once it was used: any of these under its root makes it a store.
_STORE_FILES = ("index.db", "history.db")
_STORE_FOLDERS = ("objects", "steps", "cache")


def open_store(option: str | None, *, must_exist: bool = False) -> Store:
    """The :class:`~plait.Store` the command works on.

    With ``must_exist`` (the commands that read), the store is opened without creating
    anything: a missing location or one that holds no store is an error, and a store with
    no ``history.db`` yet reads as one with no runs (an empty history in memory) instead of
    getting a new database file. ``plait run`` opens without ``must_exist`` and creates
    what it needs. ``[tool.plait] project`` and ``history`` give the store's project and
    history database.

    Raises:
        CommandError: With ``must_exist``, when there is no plait store at the location.
    """
    location, source = store_location(option)
    from plait.store.store import Store

    project, history = _project()
    if not must_exist:
        return Store(location, history=history, project=project)
    local = _local_path(location)
    if local is None:
        store = Store(location, history=history, project=project)
        if not any(store.backend.exists(folder) for folder in _STORE_FOLDERS):
            raise _no_store(location, source)
        return store
    if not os.path.isdir(local):
        raise _no_store(location, source)
    if not _holds_a_store(local):
        raise CommandError(
            f"{location!r} is not a plait store (it has none of "
            f"{', '.join(_STORE_FILES + _STORE_FOLDERS)}; from {source})",
            "point to a store with --store DIR or PLAIT_STORE, or make one here by running "
            "a pipeline: plait run TARGET --store DIR",
        )
    if history is not None:
        return Store(location, history=history, project=project)
    has_history = os.path.isfile(os.path.join(local, "history.db"))
    return Store(location, history=None if has_history else ":memory:", project=project)


def _project() -> tuple[str | None, str | None]:
    """``project`` and ``history`` of ``[tool.plait]`` in the nearest ``pyproject.toml``
    (a relative SQLite or DuckDB history path is relative to that file)."""
    from plait.config._merge import ConfigError
    from plait.config._project import project_settings

    try:
        settings = project_settings()
    except ConfigError as exc:
        raise CommandError(str(exc), "fix [tool.plait] in pyproject.toml") from exc
    history = settings.history
    remote = ("postgresql://", "postgres://", "postgresql+psycopg://")
    if history is not None and not history.startswith(remote):
        prefix = next(p for p in ("duckdb:///", "sqlite:///", "") if history.startswith(p))
        path = history[len(prefix) :]
        if path != ":memory:" and not os.path.isabs(path):
            history = prefix + str(settings.root / path)
    return settings.project, history


def _local_path(location: str) -> str | None:
    """The directory of a local store (a path or ``file://`` URL), else None."""
    if location.startswith("file://"):
        return location.removeprefix("file://")
    return None if "://" in location else location


def _holds_a_store(directory: str) -> bool:
    names = set(os.listdir(directory))
    return any(name in names for name in _STORE_FILES + _STORE_FOLDERS)


def _no_store(location: str, source: str) -> CommandError:
    return CommandError(
        f"no plait store at {location!r} (from {source})",
        "run a pipeline first to make one (plait run TARGET --store DIR), or point to the "
        "store with --store DIR or PLAIT_STORE",
    )


# -- durations --------------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"6h"``, ``"7d"`` or ``"2w"``.

    >>> parse_duration("7d"), parse_duration("90")
    (604800.0, 90.0)

    Raises:
        CommandError: For anything else.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise CommandError(
            f"{text!r} is not a duration", "write a number of seconds or e.g. 30m, 6h, 7d, 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
