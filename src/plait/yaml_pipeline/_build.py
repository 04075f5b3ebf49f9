"""Building a :class:`~plait.Pipeline` from a validated YAML document.

Calls are resolved strictly: a dotted name must be a registry entry; ``module:function``
is imported only when the module is under a prefix the YAML (``imports:``) or the caller
(``imports=``) allows, since a pipeline file that could import anything would run any code
its author names. Every call is resolved and every step built before reporting, so all
problems come out together.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, suggest
from plait.yaml_pipeline._schema import DURATION, STEP_FIELDS, UNITS, label

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.registry import Registry
    from plait.steps import Step
    from plait.yaml_pipeline._source import Path

__all__ = [
    "allowed",
    "build_config",
    "build_datasets",
    "build_pipeline",
    "load_registry",
    "resolve_call",
]

Add = Callable[["Path", str, bool], None]
_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
    "path": FilePath,
    "any": None,
}


def allowed(module: str, prefixes: Sequence[str]) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one (whole dotted parts).

    >>> allowed("myproject.nodes", ["myproject."]), allowed("myprojectx", ["myproject"])
    (True, False)
    """
    for prefix in prefixes:
        bare = prefix.rstrip(".")
        if module == bare or module.startswith(bare + "."):
            return True
    return False


def resolve_call(
    call: str, registry: Registry | None, prefixes: Sequence[str]
) -> tuple[Any, str | None]:
    """The function or step ``call`` names, or ``(None, what is wrong)``."""
    if ":" not in call:
        if registry is None:
            return None, (
                f"call {call!r} names a registry entry, but no registry was given; pass "
                f"load_pipeline(..., registry=reg), or write module:function and allow "
                f"the module with imports:"
            )
        if call in registry:
            return registry[call], None
        hint = suggest(call, registry.list()) or (
            f" (registered: {', '.join(registry.list()) or 'nothing'})"
        )
        return None, f"call {call!r} is not in the registry{hint}"
    module_name, _, attribute = call.partition(":")
    if not module_name or not attribute:
        return None, f"call {call!r} is not module:function"
    if not allowed(module_name, prefixes):
        return None, (
            f"call {call!r} imports module {module_name!r}, which this pipeline does not "
            f"allow; add imports: [{module_name!r}] to the YAML (or "
            f"load_pipeline(..., imports=[{module_name!r}]))"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, f"call {call!r}: cannot import {module_name!r}: {exc}"
    value: Any = module
    for part in attribute.split("."):
        found = getattr(value, part, None)
        if found is None:
            names = [n for n in vars(value) if not n.startswith("_")]
            return None, (
                f"call {call!r}: module {module_name!r} has no {attribute!r}{suggest(part, names)}"
            )
        value = found
    if not callable(value):
        return None, f"call {call!r} is {type(value).__name__}, not a function or step"
    return value, None


def load_registry(reference: str) -> Registry:
    """The :class:`~plait.Registry` at ``module:attribute`` (the module is imported).

    Raises:
        ImportError: When the module cannot be imported.
        UsageError: When the attribute is missing or not a Registry.
    """
    from plait.errors import UsageError
    from plait.registry import Registry

    module_name, _, attribute = reference.partition(":")
    found = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(found, Registry):
        raise UsageError(
            f"{reference!r} is {type(found).__name__}, not a plait.Registry; name the module "
            "attribute that holds one"
        )
    return found


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in spec.items() if k in STEP_FIELDS and k != "call"}
    for key in ("tags", "input_files", "after"):
        if isinstance(options.get(key), str):
            options[key] = [options[key]]
    if "version" in options:
        options["version"] = str(options["version"])
    if "expire" in options:
        options["expire"] = _expire(options["expire"])
    return options


def _expire(value: Any) -> Any:
    from plait.store.expiry import expire

    if value is None:
        return None
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, str) and match is None:
        return getattr(expire, value)()  # a name the schema allows: never, session...
    if match is not None:
        value = float(match.group(1)) * UNITS[match.group(2)]
    return expire.ttl(seconds=float(value))


