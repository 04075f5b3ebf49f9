"""Finding the pipeline a command is about: ``file.py:name``, ``module:name`` or
``pipeline.yaml``.

A file is imported as a module named after it (``pipeline.py`` becomes module
``pipeline``) with its directory first on ``sys.path``, as ``python -m`` would: so the
values it defines pickle by reference and load again in a later run, worker processes can
import it, and its helper functions count as project code in step fingerprints. A module
is imported with the current directory first on ``sys.path``.

A ``.yaml``/``.yml`` file is a YAML pipeline (:func:`plait.load_pipeline`), loaded with
its folder and the current directory on ``sys.path`` so the registry it names
(``registry: module:attribute``) and the modules it allows import as they would in a test.

The name may be omitted when the file or module defines exactly one pipeline. It may name
a :class:`~plait.Pipeline`, a :class:`~plait.Step` (a one-step pipeline) or a function
taking no argument that returns a pipeline.

Once loaded, a pipeline may be cut to the steps ``--from-steps``, ``--to-steps`` and
``--tags`` select (:func:`select`), or checked for problems no param can fix
(:func:`check_structure`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any

import click

from plait.cli._errors import CommandError

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = ["check_structure", "drop_outside", "load_pipeline", "select"]

_FORMS = (
    "give FILE.py:NAME (e.g. pipeline.py:pipeline), MODULE:NAME (e.g. myproject.flows:etl) "
    "or a YAML pipeline (pipeline.yaml)"
)
_YAML = (".yaml", ".yml")


def load_pipeline(target: str, env: str | None = None) -> Pipeline:
    """The pipeline named by ``target``.

    Args:
        target: ``FILE.py[:NAME]``, ``MODULE:NAME`` or ``FILE.yaml``.
        env: The conf env of a YAML pipeline's ``config:`` folders.

    Raises:
        CommandError: When the file, module or name cannot be found or imported, or the
            name is not a pipeline; a YAML pipeline's problems.
    """
    if target.endswith(_YAML):
        return _load_yaml(target, env)
    location, _, name = target.rpartition(":") if ":" in target else (target, "", "")
    if not location:
        raise CommandError(f"target {target!r} names no file or module", _FORMS)
    if location.endswith(".py") or os.sep in location or "/" in location:
        module = _import_file(location, target)
    else:
        module = _import_module(location, target)
    return _pipeline_from(module, name, target)


def _load_yaml(path: str, env: str | None) -> Pipeline:
    from plait.errors import UsageError
    from plait.yaml_pipeline import YamlPipelineError, load_pipeline

    if not os.path.isfile(path):
        raise CommandError(f"no file {path!r}", _FORMS)
    for folder in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        return load_pipeline(path, env=env)
    except YamlPipelineError as exc:
        raise CommandError(str(exc), "fix these problems in the YAML file") from exc
    except UsageError as exc:  # a config file of the pipeline cannot be read
        raise CommandError(f"{path}: {exc}", "fix the pipeline's config") from exc


def _import_file(path: str, target: str) -> types.ModuleType:
    if not os.path.isfile(path):
        hint = _FORMS
        if os.path.isdir(path):
            hint = f"{path!r} is a directory; name a .py file inside it"
        raise CommandError(f"no file {path!r} (from target {target!r})", hint)
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(stem)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == path:
        return existing
    importable = stem.isidentifier() and existing is None
    digest = hashlib.blake2b(path.encode(), digest_size=6).hexdigest()
    name = stem if importable else f"_plait_target_{digest}"  # stable across runs
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CommandError(f"cannot import {path!r} as Python", _FORMS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise _import_failed(exc, target, path) from exc
    if not importable:  # workers cannot import it by name: ship its code by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module


def _import_module(location: str, target: str) -> types.ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if exc.name and location.startswith(exc.name):
            raise CommandError(
                f"no module {location!r} (from target {target!r})",
                f"run from the directory that contains it, install its package, or {_FORMS}",
            ) from exc
        raise _import_failed(exc, target) from exc
    except Exception as exc:
        raise _import_failed(exc, target) from exc


def _import_failed(exc: BaseException, target: str, path: str | None = None) -> CommandError:
    """Importing the user's code raised: say where in the user's code, without a traceback."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"\n  {_shown(exc.filename)}, line {exc.lineno}"
    else:
        frame = _user_frame(traceback.extract_tb(exc.__traceback__), path)
        if frame is not None:
            where = f"\n  {_shown(frame.filename)}, line {frame.lineno}"
            if frame.line:
                where += f": {frame.line.strip()}"
    return CommandError(
        f"importing target {target!r} raised {type(exc).__name__}: {exc}{where}",
        "fix the error in that file (plait --debug ... shows the whole traceback)",
    )


