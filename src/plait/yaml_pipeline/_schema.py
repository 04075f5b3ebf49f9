"""The schema of a YAML pipeline, as a table of fields, and its validation.

Each field has a checker that returns ``None`` for a good value or what is wrong ("must be
an integer >= 0"). Validation walks the whole document and collects every problem (unknown
keys with a "did you mean", missing keys, wrong types) with its position, so one run of
``plait run pipeline.yaml`` lists them all. The same table renders the reference in
``docs/yaml.md`` (:func:`reference`).

A hand-written table rather than a pydantic model: the messages stay exactly these (no
union-member noise), and loading needs no dependency beyond PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import suggest
from plait.yaml_pipeline._source import Located, Path

__all__ = [
    "DURATION",
    "PARAM_TYPES",
    "PIPELINE_FIELDS",
    "STEP_FIELDS",
    "TRIGGER_FIELDS",
    "TRIGGER_KINDS",
    "UNITS",
    "check",
    "label",
    "reference",
]

Check = Callable[[Any], str | None]
PARAM_TYPES = ("int", "float", "str", "bool", "list", "dict", "path", "any")
EXPIRE_NAMES = ("never", "session", "on_complete", "at_midnight")
DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Field:
    """One key: how its value is checked, whether it is required, what it means."""

    check: Check
    doc: str
    kind: str
    required: bool = False


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _text(value: Any) -> str | None:
    return None if _is_name(value) else "must be a non-empty string"


def _names(value: Any) -> str | None:
    ok = _is_name(value) or (isinstance(value, list) and all(map(_is_name, value)))
    return None if ok else "must be a name or a list of names"


def _inputs(value: Any) -> str | None:
    if isinstance(value, list) and all(map(_is_name, value)):
        return None
    if isinstance(value, dict) and all(_is_name(k) and _is_name(v) for k, v in value.items()):
        return None
    return "must be a list of data names or a mapping of parameter: data name"


def _outputs(value: Any) -> str | None:
    return None if value is None else _names(value)


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _int(low: int) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else f"must be an integer >= {low}"

    return check


def _number(low: float, high: float | None = None, *, nullable: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= low
        ok = ok and (high is None or value <= high)
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        return None if ok else f"must be a number {span}" + (" or null" if nullable else "")

    return check


def _choice(*options: str) -> Check:
    def check(value: Any) -> str | None:
        if value in options:
            return None
        hint = suggest(value, options) if isinstance(value, str) else ""
        return f"must be one of {', '.join(map(repr, options))}{{got}}{hint}"

    return check


def _version(value: Any) -> str | None:
    ok = isinstance(value, str | int | float) and not isinstance(value, bool)
    return None if ok else "must be a string or a number"


def _expire(value: Any) -> str | None:
    if value is None or value in EXPIRE_NAMES:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return None
    if isinstance(value, str) and DURATION.fullmatch(value):
        return None
    return f"must be seconds, a duration (30m, 6h, 7d) or one of {', '.join(EXPIRE_NAMES)}"


STEP_FIELDS: dict[str, Field] = {
    "call": Field(_text, "what the step runs: a registry name, or module:function", "str", True),
    "name": Field(_text, "the step's name (default: the function's or step's own)", "str"),
    "inputs": Field(_inputs, "list (positional) or mapping parameter: data name", "list | map"),
    "outputs": Field(_outputs, "an output name, a list of names, or null (a sink)", "str | list"),
    "after": Field(_names, "steps that must finish first (no data passed)", "str | list"),
    "cache": Field(_bool, "reuse results from earlier runs", "bool"),
    "version": Field(_version, "a label in the cache key: change it to recompute", "str"),
    "retries": Field(_int(0), "extra attempts after a failure", "int"),
    "backoff": Field(_number(0), "seconds before the first retry (doubles each time)", "number"),
    "timeout": Field(_number(0, nullable=True), "seconds per attempt", "number"),
    "expire": Field(_expire, "seconds, a duration (6h) or never/session/...", "number | str"),
    "map": Field(_text, "the parameter to map over (the step runs per element)", "str"),
    "concurrency": Field(_int(1), "elements of a map running at once", "int"),
    "min_success_ratio": Field(_number(0, 1), "share of map elements that must succeed", "number"),
    "tags": Field(_names, "labels to select steps by (--tags)", "str | list"),
    "optional": Field(_bool, "a failure does not fail the run", "bool"),
    "on_upstream": Field(
        _choice("skip", "receive", "fail"), "what an upstream failure does", "str"
    ),
    "profile": Field(_bool, "measure the step's memory", "bool"),
    "dynamic": Field(_bool, "the step returns a pipeline to run", "bool"),
    "input_files": Field(_names, "files whose contents are part of the cache key", "str | list"),
}

PARAM_FIELDS: dict[str, Field] = {
    "type": Field(_choice(*PARAM_TYPES), "the param's type, checked when a run starts", "str"),
    "default": Field(lambda value: None, "its value when the run gives none", "any"),
    "description": Field(_text, "what it is for", "str"),
}


def _config(value: Any) -> str | None:
    if isinstance(value, dict) or _names(value) is None:
        return None
    return "must be a mapping, or a file (or folder) name or a list of them"


def _call(value: Any) -> str | None:
    ok = isinstance(value, str) and ":" in value and all(value.partition(":")[::2])
    return None if ok else "must be module:attribute, e.g. myproject.pipelines:registry"


def _datasets(value: Any) -> str | None:
    return None if isinstance(value, dict) or _is_name(value) else "must be a mapping or a file"


def _every(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return None
    found = DURATION.fullmatch(value) if isinstance(value, str) else None
    if found and float(found.group(1)) > 0:
        return None
    return "must be seconds or a duration (30s, 5m, 2h, 1d)"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a mapping of param: value"


TRIGGER_KINDS = ("cron", "every", "webhook", "watch", "redis")
TRIGGER_FIELDS: dict[str, Field] = {  # read by plait.events (plait serve pipeline.yaml)
    "cron": Field(_text, "a cron expression: a run at each tick", "str"),
    "every": Field(_every, "a run every interval: seconds or 30s, 5m, 2h, 1d", "number | str"),
    "webhook": Field(_text, "the path of authenticated POST requests, e.g. /run", "str"),
    "watch": Field(_text, "a glob (from the YAML's folder): a run per new or changed file", "str"),
    "redis": Field(_text, "redis://HOST:PORT/DB: a run per entry of `stream`", "str"),
    "name": Field(_text, "the trigger's name in run records", "str"),
    "params": Field(_mapping, "params of its runs", "map"),
    "tz": Field(_text, "cron: the time zone (IANA name; default UTC)", "str"),
    "host": Field(_text, "webhook: the address to listen on (default 127.0.0.1)", "str"),
    "port": Field(_int(0), "webhook: the port (default 8000)", "int"),
    "param": Field(_text, "watch: the param that gets the file's path", "str"),
    "debounce": Field(_number(0), "watch: seconds changes are gathered", "number"),
    "stream": Field(_text, "redis: the stream (default: the pipeline's name)", "str"),
    "group": Field(_text, "redis: the consumer group (default plait)", "str"),
    "consumer": Field(_text, "redis: this consumer's name (default plait)", "str"),
}


PIPELINE_FIELDS: dict[str, Field] = {
    "name": Field(_text, "the pipeline's name (default 'pipeline')", "str"),
    "params": Field(lambda v: None, "name: {type, default} (or name: default)", "map"),
    "config": Field(_config, "a mapping, or files/conf folders merged in order", "map | list"),
    "datasets": Field(_datasets, "a mapping name: dataset, or a catalog file", "map | str"),
    "imports": Field(_names, "module prefixes that calls may import", "list"),
    "registry": Field(_call, "module:attribute of the Registry calls are looked up in", "str"),
    "steps": Field(lambda v: None, "the steps, in any order", "list", True),
    "triggers": Field(lambda v: None, "what runs it under plait serve (see below)", "list"),
}


def label(index: int, item: Any) -> str:
    """``steps[3]``, with the step's name when it has one."""
    name = item.get("name") if isinstance(item, dict) else None
    return f"steps[{index}] ({name})" if _is_name(name) else f"steps[{index}]"


