"""Outcomes of steps and runs: ``Ok`` / ``Err`` / ``Skipped``, ``StepResult``, ``RunResult``.

Every step ends in exactly one outcome. A :class:`StepResult` records how it got there
(timing, attempts, cache use, error) and a :class:`RunResult` gathers them with the
values the caller asked for.
"""

from __future__ import annotations

import difflib
import traceback as traceback_module
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "RELEASED",
    "Err",
    "ErrorInfo",
    "Ok",
    "Outcome",
    "RunResult",
    "Skipped",
    "StepResult",
]

T = TypeVar("T")

StepStatus = Literal["ok", "failed", "skipped", "not_run"]
RunStatus = Literal["succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """A step succeeded with ``value``."""

    value: T

    ok = True

    def __repr__(self) -> str:
        return f"Ok({self.value!r})"


@dataclass(frozen=True, slots=True)
class Err:
    """A step failed with ``error``."""

    error: BaseException

    ok = False

    def __repr__(self) -> str:
        return f"Err({type(self.error).__name__}: {self.error})"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A step did not run, for ``reason``."""

    reason: str

    ok = False

    def __repr__(self) -> str:
        return f"Skipped({self.reason!r})"


Outcome = Ok[Any] | Err | Skipped


class _Released:
    """The value of an ``Ok`` whose data was dropped because no one asked to keep it."""

    def __repr__(self) -> str:
        return "<released: not requested with outputs=[...]>"

    def __reduce__(self) -> str:
        return "RELEASED"


RELEASED: Any = _Released()


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A recorded error: its type name, message and formatted traceback."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str | None = None) -> ErrorInfo:
        """Describe ``exc`` with its traceback (``traceback``: one formatted elsewhere)."""
        if traceback is None:
            traceback = "".join(
                traceback_module.format_exception(type(exc), exc, exc.__traceback__)
            )
        return cls(getattr(exc, "type_name", type(exc).__name__), str(exc), traceback)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def _timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True, eq=False)