def _user_frame(frames: traceback.StackSummary, path: str | None) -> traceback.FrameSummary | None:
    """The innermost frame in the target file, else the innermost outside plait and importlib."""
    if path is not None:
        for frame in reversed(frames):
            if os.path.abspath(frame.filename) == path:
                return frame
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for frame in reversed(frames):
        name = os.path.abspath(frame.filename)
        if not name.startswith(package + os.sep) and "importlib" not in frame.filename:
            return frame
    return frames[-1] if frames else None


def _shown(filename: str) -> str:
    """A path relative to the current directory when it is inside it."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative


def _pipeline_from(module: types.ModuleType, name: str, target: str) -> Pipeline:
    from plait.pipeline import Pipeline
    from plait.steps import Step

    if not name:
        found = [k for k, v in vars(module).items() if isinstance(v, Pipeline)]
        if len(found) == 1:
            name = found[0]
        else:
            which = f": it defines {', '.join(map(repr, found))}" if found else ""
            raise CommandError(
                f"target {target!r} does not say which pipeline to use{which}",
                f"add ':NAME' to the target, e.g. {target}:{found[0] if found else 'pipeline'}",
            )
    value = getattr(module, name, None)
    if value is None:
        from plait.errors import suggest

        candidates = [k for k, v in vars(module).items() if isinstance(v, Pipeline | Step)]
        raise CommandError(
            f"{module.__name__!r} has no attribute {name!r}{suggest(name, candidates)}",
            f"pipelines it defines: {', '.join(candidates)}"
            if candidates
            else "define a Pipeline at module level",
        )
    return _as_pipeline(value, target)


def _as_pipeline(value: Any, target: str) -> Pipeline:
    from plait.pipeline import Pipeline
    from plait.steps import Step

    if isinstance(value, Pipeline):
        return value
    if isinstance(value, Step):
        return Pipeline([value], name=value.name)
    if callable(value) and not isinstance(value, type):
        try:
            made = value()
        except Exception as exc:  # the user's factory failed: say so, no traceback
            raise CommandError(
                f"calling target {target!r} to build the pipeline raised "
                f"{type(exc).__name__}: {exc}",
                "name a Pipeline, a Step or a function taking no argument that returns one "
                "(plait --debug ... shows the traceback)",
            ) from exc
        if isinstance(made, Pipeline):
            return made
        value = made
    raise CommandError(
        f"target {target!r} is {type(value).__name__} {value!r:.60}, not a pipeline",
        "name a Pipeline, a Step or a function taking no argument that returns a Pipeline",
    )


def select(
    pipeline: Pipeline,
    *,
    from_steps: list[str] | None,
    to_steps: list[str] | None,
    tags: list[str] | None,
    outputs: list[str] | None,
) -> Pipeline:
    """``pipeline`` cut to ``--from-steps``, ``--to-steps`` and ``--tags`` (with ``--outputs``).

    Raises:
        CommandError: For an unknown step, tag or output, or an empty selection.
    """
    if from_steps is None and to_steps is None and tags is None:
        return pipeline  # --outputs alone prunes in the run, as it always has
    from plait.errors import UsageError

    try:
        return pipeline.select(from_steps=from_steps, to_steps=to_steps, tags=tags, outputs=outputs)
    except UsageError as exc:
        raise CommandError(
            f"cannot select steps of pipeline {pipeline.name!r}: {exc}",
            "--from-steps A,B: A, B and what follows; --to-steps C: C and what it needs; "
            "--tags T: the steps tagged T; plait show TARGET draws the steps",
        ) from exc


def drop_outside(values: dict[str, Any], full: Pipeline, part: Pipeline) -> dict[str, Any]:
    """``values`` without the params only steps outside the selection ``part`` read."""
    inside = {d for item in part.steps.values() for d in item.data_inputs.values()}
    outside = {
        d
        for item in full.steps.values()
        if item.name not in part
        for d in item.data_inputs.values()
    }
    kept = {}
    for name, value in values.items():
        if name in outside and name not in inside:
            readers = [s.name for s in full.steps.values() if name in s.data_inputs.values()]
            click.echo(
                f"note: --param {name} is read only by steps outside the selection "
                f"({', '.join(readers)}); ignored",
                err=True,
            )
        else:
            kept[name] = value
    return kept


def check_structure(pipeline: Pipeline) -> None:
    """Stop on what makes the graph wrong whatever the params: cycles, clashes, types.

    Missing params are not problems here: ``show`` takes none.
    """
    problems = pipeline.graph.problems
    if problems:
        lines = "\n".join(f"  - {problem.message}" for problem in problems)
        count = len(problems)
        raise CommandError(
            f"pipeline {pipeline.name!r} is invalid ({count} problem"
            f"{'s' if count != 1 else ''}), so it cannot be drawn:\n{lines}",
            "fix these problems in the pipeline's code",
        )
