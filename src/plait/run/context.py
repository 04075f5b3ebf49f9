"""The context of a running step: ``current()``."""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitError

__all__ = ["StepContext", "current"]

_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "plait_step", default=None
)


@dataclass(slots=True)
class StepContext:
    """What a step can know about its own execution.

    Attributes:
        run_id: The id of the run.
        step: The step's name.
        attempt: The attempt number, from 1.
        element: The index or key of the map element being computed, or None.
        metrics: Values logged with :meth:`log_metric`.
    """

    run_id: str
    step: str
    attempt: int = 1
    element: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def logger(self) -> logging.Logger:
        """A stdlib logger named ``plait.step.<step>`` (plait never adds handlers)."""
        return logging.getLogger(f"plait.step.{self.step}")

    def log_metric(self, name: str, value: Any) -> None:
        """Record a metric for this step; it appears in ``StepResult.metrics``."""
        self.metrics[name] = value


def current() -> StepContext:
    """The context of the step running in this thread or task.

    Raises:
        PlaitError: When called outside a running step.
    """
    ctx = _CURRENT.get()
    if ctx is None:
        raise PlaitError("current() is only available inside a running step")
    return ctx


def set_context(ctx: StepContext | None) -> contextvars.Token[StepContext | None]:
    """Make ``ctx`` the current step context; returns the token to reset it."""
    return _CURRENT.set(ctx)


def reset_context(token: contextvars.Token[StepContext | None]) -> None:
    """Undo :func:`set_context`."""
    _CURRENT.reset(token)
