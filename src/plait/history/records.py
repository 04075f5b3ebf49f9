"""Run and step records, as read back from the history.

A :class:`RunRecord` read with ``history.run(run_id)`` carries its steps and its pipeline's
structure. One from a listing (``history.runs()``) carries neither yet: it loads both,
with one query, the first time ``steps`` or ``structure`` is read (``steps_loaded`` tells
which), through its :class:`~plait.history.History` (which reopens its connection if it
was closed). A listed run deleted in the meantime raises ``KeyError`` then, rather than
pretending it had no steps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["RecordedPipeline", "RecordedStep", "RunRecord", "StepRecord"]


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step execution as recorded.

    Attributes mirror :class:`~plait.StepResult`; ``input_versions`` maps each input's data
    name to its data version, ``data_versions`` each output's. ``params`` holds the values
    the step received from params or from its own defaults (``seed=42`` when ``seed`` was
    not given and ``def f(seed=42)``). ``logs`` holds its log lines (``"INFO message"``,
    and ``"[stdout] text"`` / ``"[stderr] text"`` when output was captured), the last
    ones kept when there were too many; ``logs_dropped`` counts the lines left out.
    ``element_attempts`` maps each element of a map step (its index or key, as text) to
    how many times the function was called for it.
    """

    run_id: str
    name: str
    status: str
    cached: bool
    reason: str
    attempts: int
    start_time: float | None
    end_time: float | None
    duration: float
    cache_key: str | None
    input_versions: dict[str, str]
    data_versions: dict[str, str]
    error: dict[str, str] | None
    metrics: dict[str, Any]
    peak_memory: int | None = None
    fingerprint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    logs: tuple[str, ...] = ()
    logs_dropped: int = 0
    element_attempts: dict[str, int] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime | None:
        """When the step started (UTC)."""
        return _moment(self.start_time)

    @property
    def finished_at(self) -> datetime | None:
        """When the step finished (UTC)."""
        return _moment(self.end_time)

    COLUMNS = (
        "run_id, name, status, cached, reason, attempts, started_at, finished_at, duration, "
        "cache_key, input_versions, data_versions, error_type, error_message, "
        "error_traceback, metrics, peak_memory, fingerprint, params, logs, element_attempts"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StepRecord:
        """Build from a row of :attr:`COLUMNS`."""
        error = None
        if row[12]:
            error = {"type": row[12], "message": row[13] or "", "traceback": row[14] or ""}
        logs = _json(row[19], {})
        return cls(
            row[0],
            row[1],
            row[2],
            bool(row[3]),
            row[4] or "",
            int(row[5] or 0),
            row[6],
            row[7],
            float(row[8] or 0.0),
            row[9],
            _json(row[10], {}),
            _json(row[11], {}),
            error,
            _json(row[15], {}),
            row[16],
            row[17],
            _json(row[18], {}),
            tuple(str(line) for line in logs.get("lines", ())),
            int(logs.get("dropped", 0)),
            {str(k): int(v) for k, v in _json(row[20], {}).items()},
        )


@dataclass(frozen=True, slots=True)
class RecordedStep:
    """One step of a recorded pipeline structure: how it is wired and drawn.

    Fits the protocol the drawings read (``plait.viz``), like :class:`plait.Step`.
    """

    name: str
    data_inputs: dict[str, str]  # parameter -> data name
    outputs: tuple[str, ...]
    after: tuple[str, ...] = ()
    is_async: bool = False
    map: str | None = None
    dynamic: bool = False
    optional: bool = False

    @property
    def options(self) -> RecordedStep:
        """The options the drawings read (``map``, ``dynamic``, ``optional``): these."""
        return self

    def row(self) -> list[Any]:
        """The compact JSON form kept in the history (see :func:`structure_row`)."""
        return structure_row(
            self.name,
            self.data_inputs,
            self.outputs,
            self.after,
            self.is_async,
            self.map,
            self.dynamic,
            self.optional,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RecordedStep:
        """Read :meth:`row` back."""
        name, inputs, outputs, after, is_async, map_over, dynamic, optional = row
        return cls(
            str(name),
            {str(k): str(v) for k, v in dict(inputs).items()},
            tuple(outputs),
            tuple(after),
            bool(is_async),
            map_over,
            bool(dynamic),
            bool(optional),
        )


def structure_row(
    name: str,
    inputs: Mapping[str, str],
    outputs: Sequence[str],
    after: Sequence[str],
    is_async: bool,
    map_over: str | None,
    dynamic: bool,
    optional: bool,
) -> list[Any]:
    """One step of a structure as kept in the history: a JSON array, not an object, to keep
    the structure of a 100,000-step pipeline small and quick to write."""
    return [name, inputs, outputs, after, is_async, map_over, dynamic, optional]


def structure_json(name: str, rows: Sequence[list[Any]]) -> str:
    """A pipeline structure's JSON text (stable: equal structures, equal text)."""
    return json.dumps({"name": name, "steps": rows}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class RecordedPipeline:
    """The structure of the pipeline a run executed: its steps in pipeline order.

    Fits the protocol the drawings read, so a recorded run's report draws its edges.
    """

    name: str
    order: tuple[RecordedStep, ...]

    @property
    def producers(self) -> dict[str, str]:
        """Data name -> the step producing it."""
        return {output: s.name for s in self.order for output in s.outputs}

    def to_json(self) -> str:
        """The JSON text kept in the history (stable: equal structures, equal text)."""
        return structure_json(self.name, [s.row() for s in self.order])

    @classmethod
    def from_json(cls, text: str) -> RecordedPipeline:
        """Read :meth:`to_json` back."""
        data = json.loads(text)
        return cls(str(data["name"]), tuple(RecordedStep.from_row(r) for r in data["steps"]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description: the name and each step's wiring."""
        return {
            "name": self.name,
            "steps": [
                {
                    "name": s.name,
                    "inputs": s.data_inputs,
                    "outputs": list(s.outputs),
                    "after": list(s.after),
                }
                for s in self.order
            ],
        }


_Details = tuple[dict[str, StepRecord], RecordedPipeline | None]


class _Loader:
    """A listed run's steps and structure: loaded once, on first use."""

    __slots__ = ("_load", "_lock", "value")

    def __init__(self, load: Callable[[], _Details], value: _Details | None) -> None:
        self._load = load
        self._lock = threading.Lock()
        self.value = value

    def get(self) -> _Details:
        value = self.value
        if value is None:
            with self._lock:
                value = self.value
                if value is None:
                    value = self._load()
                    self.value = value
        return value


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as recorded.

    ``steps`` (step name -> :class:`StepRecord`, in the order the steps started) and
    ``structure`` (the pipeline's steps and wiring, None for runs recorded before plait
    kept it) come with a record read by ``history.run(run_id)``; a record from
    ``history.runs()`` loads them on first access (see the module docstring).
    ``params`` holds the params given to the run, plus the defaults of step parameters
    no param or config fed (under the parameter's name, or ``"step.param"`` where steps
    default the same name to different values). ``host`` and ``pid`` name the process
    that ran it (``pid`` is None for runs recorded before plait kept it); a run whose
    process is gone reads ``failed`` with ``error`` "process died ...". ``target`` names
    the code that ran, for resume and rerun: the target ``plait run`` loaded
    (``/abs/flow.py:pipeline``, ``module:name``, ``/abs/pipeline.yaml``), the ``target=``
    given to :meth:`~plait.Pipeline.run`, or ``module:name`` when the pipeline is a
    module-level global of an importable module; None when none is known.
    ``trigger`` says what started the run: ``{"kind", "name", "event_id"}`` for a run
    started by a trigger or a stream of :mod:`plait.events`, None for a direct call.
    ``experiment`` (the pipeline's ``experiment=``, else its name), ``version`` (the
    pipeline's ``version=``, None when it has none) and ``project`` (the store's
    ``project=``) group runs; runs recorded before plait kept them read None.
    """

    run_id: str
    pipeline: str
    fingerprint: str
    status: str
    params: dict[str, Any]
    config: dict[str, Any]
    tags: list[str]
    start_time: float
    end_time: float | None
    duration: float | None
    host: str
    plait_version: str
    python_version: str
    origin_run_id: str | None
    executor: str
    error: str | None
    pid: int | None
    target: str | None
    trigger: dict[str, str] | None
    experiment: str | None
    version: str | None
    project: str | None
    _details: _Loader = field(repr=False, compare=False)

    @property
    def steps(self) -> dict[str, StepRecord]:
        """Step name -> record, in the order the steps started (loaded on first use)."""
        return self._details.get()[0]

    @property
    def structure(self) -> RecordedPipeline | None:
        """The pipeline's structure as recorded with the run (loaded on first use)."""
        return self._details.get()[1]

    @property
    def steps_loaded(self) -> bool:
        """True once ``steps`` and ``structure`` are in memory."""
        return self._details.value is not None

    @property
    def started_at(self) -> datetime:
        """When the run started (UTC)."""
        return datetime.fromtimestamp(self.start_time, UTC)

    @property
    def finished_at(self) -> datetime | None:
        """When the run finished (UTC), None while running or after a kill."""
        return _moment(self.end_time)

    def to_dict(self, *, steps: bool = True) -> dict[str, Any]:
        """A JSON-friendly description, with the step records unless ``steps=False``."""
        data: dict[str, Any] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "_details"
        }
        if steps:
            data["steps"] = self.steps
            structure = self.structure
            data["structure"] = None if structure is None else structure.to_dict()
        return data

    COLUMNS = (
        "run_id, pipeline, fingerprint, status, params, config, tags, started_at, "
        "finished_at, duration, host, plait_version, python_version, origin_run_id, "
        "executor, error, pid, target, trigger, experiment, version, project"
    )

    @classmethod
    def from_row(
        cls,
        row: tuple[Any, ...],
        steps: dict[str, StepRecord] | None = None,
        structure: RecordedPipeline | None = None,
        *,
        load: Callable[[], _Details] | None = None,
    ) -> RunRecord:
        """Build from a row of :attr:`COLUMNS`, with its steps and structure, or with
        ``load``, which reads them when first needed."""
        loaded = (steps or {}, structure)
        details = _Loader(load, None) if load is not None else _Loader(lambda: loaded, loaded)
        return cls(
            row[0],
            row[1],
            row[2] or "",
            row[3],
            _json(row[4], {}),
            _json(row[5], {}),
            _json(row[6], []),
            float(row[7]),
            row[8],
            row[9],
            row[10] or "",
            row[11] or "",
            row[12] or "",
            row[13],
            row[14] or "",
            row[15],
            None if row[16] is None else int(row[16]),
            row[17],
            _json(row[18], None),
            row[19],
            row[20],
            row[21],
            details,
        )
