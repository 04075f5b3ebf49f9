"""Pipelines written as YAML: :func:`load_pipeline`.

```yaml
name: sums
registry: myproject.pipelines:registry   # where dotted calls are looked up
imports: ["myproject."]          # module prefixes that module:function calls may import
params:
  n: {type: int, default: 3}
config: {factor: 10}             # or conf files/folders: [conf/base/parameters.yml]
steps:
  - call: data.numbers           # a registry entry
  - call: myproject.math:total   # an allowed module's function
    retries: 2
```

Design note: loading is parse (keeping positions) -> check the schema -> resolve calls and
build steps -> assemble, collecting problems at every stage; if there are any, one
:class:`YamlPipelineError` lists them all, each with ``file:line:column``. Nothing of the
user's is imported unless the YAML or the caller allows its module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, UsageError
from plait.yaml_pipeline._source import Problem

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.registry import Registry
    from plait.yaml_pipeline._source import Located, Path

__all__ = ["Problem", "YamlPipelineError", "load_pipeline"]


class YamlPipelineError(UsageError):
    """A YAML pipeline that cannot be loaded; ``.problems`` lists every :class:`Problem`."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        plural = "problem" if count == 1 else "problems"
        super().__init__(f"{file}: {count} {plural} in the pipeline:\n{lines}")


def _source(path_or_text: str | os.PathLike[str]) -> tuple[str, str, FilePath]:
    """(text, the name shown in messages, the folder relative paths start from)."""
    if isinstance(path_or_text, os.PathLike) or (
        "\n" not in path_or_text
        and (path_or_text.endswith((".yaml", ".yml")) or os.path.isfile(path_or_text))
    ):
        path = FilePath(path_or_text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise YamlPipelineError(
                str(path), [Problem(str(path), 1, 1, f"cannot read the file: {exc.strerror}")]
            ) from exc
        return text, str(path), path.parent
    return path_or_text, "<text>", FilePath.cwd()


def load_pipeline(
    path_or_text: str | os.PathLike[str],
    registry: Registry | None = None,
    *,
    imports: Sequence[str] = (),
    env: str | None = None,
) -> Pipeline:
    """The pipeline a YAML file (or YAML text) describes.

    Args:
        path_or_text: A ``.yaml``/``.yml`` path, or the YAML itself.
        registry: Where dotted ``call:`` names are looked up (default: the registry the
            YAML names with ``registry: module:attribute``, imported).
        imports: Module prefixes ``module:function`` calls may import, besides the YAML's
            own ``imports:``.
        env: The env of conf folders named in ``config:`` (default: ``PLAIT_ENV``...).

    Raises:
        YamlPipelineError: Listing every problem, each with ``file:line:column``.
    """
    from plait.yaml_pipeline import _build, _schema
    from plait.yaml_pipeline._source import parse

    text, file, base = _source(path_or_text)
    parsed = parse(text, file)
    if isinstance(parsed, Problem):
        raise YamlPipelineError(file, [parsed])
    problems: list[Problem] = []
    add = _adder(parsed, file, problems)
    _schema.check(parsed, file, add)
    if problems:
        raise YamlPipelineError(file, problems)
    data: dict[str, Any] = parsed.data
    prefixes = [*imports, *_listed(data.get("imports"))]
    if registry is None and "registry" in data:
        registry = _guarded(add, ("registry",), lambda: _build.load_registry(data["registry"]))
        if registry is None:
            raise YamlPipelineError(file, problems)
    built = _build.build_steps(data["steps"], registry, prefixes, add)
    config = _guarded(add, ("config",), lambda: _build.build_config(data.get("config"), base, env))
    datasets = _build.build_datasets(data.get("datasets"), base, prefixes, add, env)
    pipeline = _build.build_pipeline(
        data.get("name", "pipeline"), built, data.get("params") or {}, config, datasets, add
    )
    if problems:
        raise YamlPipelineError(file, problems)
    return pipeline


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _adder(parsed: Located, file: str, problems: list[Problem]) -> Any:
    def add(path: Path, message: str, at_key: bool) -> None:
        line, column = parsed.at(path, key=at_key)
        problems.append(Problem(file, line, column, message))

    return add


def _guarded(add: Any, path: Path, make: Any) -> Any:
    try:
        return make()
    except (PlaitError, ImportError, OSError) as exc:
        add(path, f"{path[0]}: {exc}", False)
        return None
