"""What the drawings read: small protocols over pipelines, steps and run results.

:class:`plait.Pipeline`, :class:`plait.Step`, :class:`plait.RunResult` and
:class:`plait.StepResult` fit them; so does any stand-in with the same attributes. Keeping
them here, rather than importing the core classes, lets :mod:`plait.results` import
:mod:`plait.viz` lazily without an import cycle. Also here: the outcome colours and the
duration and time formats every view shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "OUTCOME_STYLES",
    "ErrorLike",
    "OptionsLike",
    "OutcomeStyle",
    "PipelineLike",
    "RunLike",
    "StepLike",
    "StepResultLike",
    "format_seconds",
    "format_timestamp",
    "outcome_class",
]


# -- what the renderers read -------------------------------------------------------------
class OptionsLike(Protocol):
    """The step options the renderers show."""

    @property
    def map(self) -> str | None: ...
    @property
    def dynamic(self) -> bool: ...
    @property
    def optional(self) -> bool: ...


class StepLike(Protocol):
    """A step as the renderers see it (:class:`plait.Step` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def data_inputs(self) -> Mapping[str, str]: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...
    @property
    def after(self) -> tuple[str, ...]: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def options(self) -> OptionsLike: ...


class PipelineLike(Protocol):
    """A pipeline as the renderers see it (:class:`plait.Pipeline` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def order(self) -> Sequence[StepLike]: ...
    @property
    def producers(self) -> Mapping[str, str]: ...


class ErrorLike(Protocol):
    """A recorded error (:class:`plait.results.ErrorInfo` fits)."""

    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def traceback(self) -> str: ...


class StepResultLike(Protocol):
    """What happened to one step (:class:`plait.StepResult` fits)."""

    @property
    def status(self) -> str: ...
    @property
    def cached(self) -> bool: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def duration(self) -> float: ...
    @property
    def start_time(self) -> float | None: ...
    @property
    def end_time(self) -> float | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def error(self) -> ErrorLike | None: ...
    @property
    def data_versions(self) -> Mapping[str, str]: ...
    @property
    def metrics(self) -> Mapping[str, Any]: ...
    @property
    def failed_elements(self) -> Mapping[Any, ErrorLike]: ...


class RunLike(Protocol):
    """A finished run (:class:`plait.RunResult` fits).

    The pipeline that ran is read as ``result.graph`` when the object has it (``None`` or
    absent: the steps are drawn without edges).
    """

    @property
    def run_id(self) -> str: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def start_time(self) -> float: ...
    @property
    def steps(self) -> Mapping[str, StepResultLike]: ...


# -- outcome colours, shared by Mermaid and HTML ---------------------------------------------
@dataclass(frozen=True, slots=True)
class OutcomeStyle:
    """How one outcome class is drawn: fill, stroke and text colours, dashed border."""

    fill: str
    stroke: str
    text: str = "#1f2328"
    dashed: bool = False


OUTCOME_STYLES: Mapping[str, OutcomeStyle] = {
    "ok": OutcomeStyle("#d3f2dc", "#1a7f37"),
    "cached": OutcomeStyle("#d8e9fb", "#0969da"),
    "fallback": OutcomeStyle("#ffe3c4", "#d26d00"),
    "failed": OutcomeStyle("#ffd8d6", "#cf222e"),
    "skipped": OutcomeStyle("#e6e8eb", "#6e7781", text="#57606a"),
    "not_run": OutcomeStyle("#ffffff", "#8c959f", text="#57606a", dashed=True),
}


def outcome_class(record: StepResultLike | None) -> str:
    """The outcome class of a step result: a key of :data:`OUTCOME_STYLES`.

    A step absent from the run's records (pruned away) counts as ``"not_run"``.
    """
    if record is None:
        return "not_run"
    if record.status == "ok":
        if record.fallback:
            return "fallback"
        return "cached" if record.cached else "ok"
    return record.status if record.status in OUTCOME_STYLES else "not_run"


# -- formatting helpers ----------------------------------------------------------------------
def format_seconds(seconds: float) -> str:
    """A short human duration.

    >>> format_seconds(0.0123)
    '12.3 ms'
    >>> format_seconds(119.7)
    '2 min 0 s'
    >>> format_seconds(7322)
    '2 h 2 min'
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 59.995:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


def format_timestamp(epoch: float) -> str:
    """An epoch time as ``YYYY-MM-DD HH:MM:SS UTC``.

    >>> format_timestamp(0)
    '1970-01-01 00:00:00 UTC'
    """
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