class StepResult:
    """What happened to one step in one run.

    Attributes:
        name: The step's name.
        status: ``"ok"``, ``"failed"``, ``"skipped"`` or ``"not_run"``.
        outcome: ``Ok(value)``, ``Err(error)`` or ``Skipped(reason)``. A value that was not
            requested is released once no step needs it, and then reads ``RELEASED``. For a
            multi-output step
            the Ok value is a dict of output name to value; for a sink it is None.
        cached: True when the value came from the store instead of running the step.
        reason: Why the step ran, hit the cache, was skipped or was not run.
        fallback: True when the value came from ``on_failure``.
        duration: Seconds spent in the step (all attempts), 0 for a cache hit.
        attempts: How many times the step's function was called; for a map step, 1
            when it ran (its elements are retried one by one, never the step as a whole)
            and 0 when every element came from the cache.
        error: The recorded error (type, message, traceback) of a failed step.
        cache_key: The key the step's result is stored under, when a store is used.
        data_versions: Output name to content hash of the value, when known.
        metrics: Values logged with ``current().log_metric``; it also carries the step's
            log lines (see :attr:`logs`).
        failed_elements: For map steps, index or key to the element's error.
        element_attempts: For map steps, index or key to how many times the function was
            called on that element (0 for an element loaded from the cache).
    """

    name: str
    status: StepStatus
    outcome: Outcome
    cached: bool = False
    reason: str = ""
    fallback: bool = False
    duration: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    attempts: int = 0
    error: ErrorInfo | None = None
    cache_key: str | None = None
    data_versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    failed_elements: dict[Any, ErrorInfo] = field(default_factory=dict)
    element_attempts: dict[Any, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the step succeeded (possibly from cache or fallback)."""
        return self.status == "ok"

    @property
    def logs(self) -> list[str]:
        """The step's log lines: INFO and above from ``current().logger`` and output
        printed inside ``current().capture_output()``, oldest first (a map step's lines
        prefixed by their element's index or key). Empty for a cache hit or a step that
        did not run. Only the newest lines are kept (see ``plait.run.context``)."""
        return list(_logs_of(self.metrics)[0])

    @property
    def started_at(self) -> datetime | None:
        """When the step started (UTC), or None if it never did."""
        return _timestamp(self.start_time)

    @property
    def finished_at(self) -> datetime | None:
        """When the step finished (UTC), or None if it never did."""
        return _timestamp(self.end_time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (values themselves are left out)."""
        return {
            "name": self.name,
            "status": self.status,
            "cached": self.cached,
            "reason": self.reason,
            "fallback": self.fallback,
            "duration": self.duration,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "attempts": self.attempts,
            "error": None
            if self.error is None
            else {
                "type": self.error.type,
                "message": self.error.message,
                "traceback": self.error.traceback,
            },
            "cache_key": self.cache_key,
            "data_versions": dict(self.data_versions),
            "metrics": dict(self.metrics),
            "logs": self.logs,
            "logs_dropped": _logs_of(self.metrics)[1],
            "failed_elements": {str(k): str(v) for k, v in self.failed_elements.items()},
            "element_attempts": {str(k): v for k, v in self.element_attempts.items()},
        }

    def __repr__(self) -> str:
        extra = " cached" if self.cached else ""
        return f"<StepResult {self.name!r} {self.status}{extra} {self.duration * 1000:.2f} ms>"


def _logs_of(metrics: Mapping[str, Any]) -> tuple[Iterable[str], int]:
    """The lines and dropped-line count the step's metrics carry (``Metrics.logs``).

    Read by attribute, not by type: the logs' class belongs to the run layer above.
    """
    logs = getattr(metrics, "logs", None)
    lines, dropped = getattr(logs, "lines", ()), getattr(logs, "dropped", 0)
    return lines, dropped if isinstance(dropped, int) else 0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class RunResult(Mapping[str, Any]):
    """The result of one run: its status, the requested values and every step's record.

    ``result["name"]`` returns a value; a missing one raises a ``KeyError`` saying why
    (the step failed, was skipped, was not requested, or no such name exists).

    ``steps`` may be given as a function that makes the records: they are made the first
    time :attr:`steps` is read (a run of many steps records them compactly while it goes
    and pays for the objects only if someone looks).
    """

    def __init__(
        self,
        *,
        run_id: str,
        pipeline: str,
        status: RunStatus,
        outputs: dict[str, Any],
        steps: dict[str, StepResult] | Callable[[], dict[str, StepResult]],
        producers: Mapping[str, str],
        requested: frozenset[str] | None,
        start_time: float,
        duration: float,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.status: RunStatus = status
        self.outputs = outputs
        self._steps: dict[str, StepResult] | None = None
        self._make_steps: Callable[[], dict[str, StepResult]] | None = None
        if callable(steps):
            self._make_steps = steps
        else:
            self._steps = steps
        self.duration = duration
        self.start_time = start_time
        self.params = dict(params or {})
        self._producers = producers
        self.graph: Any = None  # the steps that ran (for drawing), set by the runner
        self._requested = requested

    @property
    def steps(self) -> dict[str, StepResult]:
        """Every step's :class:`StepResult`, in plan order."""
        steps = self._steps
        if steps is None:
            assert self._make_steps is not None
            steps = self._steps = self._make_steps()
            self._make_steps = None
        return steps

    @steps.setter
    def steps(self, steps: dict[str, StepResult]) -> None:
        self._steps, self._make_steps = steps, None

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"

    @property
    def started_at(self) -> datetime:
        """When the run started (UTC)."""
        return datetime.fromtimestamp(self.start_time, UTC)

    def __getitem__(self, name: str) -> Any:
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(self._why_missing(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def _why_missing(self, name: str) -> str:
        producer = self._producers.get(name)
        if producer is None:
            known = list(dict.fromkeys([*self._producers, *self.outputs]))
            hint = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            fix = f" (did you mean {' or '.join(map(repr, hint))}?)" if hint else ""
            return f"no value named {name!r} in run {self.run_id}{fix}"
        record = self.steps.get(producer)
        if record is None and self._requested is not None and name not in self._requested:
            wanted = ", ".join(repr(n) for n in [*sorted(self._requested), name])
            return (
                f"{name!r} was not requested in run {self.run_id}: outputs=[...] left out step "
                f"{producer!r}, which makes it, so it did not run; request it with "
                f"outputs=[{wanted}] (or outputs=None for every value)"
            )
        if self._requested is not None and name not in self._requested:
            return (
                f"{name!r} was not requested in run {self.run_id}: it was computed by step "
                f"{producer!r} and released; add it to outputs=[...] to keep it"
            )
        if record is None or record.status == "not_run":
            return f"{name!r} is missing: step {producer!r} never ran (the run stopped first)"
        if record.status == "failed":
            return f"{name!r} is missing: step {producer!r} failed with {record.error}"
        if record.status == "skipped":
            return f"{name!r} is missing: step {producer!r} was skipped ({record.reason})"
        return f"{name!r} is missing from run {self.run_id}"

    def raise_for_status(self) -> RunResult:
        """Raise :class:`~plait.errors.RunFailed` if the run failed; return self otherwise."""
        from plait.errors import RunFailed

        if self.status == "succeeded":
            return self
        for record in self.steps.values():
            if record.status == "failed" and isinstance(record.outcome, Err):
                raise RunFailed(self, record.name, record.outcome.error) from record.outcome.error
        raise RunFailed(self, "", RuntimeError(f"run {self.status}"))

    def summary(self) -> str:
        """A readable table of every step: status, cache use, attempts, duration, reason.

        A map step's attempts are its elements' calls, marked ``el.`` (``"6 el."``).
        """
        rows = [("step", "status", "cached", "attempts", "duration", "reason / error")]
        for rec in self.steps.values():
            detail = str(rec.error) if rec.error is not None else rec.reason
            rows.append(
                (
                    rec.name,
                    rec.status + (" (fallback)" if rec.fallback else ""),
                    "yes" if rec.cached else "",
                    _attempts_label(rec),
                    _format_seconds(rec.duration),
                    detail.splitlines()[0] if detail else "",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            f"run {self.run_id} of {self.pipeline!r}: {self.status} in "
            f"{_format_seconds(self.duration)}"
        ]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description of the run (values are left out)."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "duration": self.duration,
            "params": {k: repr(v) for k, v in self.params.items()},
            "outputs": sorted(self.outputs),
            "steps": {name: rec.to_dict() for name, rec in self.steps.items()},
        }

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the run, each step coloured by its outcome."""
        from plait.viz import run_to_mermaid

        return run_to_mermaid(self)

    def to_html(self) -> str:
        """One self-contained HTML page: graph, timeline and per-step details."""
        from plait.viz import run_to_html

        return run_to_html(self)

    def _repr_html_(self) -> str:
        from plait.viz import run_to_html

        return run_to_html(self, fragment=True)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for rec in self.steps.values():
            counts[rec.status] = counts.get(rec.status, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"<RunResult {self.run_id} {self.status}: {detail}>"


def _format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _attempts_label(record: StepResult) -> str:
    """The attempts cell of a summary: a map step counts its elements' calls."""
    if record.element_attempts:
        return f"{sum(record.element_attempts.values())} el."
    return str(record.attempts)
