"""Triggers from the ``triggers:`` section of a YAML pipeline (``plait serve file.yaml``).

The YAML schema (:mod:`plait.yaml_pipeline._schema`) checks each entry's keys and value
types with their ``file:line:column`` when the pipeline loads; this module builds the
trigger objects and refuses options that do not belong to an entry's kind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plait.errors import UsageError

__all__ = ["triggers_from_config", "triggers_from_yaml"]

_OPTIONS = {
    "cron": ("name", "params", "tz"),
    "every": ("name", "params"),
    "webhook": ("name", "host", "port"),
    "watch": ("name", "params", "param", "debounce"),
    "redis": ("name", "stream", "group", "consumer"),
}


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    from plait.yaml_pipeline._schema import DURATION, UNITS

    found = DURATION.fullmatch(str(value))
    if not found:
        raise UsageError(f"{where}: every {value!r} is not a duration; write 30s, 5m, 2h")
    return float(found.group(1)) * UNITS[found.group(2)]


def _build(kind: str, spec: Mapping[str, Any], root: str, pipeline: str, where: str) -> Any:
    from plait.events import Cron, Every, FileWatch, RedisStream, Webhook

    extra = {"name": spec["name"]} if "name" in spec else {}
    if kind == "cron":
        return Cron(spec["cron"], tz=spec.get("tz"), params=spec.get("params"), **extra)
    if kind == "every":
        return Every(_duration(spec["every"], where), params=spec.get("params"), **extra)
    if kind == "webhook":
        address = {k: spec[k] for k in ("host", "port") if k in spec}
        return Webhook(spec["webhook"], **address, **extra)
    if kind == "watch":
        pattern = os.path.join(root, os.path.expanduser(spec["watch"]))
        options = {k: spec[k] for k in ("param", "debounce") if k in spec}
        return FileWatch(pattern, params=spec.get("params"), **options, **extra)
    return RedisStream(
        spec["redis"],
        spec.get("stream", pipeline),
        spec.get("group", "plait"),
        consumer=spec.get("consumer", "plait"),
        **extra,
    )


def triggers_from_config(
    entries: list[Mapping[str, Any]], *, root: str = ".", pipeline: str = "pipeline"
) -> list[Any]:
    """Trigger objects from ``triggers:`` entries (``root``: where ``watch`` globs start).

    Raises:
        UsageError: For an entry without exactly one kind, or with another kind's options.
    """
    built = []
    for index, spec in enumerate(entries):
        kinds = [k for k in _OPTIONS if k in spec]
        where = f"triggers[{index}]"
        if len(kinds) != 1:
            raise UsageError(f"{where}: give exactly one of {', '.join(_OPTIONS)}")
        kind = kinds[0]
        wrong = sorted(set(spec) - {kind, *_OPTIONS[kind]})
        if wrong:
            raise UsageError(
                f"{where} ({kind}): {wrong[0]!r} is not an option of a {kind} trigger; "
                f"its options: {', '.join(_OPTIONS[kind])}"
            )
        try:
            built.append(_build(kind, spec, root, pipeline, where))
        except UsageError as exc:
            raise UsageError(f"{where} ({kind}): {exc}") from exc
    return built


def triggers_from_yaml(path: str, pipeline: str = "pipeline") -> list[Any]:
    """The triggers of the YAML pipeline file ``path`` (empty when it lists none)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    entries = data.get("triggers") if isinstance(data, dict) else None
    if not entries:
        return []
    root = os.path.dirname(os.path.abspath(path))
    return triggers_from_config(list(entries), root=root, pipeline=pipeline)