def make_step(target: Any, spec: dict[str, Any]) -> Step:
    """A step for ``target`` (a function or a Step) with the spec's name, wiring, options."""
    from plait.steps import Step

    options = _options(spec)
    if isinstance(target, Step):
        return target.with_options(**options) if options else target
    return Step(
        target,
        inputs=options.pop("inputs", None),
        outputs=options.pop("outputs", None),
        **options,
    )


def build_steps(
    steps: list[dict[str, Any]],
    registry: Registry | None,
    prefixes: Sequence[str],
    add: Add,
) -> list[tuple[int, Step]]:
    """Every step that resolves and builds, with its index; the rest reported to ``add``."""
    built = []
    for index, spec in enumerate(steps):
        where = label(index, spec)
        target, wrong = resolve_call(spec["call"], registry, prefixes)
        if wrong is not None:
            add(("steps", index, "call"), f"{where}: {wrong}", False)
            continue
        try:
            item = make_step(target, spec)
        except PlaitError as exc:
            name = spec.get("name") or getattr(target, "name", None) or target.__name__
            add(("steps", index), f"steps[{index}] ({name}): {exc}", False)
            continue
        built.append((index, item))
    return built


def build_pipeline(
    name: str,
    built: list[tuple[int, Step]],
    params: dict[str, Any],
    config: Any,
    datasets: dict[str, Any] | None,
    add: Add,
) -> Pipeline:
    """The pipeline of the built steps, with declared params, config and datasets."""
    from plait.errors import StepDefinitionError
    from plait.pipeline import Pipeline, param

    extra: dict[str, Any] = {"datasets": datasets} if datasets else {}
    pipeline = Pipeline(name=name, config=config, **extra)
    with pipeline:
        for key, spec in params.items():
            if isinstance(spec, dict):
                default = spec.get("default", _missing())
                param(key, _TYPES[spec.get("type", "any")], default=default)
            else:
                param(key, None, default=spec)
    for index, item in built:
        try:
            pipeline.add(item)
        except StepDefinitionError as exc:
            add(("steps", index), f"steps[{index}] ({item.name}): {exc}", False)
    return pipeline


def _missing() -> Any:
    from plait.steps import MISSING

    return MISSING


def build_config(value: Any, base: FilePath, env: str | None) -> Any:
    """The config: a mapping (interpolated), or files and conf folders merged in order.

    Raises:
        ConfigError: For a file that cannot be read or an interpolation that fails.
    """
    from plait.config import deep_merge, load_config, read_config_file, resolve

    if value is None:
        return None
    if isinstance(value, dict):
        return resolve(value, where="config")
    merged: dict[str, Any] = {}
    for name in [value] if isinstance(value, str) else value:
        path = base / name
        part = load_config(path, env) if path.is_dir() else read_config_file(path)
        merged = deep_merge(merged, part, what=str(path))
    return resolve(merged, where="config")


def build_datasets(
    value: Any, base: FilePath, prefixes: Sequence[str], add: Add, env: str | None = None
) -> dict[str, Any] | None:
    """The datasets, through :mod:`plait.io`: a mapping (each entry checked on its own,
    problems at its position) or a catalog file relative to the YAML. Relative dataset
    paths are under the YAML file's folder, wherever the pipeline is loaded from; an
    entry's ``credentials: NAME`` is read from the conf folder's credentials for ``env``."""
    if value is None:
        return None
    io = importlib.import_module("plait.io")
    root = os.path.abspath(base)
    read: list[Any] = []

    def credentials() -> Any:  # read once, only when an entry names credentials
        if not read:
            read.append(importlib.import_module("plait.config").load_credentials(env=env))
        return read[0]

    if isinstance(value, str):
        try:
            return dict(
                io.load_catalog(
                    base / value,
                    root=root,
                    allow_imports=tuple(prefixes),
                    credentials=credentials,
                )
            )
        except (PlaitError, OSError, ValueError) as exc:
            add(("datasets",), f"datasets: {exc}", False)
            return None
    datasets = {}
    for name, spec in value.items():
        try:
            datasets[name] = io.dataset_from_config(
                name, spec, allow_imports=tuple(prefixes), root=root, credentials=credentials
            )
        except (PlaitError, TypeError, ValueError) as exc:
            add(("datasets", name), f"datasets.{name}: {exc}", False)
    return datasets
