"""Hooks: objects told about run and step events.

A hook is any object with some of ``on_run_start(run)``, ``on_step_start(step, run)``,
``on_step_end(step_result, run)`` and ``on_run_end(result)``. Arguments are passed by
keyword, and only those a hook's method accepts (or all, with ``**kwargs``), so a hook
written today keeps working when later versions pass more. A hook that raises is logged
on the ``plait.hooks`` logger and never breaks the run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HookSet", "LoggingHook", "RunInfo"]

_log = logging.getLogger("plait.hooks")
_EVENTS = ("on_run_start", "on_step_start", "on_step_end", "on_run_end")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run a hook is told about."""

    run_id: str
    pipeline: str
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    executor: str = "sequential"


def _accepted(method: Callable[..., Any]) -> frozenset[str] | None:
    """Names a method takes by keyword, or None when it takes ``**kwargs``."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)


class HookSet:
    """The hooks of one run, dispatched safely by keyword."""

    def __init__(self, hooks: Iterable[Any]) -> None:
        self._calls: dict[str, list[tuple[Callable[..., Any], frozenset[str] | None]]] = {
            event: [] for event in _EVENTS
        }
        for hook in hooks:
            for event in _EVENTS:
                method = getattr(hook, event, None)
                if callable(method):
                    self._calls[event].append((method, _accepted(method)))

    def wants(self, event: str) -> bool:
        """True when some hook listens to ``event``."""
        return bool(self._calls[event])

    def emit(self, event: str, **kwargs: Any) -> None:
        """Call every hook's ``event`` method with the keywords it accepts."""
        for method, accepted in self._calls[event]:
            given = (
                kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}
            )
            try:
                method(**given)
            except Exception:
                _log.exception("hook %r failed in %s; the run goes on", method, event)


class LoggingHook:
    """Logs run and step events on the ``plait`` logger (plait never adds handlers)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("plait")
        self.level = level

    def on_run_start(self, run: RunInfo) -> None:
        """Log the start of a run."""
        self.logger.log(self.level, "run %s of %r started", run.run_id, run.pipeline)

    def on_step_start(self, step: Any, run: RunInfo) -> None:
        """Log the start of a step."""
        self.logger.log(self.level, "step %r started", step.name)

    def on_step_end(self, step_result: Any, run: RunInfo) -> None:
        """Log a step's outcome."""
        self.logger.log(
            self.level,
            "step %r %s in %.3f s%s",
            step_result.name,
            step_result.status,
            step_result.duration,
            f": {step_result.error}" if step_result.error else "",
        )

    def on_run_end(self, result: Any) -> None:
        """Log the end of a run."""
        self.logger.log(
            self.level, "run %s %s in %.3f s", result.run_id, result.status, result.duration
        )