def check(doc: Located, file: str, add: Callable[[Path, str, bool], None]) -> None:
    """Report every schema problem of ``doc`` through ``add(path, message, at_key)``."""
    data = doc.data
    for path, key in doc.duplicates:
        add(path, f"{_prefix(doc, path[:-1])}key {key!r} is given twice", True)
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {_kind(data)}"
        add((), f"the pipeline must be a mapping with a 'steps' list, got {got}", False)
        return
    _fields(data, (), PIPELINE_FIELDS, "", add)
    params = data.get("params")
    if isinstance(params, dict):
        for name, spec in params.items():
            if isinstance(spec, dict):
                _fields(spec, ("params", name), PARAM_FIELDS, f"params.{name}: ", add)
    elif params is not None:
        add(("params",), "params must be a mapping of name: {type, default}", False)
    _triggers(data.get("triggers"), add)
    steps = data.get("steps")
    if "steps" in data and (not isinstance(steps, list) or not steps):
        add(("steps",), "steps must be a non-empty list of steps", False)
        return
    for index, item in enumerate(steps or ()):
        where = f"{label(index, item)}: "
        if not isinstance(item, dict):
            add(
                ("steps", index),
                f"{where}a step must be a mapping with 'call', got {_kind(item)} {item!r:.40}",
                False,
            )
            continue
        _fields(item, ("steps", index), STEP_FIELDS, where, add)


