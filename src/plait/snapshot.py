"""Frozen pipeline versions: ``p.freeze()`` → a sealed, comparable :class:`Snapshot`.

A snapshot holds what defines a pipeline version: its name, version label and
experiment; each step's wiring (inputs, outputs, ``after``), code fingerprint (the same
function fingerprint the history records for each step execution), source text, options
and parameter defaults; the pipeline's constant params, declared param defaults, config
and datasets (each one's ``describe()``, else its ``repr``). Values are kept as
JSON-friendly data (anything else as its ``repr``), so a snapshot is a small JSON file
that never unpickles anything.

Seal. ``seal`` is the SHA-256 of the canonical JSON of everything else (sorted keys, no
whitespace), so it is deterministic: freezing an unchanged pipeline twice gives the same
seal, on any machine, whatever the dict order or ``PYTHONHASHSEED``. :meth:`Snapshot.verify`
recomputes it and raises :class:`SnapshotError` when the content was changed (a file
edited by hand, a damaged copy); :meth:`Snapshot.load` verifies before returning.

Against a recorded version. :func:`compare_with_run` (``p.compare_with("1.1.0",
store=...)``) compares the pipeline as it is now with the newest recorded run of that
pipeline version: steps added or removed (from the run's recorded structure), each
step's code (against the function fingerprint recorded with the step's execution), and
the param and config values the run read (against the pipeline's own params and config).

Diff. :meth:`Snapshot.diff` compares two snapshots step by step and returns
:class:`Change` rows: steps added or removed, then per step the code, source, wiring,
options and defaults that differ, then the pipeline's params, config and version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.steps import Step

__all__ = ["FORMAT", "Change", "Snapshot", "SnapshotError", "compare_with_run", "freeze"]

FORMAT = 1  # the snapshot file's format version


class SnapshotError(PlaitError, ValueError):
    """A snapshot whose seal does not match its content, or a file that is no snapshot."""


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-friendly data for a value (classes and functions by name, others by repr)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 50:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_plain(v, depth + 1) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)  # pydantic
    if callable(dump):
        try:
            return _plain(dump(), depth + 1)
        except Exception:  # not a pydantic model after all
            pass
    if isinstance(value, type) or inspect.isroutine(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"


def _source(func: Any) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def _step(item: Step) -> dict[str, Any]:
    from plait.store.fingerprint import function_fingerprint

    options = {
        f.name: _plain(getattr(item.options, f.name)) for f in dataclasses.fields(item.options)
    }
    return {
        "inputs": dict(sorted(item.data_inputs.items())),
        "outputs": list(item.outputs),
        "after": sorted(item.after),
        "code": function_fingerprint(item.func),
        "source": _source(item.func),
        "options": options,
        "defaults": _plain(dict(item.signature.defaults)),
    }


def _body(pipeline: Pipeline) -> dict[str, Any]:
    declared = {
        name: _plain(getattr(spec, "default", None))
        for name, spec in sorted(getattr(pipeline, "_declared", {}).items())
    }
    return {
        "format": FORMAT,
        "pipeline": pipeline.name,
        "version": getattr(pipeline, "version", None),
        "experiment": getattr(pipeline, "experiment", None) or pipeline.name,
        "fingerprint": pipeline.fingerprint,
        "order": [item.name for item in pipeline.order],
        "steps": {item.name: _step(item) for item in pipeline.order},
        "params": _plain(dict(pipeline.params)),
        "declared_params": declared,
        "config": _plain(pipeline.config),
        "datasets": {
            name: _dataset(dataset) for name, dataset in sorted(pipeline.datasets.items())
        },
    }


def _dataset(dataset: Any) -> Any:
    """A dataset as plain data: its ``describe()`` (plait.io's formats), else its repr."""
    describe = getattr(dataset, "describe", None)
    if callable(describe):
        try:
            return _plain(describe())
        except Exception:  # a third-party describe() that fails: fall back to the repr
            pass
    return _plain(dataset)


def _seal(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two snapshots.

    Attributes:
        step: The step it concerns (None for the pipeline's own params, config, version).
        what: ``"added"``, ``"removed"``, ``"code"``, ``"source"``, ``"inputs"``,
            ``"outputs"``, ``"after"``, ``"options.<name>"``, ``"defaults.<param>"``,
            ``"params.<name>"``, ``"config"``, ``"version"``...
        before: The value in the snapshot ``diff`` was called on (None when absent).
        after: The value in the other snapshot.
    """

    step: str | None
    what: str
    before: Any
    after: Any

    def __str__(self) -> str:
        where = f"step {self.step!r}" if self.step else "pipeline"
        if self.what in ("added", "removed"):
            return f"{where}: {self.what}"
        if self.what == "source":
            return f"{where}: source changed"
        return f"{where}: {self.what} {self.before!r} -> {self.after!r}"


def _differences(step: str | None, prefix: str, a: Any, b: Any) -> Iterator[Change]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                yield Change(step, f"{prefix}.{key}", a.get(key), b.get(key))
    elif a != b:
        yield Change(step, prefix, a, b)


class Snapshot:
    """A sealed description of a pipeline version (see the module's docstring).

    Made by :meth:`plait.Pipeline.freeze` or :meth:`Snapshot.load`; do not build one by
    hand. Attributes: ``pipeline``, ``version``, ``experiment``, ``fingerprint``,
    ``steps`` (name → dict with ``inputs``, ``outputs``, ``after``, ``code``, ``source``,
    ``options``, ``defaults``), ``params``, ``config``, ``seal``.
    """

    __slots__ = ("_body", "seal")

    def __init__(self, body: Mapping[str, Any], seal: str | None = None) -> None:
        self._body = json.loads(json.dumps(body))  # a private deep copy of plain data
        self.seal = _seal(self._body) if seal is None else seal

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        body = object.__getattribute__(self, "_body")
        if name in body:
            return json.loads(json.dumps(body[name]))  # a copy: the snapshot stays sealed
        raise AttributeError(f"'Snapshot' object has no attribute {name!r}")

    def __repr__(self) -> str:
        version = self._body.get("version")
        label = f" version {version!r}" if version else ""
        return f"<Snapshot of {self._body.get('pipeline')!r}{label} seal {self.seal[:12]}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and other.seal == self.seal and other._body == self._body

    def __hash__(self) -> int:
        return hash(self.seal)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (its content and its ``seal``)."""
        return {**json.loads(json.dumps(self._body)), "seal": self.seal}

    def verify(self) -> bool:
        """Check the seal against the content.

        Returns:
            True.

        Raises:
            SnapshotError: When the content does not match the seal.
        """
        actual = _seal(self._body)
        if actual != self.seal:
            raise SnapshotError(
                f"snapshot of {self._body.get('pipeline')!r} does not match its seal "
                f"(sealed {self.seal[:12]}, content {actual[:12]}): it was changed after "
                "freeze(); freeze the pipeline again"
            )
        return True

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot as JSON to ``path`` (atomically: a temporary file renamed)."""
        target = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".snapshot-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`save`, and verify its seal.

        Raises:
            SnapshotError: When the file is not a snapshot or its seal does not match.
            FileNotFoundError: When there is no such file.
        """
        with open(path, encoding="utf-8") as file:
            text = file.read()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SnapshotError(f"{os.fspath(path)!r} is not a snapshot (not JSON: {exc})") from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("seal"), str)
            or "steps" not in data
        ):
            raise SnapshotError(
                f"{os.fspath(path)!r} is not a snapshot (no 'seal' and 'steps'); write one "
                "with Pipeline.freeze().save(path)"
            )
        if data.get("format") != FORMAT:
            raise SnapshotError(
                f"{os.fspath(path)!r} is a snapshot of format {data.get('format')!r}; this "
                f"plait reads format {FORMAT}"
            )
        seal = data.pop("seal")
        snapshot = cls(data, seal)
        snapshot.verify()
        return snapshot

    def diff(self, other: Snapshot) -> list[Change]:
        """What changed from this snapshot to ``other``, step by step (steps in this
        snapshot's order, then the steps only ``other`` has), then the pipeline's own
        params, config and version. Empty when they describe the same version."""
        mine, theirs = self._body["steps"], other._body["steps"]
        order = [*self._body["order"], *(n for n in other._body["order"] if n not in mine)]
        changes: list[Change] = []
        for name in order:
            if name not in theirs:
                changes.append(Change(name, "removed", mine[name]["code"], None))
                continue
            if name not in mine:
                changes.append(Change(name, "added", None, theirs[name]["code"]))
                continue
            a, b = mine[name], theirs[name]
            for key in ("code", "source", "inputs", "outputs", "after"):
                if a.get(key) != b.get(key):
                    changes.append(Change(name, key, a.get(key), b.get(key)))
            changes.extend(_differences(name, "options", a["options"], b["options"]))
            changes.extend(_differences(name, "defaults", a["defaults"], b["defaults"]))
        for key in ("params", "declared_params", "datasets"):
            mine_value, their_value = self._body.get(key, {}), other._body.get(key, {})
            changes.extend(_differences(None, key, mine_value, their_value))
        for key in ("config", "version", "pipeline", "experiment"):
            if self._body.get(key) != other._body.get(key):
                changes.append(Change(None, key, self._body.get(key), other._body.get(key)))
        return changes


def freeze(pipeline: Pipeline) -> Snapshot:
    """A sealed :class:`Snapshot` of ``pipeline`` as it is now. Run-time params need not
    be given: a snapshot describes the version, not a run."""
    return Snapshot(_body(pipeline))


def _config_value(config: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``config`` (dict keys or attributes), or _ABSENT."""
    value = config
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return _ABSENT
            value = value[part]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            return _ABSENT
    return value


_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()


def compare_with_run(pipeline: Pipeline, version: str, store: Any) -> list[Change]:
    """What changed in ``pipeline`` since the newest recorded run of its ``version``.

    ``before`` is the recorded run's side, ``after`` the pipeline's now.

    Raises:
        PlaitError: With no store with a history, or no run of that version.
    """
    from plait.store.fingerprint import function_fingerprint
    from plait.store.store import as_store

    chosen = as_store(store)
    if chosen is None or not chosen.has_history:
        raise PlaitError(
            f"compare_with({version!r}) needs a store with a history: "
            "p.compare_with(version, store='.plait')"
        )
    history = chosen.history
    runs = history.runs(pipeline=pipeline.name, version=version, project=chosen.project, limit=1)
    if not runs:
        known = sorted(
            {str(r.version) for r in history.runs(pipeline=pipeline.name, limit=200) if r.version}
        )
        raise PlaitError(
            f"no recorded run of pipeline {pipeline.name!r} version {version!r} in "
            f"{history.url}; recorded versions: {known or 'none'}"
        )
    record = history.run(runs[0].run_id)
    recorded = (
        [s.name for s in record.structure.order]
        if record.structure is not None
        else list(record.steps)
    )
    changes: list[Change] = []
    for name in recorded:
        if name not in pipeline.steps:
            changes.append(Change(name, "removed", None, None))
    for item in pipeline.order:
        if item.name not in recorded:
            changes.append(Change(item.name, "added", None, None))
            continue
        step_record = record.steps.get(item.name)
        code = function_fingerprint(item.func)
        if step_record is not None and step_record.fingerprint and step_record.fingerprint != code:
            changes.append(Change(item.name, "code", step_record.fingerprint, code))
    for name, value in record.params.items():
        if "." in name:  # a step's own default: compared through its code
            continue
        current = pipeline.params.get(name, _ABSENT)
        if current is not _ABSENT and _plain(current) != value:
            changes.append(Change(None, f"params.{name}", value, _plain(current)))
    for name, value in record.config.items():
        if name == "config":
            continue
        path = name.removeprefix("config.")
        current = _config_value(pipeline.config, path)
        if current is not _ABSENT and _plain(current) != value:
            changes.append(Change(None, f"config.{path}", value, _plain(current)))
    return changes
