"""The exception tree of plait.

Every exception plait raises on purpose derives from :class:`PlaitError` and also from
the builtin that fits it best, so callers can catch either::

    PlaitError(Exception)
    ├── PipelineValidationError(PlaitError, ValueError)   .problems: list of Problem
    ├── StepDefinitionError(PlaitError, TypeError)         a @step / Step call is malformed
    ├── UsageError(PlaitError, ValueError)                 a bad argument to run() and friends
    ├── OutputArityError(PlaitError, ValueError)           wrong number of outputs returned
    ├── SerializationError(PlaitError, TypeError)          a value cannot be shipped to a worker
    ├── UnhashableValueError(PlaitError, TypeError)        .value_type: no data version possible
    ├── StepTimeoutError(PlaitError, TimeoutError)         an attempt ran past its timeout
    ├── MapFailed(PlaitError, RuntimeError)                too few map elements succeeded
    ├── UpstreamFailed(PlaitError, RuntimeError)           on_upstream="fail" met a failed input
    ├── MutatedInputError(PlaitError, RuntimeError)        .step, .input: a step changed an input
    ├── WorkerError(PlaitError, RuntimeError)              a worker's error that cannot be pickled
    ├── StoreSecretError(PlaitError, PermissionError)      a signed store opened without its secret
    ├── DamagedHistoryError(PlaitError, OSError)           .path: the history database is damaged
    └── RunFailed(PlaitError, RuntimeError)                .result, .step; __cause__ is the error

Warnings (issued with :func:`warnings.warn`, never raised by plait)::

    PlaitWarning(UserWarning)       .step, .name: it runs, but likely not as meant
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.results import RunResult

__all__ = [
    "DamagedHistoryError",
    "MapFailed",
    "MutatedInputError",
    "OutputArityError",
    "PipelineValidationError",
    "PlaitError",
    "PlaitWarning",
    "Problem",
    "RunFailed",
    "SerializationError",
    "StepDefinitionError",
    "StepTimeoutError",
    "StoreSecretError",
    "UnhashableValueError",
    "UpstreamFailed",
    "UsageError",
    "WorkerError",
    "suggest",
]


class PlaitError(Exception):
    """Root of every error plait raises on purpose.

    Subclasses keep their data in attributes; pickling keeps them too, so an error raised
    in a worker process arrives whole.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[PlaitError], args: tuple[object, ...], state: dict[str, object]) -> object:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline, found by validation.

    Attributes:
        kind: A short machine-readable label (``"missing_input"``, ``"cycle"``, ...).
        message: The full sentence shown to the user, naming the step and the fix.
        step: The step concerned, when there is one.
    """

    kind: str
    message: str
    step: str | None = None

    def __str__(self) -> str:
        return self.message


class PipelineValidationError(PlaitError, ValueError):
    """A pipeline cannot run; ``problems`` lists every reason found, not just the first."""

    def __init__(self, problems: Iterable[Problem], pipeline: str = "pipeline") -> None:
        self.problems = list(problems)
        self.pipeline = pipeline
        count = len(self.problems)
        head = f"pipeline {pipeline!r} is invalid ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p.message}" for p in self.problems)]))

    @property
    def cycle(self) -> list[str] | None:
        """The steps of the first cycle found, in order, or None."""
        for problem in self.problems:
            if problem.kind == "cycle" and isinstance(problem, CycleProblem):
                return list(problem.cycle)
        return None


@dataclass(frozen=True, slots=True)
class CycleProblem(Problem):
    """A cycle among steps; ``cycle`` lists them in order, the first repeated at the end."""

    cycle: tuple[str, ...] = ()


class StepDefinitionError(PlaitError, TypeError):
    """A step is declared in a way that cannot work (bad ``inputs=``, bad option...)."""


class UsageError(PlaitError, ValueError):
    """An argument of ``run()`` (or another call) has a value plait cannot use."""


class WorkerError(PlaitError, RuntimeError):
    """An error raised in a worker process that could not travel back as itself
    (it does not survive pickling); ``type_name`` keeps its original type's name."""

    def __init__(self, message: str, *, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(message)


class OutputArityError(PlaitError, ValueError):
    """A step declared several outputs and returned a value that does not match them."""

    def __init__(self, message: str, *, step: str) -> None:
        self.step = step
        super().__init__(message)


class SerializationError(PlaitError, TypeError):
    """A step, input or output could not be pickled to cross a process boundary."""

    def __init__(self, message: str, *, step: str) -> None:
        self.step = step
        super().__init__(message)


class UnhashableValueError(PlaitError, TypeError):
    """A value has no data version: plait has no canonical hash for (a part of) it, no
    hasher is registered for its type, and it cannot be pickled either.

    Attributes:
        value_type: The exact type of the part that could not be hashed.
        cause: Why pickling it failed (also the ``__cause__``), or None.
    """

    def __init__(
        self, message: str, *, value_type: type, cause: BaseException | None = None
    ) -> None:
        self.value_type = value_type
        self.cause = cause
        super().__init__(message)


class DamagedHistoryError(PlaitError, OSError):
    """The history database file is damaged (not a database, or damaged pages).

    Attributes:
        path: The database file.
    """

    def __init__(self, path: str, cause: object) -> None:
        super().__init__(
            f"the history database {path} is damaged ({cause}); no run can be recorded "
            "in it: run `plait doctor --repair` to set it aside and recover its readable "
            "rows (or move the file away)"
        )
        self.path = path


class StoreSecretError(PlaitError, PermissionError):
    """A store that was written with a secret (``PLAIT_SECRET``) was opened without one.

    Its entries are signed; reading them unsigned would trust whatever a writer of the
    store put there, so plait refuses. Set the same ``PLAIT_SECRET`` (or ``Store(secret=)``).
    """


class StepTimeoutError(PlaitError, TimeoutError):
    """An attempt of a step ran longer than its ``timeout``."""

    def __init__(self, message: str, *, step: str, timeout: float) -> None:
        self.step = step
        self.timeout = timeout
        super().__init__(message)


class MapFailed(PlaitError, RuntimeError):
    """A map step's share of successful elements fell below ``min_success_ratio``."""

    def __init__(self, message: str, *, step: str, failed: dict[object, BaseException]) -> None:
        self.step = step
        self.failed = failed
        super().__init__(message)


class UpstreamFailed(PlaitError, RuntimeError):
    """A step with ``on_upstream="fail"`` received a failed or skipped input."""

    def __init__(self, message: str, *, step: str) -> None:
        self.step = step
        super().__init__(message)


class MutatedInputError(PlaitError, RuntimeError):
    """A step changed one of its inputs in place, which other steps and the store share.

    Attributes:
        step: The name of the step.
        input: The parameter whose value it changed.
        changed: False when the change was refused (a read-only array): the value is intact.
    """

    def __init__(self, message: str, *, step: str, input: str, changed: bool = True) -> None:
        self.step = step
        self.input = input
        self.changed = changed
        super().__init__(message)


class RunFailed(PlaitError, RuntimeError):
    """A run with ``on_error="raise"`` had a failing step.

    Attributes:
        result: The :class:`~plait.RunResult` with everything recorded up to the failure.
        step: The name of the first step that failed.
    """

    def __init__(self, result: RunResult, step: str, error: BaseException) -> None:
        self.result = result
        self.step = step
        super().__init__(
            f"step {step!r} failed: {type(error).__name__}: {error} "
            f"(run {result.run_id}; inspect RunFailed.result for everything computed)"
        )


class PlaitWarning(UserWarning):
    """Something plait can run but that probably does not do what was meant, such as a
    cached step reading a global its fingerprint does not cover.

    Attributes:
        step: The step concerned, when there is one.
        name: The name concerned (the global or closure variable), when there is one.
    """

    def __init__(self, message: str, *, step: str | None = None, name: str | None = None) -> None:
        self.step = step
        self.name = name
        super().__init__(message)


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return a ``" (did you mean 'x'?)"`` suffix for the closest candidates, or ``""``.

    >>> suggest("claen", ["clean", "split"])
    " (did you mean 'clean'?)"
    >>> suggest("zzz", ["clean"])
    ''
    """
    import difflib  # here: only an error message needs it, not ``import plait``

    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