def _triggers(triggers: Any, add: Callable[[Path, str, bool], None]) -> None:
    if triggers is None:
        return
    if not isinstance(triggers, list):
        add(("triggers",), "triggers must be a list of triggers, e.g. - cron: '0 * * * *'", False)
        return
    for index, item in enumerate(triggers):
        where = f"triggers[{index}]: "
        kinds = [k for k in TRIGGER_KINDS if isinstance(item, dict) and k in item]
        if len(kinds) != 1:
            got = "none" if not kinds else ", ".join(kinds)
            add(
                ("triggers", index),
                f"{where}a trigger is a mapping with one of {'/'.join(TRIGGER_KINDS)} (got {got})",
                False,
            )
            if not isinstance(item, dict):
                continue
        _fields(item, ("triggers", index), TRIGGER_FIELDS, where, add)


def _prefix(doc: Located, path: Path) -> str:
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
        item = steps[path[1]] if isinstance(steps, list) and path[1] < len(steps) else None
        return f"{label(path[1], item)}: "
    return ".".join(map(str, path)) + ": " if path else ""


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "mapping", list: "list", str: "string"}
    return names.get(type(value), type(value).__name__)


def _fields(
    values: Mapping[Any, Any],
    path: Path,
    fields: Mapping[str, Field],
    where: str,
    add: Callable[[Path, str, bool], None],
) -> None:
    for key, value in values.items():
        field = fields.get(key) if isinstance(key, str) else None
        here = (*path, key)
        if field is None:
            add(here, f"{where}unknown key {key!r}{suggest(str(key), fields)}", True)
            continue
        wrong = field.check(value)
        if wrong is not None:
            got = f", got {value!r:.60}"
            text = wrong.replace("{got}", got) if "{got}" in wrong else wrong + got
            add(here, f"{where}{key} {text}", False)
    for key, field in fields.items():
        if field.required and key not in values:
            add(path, f"{where}missing key {key!r} ({field.doc})", False)


def reference() -> str:
    """The schema as Markdown tables (pipeline keys, step keys, param keys)."""
    lines = []
    for title, fields in (
        ("pipeline", PIPELINE_FIELDS),
        ("step", STEP_FIELDS),
        ("param", PARAM_FIELDS),
        ("trigger", TRIGGER_FIELDS),
    ):
        lines += [f"| {title} key | type | required | meaning |", "| --- | --- | --- | --- |"]
        lines += [
            f"| `{key}` | {f.kind.replace('|', chr(92) + '|')} | {'yes' if f.required else ''} "
            f"| {f.doc} |"
            for key, f in fields.items()
        ]
        lines.append("")
    return "\n".join(lines)
