"""Deep merging of configs and one-value overrides (``model_options.test_size=0.3``).

Pure functions, no optional dependency: the run layer and the command line share them.
A dict is merged key by key (a nested dict is merged, anything else replaced); a dataclass
is copied with the fields replaced; a pydantic model is re-validated from its merged dump.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from plait.errors import UsageError, suggest

__all__ = ["ConfigError", "deep_merge", "effective_config", "nest", "parse_set"]


class ConfigError(UsageError):
    """A config that cannot be read, merged or interpolated; the message says where."""


def deep_merge(base: Any, overrides: Mapping[str, Any], *, what: str = "the override") -> Any:
    """``base`` with ``overrides`` merged in, deeply; neither is changed.

    >>> deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}})
    {'a': {'b': 5, 'c': 2}, 'd': 3}

    Raises:
        ConfigError: For a key a dataclass has not, values a pydantic model rejects, or a
            config of a kind that cannot be merged.
    """
    if base is None:
        return _plain_copy(overrides)
    if isinstance(base, Mapping):
        merged = dict(base)
        for key, value in overrides.items():
            old = merged.get(key)
            nested = isinstance(value, Mapping) and old is not None and not _scalar(old)
            merged[key] = deep_merge(old, value, what=what) if nested else value
        return merged
    if dataclasses.is_dataclass(base) and not isinstance(base, type):
        fields = {f.name for f in dataclasses.fields(base)}
        changes = {}
        for key, value in overrides.items():
            if key not in fields:
                raise ConfigError(
                    f"{what} sets {key!r}, which the config {type(base).__name__} has not"
                    f"{suggest(str(key), fields)}; its fields: {', '.join(sorted(fields))}"
                )
            old = getattr(base, key)
            nested = isinstance(value, Mapping) and not _scalar(old)
            changes[key] = deep_merge(old, value, what=what) if nested else value
        return dataclasses.replace(base, **changes)
    if hasattr(base, "model_dump") and hasattr(type(base), "model_validate"):
        try:
            return type(base).model_validate(deep_merge(base.model_dump(), overrides, what=what))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ConfigError(f"{what} does not fit {type(base).__name__}: {exc}") from exc
    raise ConfigError(
        f"{what} cannot change a config of type {type(base).__name__}: give the pipeline a "
        "dict, a dataclass or a pydantic model"
    )


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bytes | int | float | bool)


def _plain_copy(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain_copy(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested dicts, in order; a later key wins.

    >>> nest({"model.test_size": 0.3, "model.seed": 1, "name": "x"})
    {'model': {'test_size': 0.3, 'seed': 1}, 'name': 'x'}

    Raises:
        ConfigError: For an empty part (``"a..b"``) or a key both a value and a table.
    """
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        if not all(parts):
            raise ConfigError(f"config override {dotted!r} has an empty part; write a.b.c")
        here = nested
        for depth, part in enumerate(parts[:-1]):
            inner = here.setdefault(part, {})
            if not isinstance(inner, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"config override {dotted!r}: {where!r} is set to a value")
            here = inner
        here[parts[-1]] = value
    return nested


def effective_config(base: Any, config: Any, overrides: Mapping[str, Any] | None) -> Any:
    """A run's config: the pipeline's, ``config=`` merged over it, then the overrides.

    A mapping given as ``config=`` is merged deeply into the pipeline's config; any other
    object (a dataclass, a model) replaces it. ``overrides`` are dotted keys.
    """
    result = base
    if config is not None:
        result = (
            deep_merge(base, config, what="run(config=...)")
            if isinstance(config, Mapping)
            else config
        )
    if overrides:
        result = deep_merge(result, nest(overrides), what="config_overrides")
    return result


def parse_set(text: str) -> tuple[str, Any]:
    """``"a.b=0.3"`` as ``("a.b", 0.3)``, the value typed by YAML's scalar rules.

    ``3`` is an int, ``0.3`` a float, ``true`` a bool, ``null`` None, ``[1, 2]`` a list,
    anything else text. Without PyYAML, JSON rules (the same for these cases).

    >>> parse_set("model.test_size=0.3"), parse_set("tags=[a, b]"), parse_set("name=x y")
    (('model.test_size', 0.3), ('tags', ['a', 'b']), ('name', 'x y'))

    Raises:
        ConfigError: For text without ``=`` or with an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(key.split(".")):
        raise ConfigError(f"--set {text!r} is not KEY=VALUE; write it like --set model.seed=7")
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        value = yaml.load(raw, Loader=loader) if raw.strip() else ""
    except ImportError:
        import json

        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    except Exception:  # not YAML: keep the text
        value = raw
    return key, value
