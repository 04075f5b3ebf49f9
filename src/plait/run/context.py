"""The context of a running step: ``current()``, and what the step logs.

Logs. A step's log lines are kept with its record: everything at INFO and above logged
through ``current().logger``, and what the step prints inside
``with current().capture_output():``. They are bounded (:class:`StepLogs`: the last
:data:`MAX_LOG_LINES` lines and at most :data:`MAX_LOG_BYTES`, with a count of the lines
left out). They travel with the step's metrics (:class:`Metrics` is a ``dict`` that also
holds the step's :class:`StepLogs`), so they come back from worker threads and processes
along the same path as the metrics, and the history reads them from there.

A step's :class:`StepContext` is made only when the step asks for it: while a step runs,
the context variable holds what makes it (the task, or the inline driver's cursor: a
:class:`LazyContext`), so a step that never calls :func:`current` costs no context object
and no metrics dict; its :class:`StepLogs` are made when it first logs.

Printed output is captured by one process-wide redirection of ``sys.stdout`` and
``sys.stderr`` that looks the current step up in a context variable, so lines printed by
steps running at the same time in threads or async tasks go to the right step, and output
printed outside any capturing step passes through untouched.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from plait.errors import PlaitError

__all__ = [
    "MAX_LOG_BYTES",
    "MAX_LOG_LINES",
    "Metrics",
    "StepContext",
    "StepLogs",
    "current",
    "logs_of",
]

MAX_LOG_LINES = 1000
MAX_LOG_BYTES = 64 * 1024
_MAX_LINE = 4096  # characters; a longer line is cut


class LazyContext(Protocol):
    """What the context variable holds while a step runs, when not a :class:`StepContext`
    itself: the task (or the inline driver's cursor), which makes the step's context the
    first time :func:`current` asks for it. Most steps never ask, and pay nothing."""

    made: StepContext | None  # the context made so far, or None

    def context(self) -> StepContext:
        """The step's context, made now if need be (then kept in ``made``)."""
        ...


_CURRENT: contextvars.ContextVar[StepContext | LazyContext | None] = contextvars.ContextVar(
    "plait_step", default=None
)


class StepLogs:
    """A step's log lines, bounded: the newest are kept, ``dropped`` counts the others.

    >>> logs = StepLogs(max_lines=2)
    >>> for word in ("a", "b", "c"):
    ...     logs.add(word)
    >>> list(logs.lines), logs.dropped
    (['b', 'c'], 1)
    """

    __slots__ = ("_lock", "_size", "dropped", "lines", "max_bytes", "max_lines")

    def __init__(self, max_lines: int = MAX_LOG_LINES, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.lines: deque[str] = deque()
        self.dropped = 0
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._size = 0
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        """Keep the lines of ``text``, dropping the oldest past the bounds."""
        with self._lock:
            for whole in text.splitlines() or [""]:
                line = whole if len(whole) <= _MAX_LINE else whole[: _MAX_LINE - 1] + "…"
                self.lines.append(line)
                self._size += len(line.encode()) + 1
                while self.lines and (
                    len(self.lines) > self.max_lines or self._size > self.max_bytes
                ):
                    self._size -= len(self.lines.popleft().encode()) + 1
                    self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.lines or self.dropped)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_logs, (list(self.lines), self.dropped, self.max_lines, self.max_bytes))


def _rebuild_logs(lines: list[str], dropped: int, max_lines: int, max_bytes: int) -> StepLogs:
    logs = StepLogs(max_lines, max_bytes)
    logs.lines.extend(lines)
    logs.dropped = dropped
    logs._size = sum(len(line.encode()) + 1 for line in lines)
    return logs


class Metrics(dict[str, Any]):
    """A step's metrics (a plain ``dict`` to every reader) that also carries its logs.

    The :class:`StepLogs` (a lock and a deque: most of a step's memory) is made the first
    time :attr:`logs` is read, which is when the step logs or captures output.
    """

    __slots__ = ("_logs",)

    def __init__(self) -> None:
        super().__init__()
        self._logs: StepLogs | None = None

    @property
    def logs(self) -> StepLogs:
        """The step's :class:`StepLogs` (made now if need be)."""
        logs = self._logs
        if logs is None:
            logs = self._logs = StepLogs()
        return logs

    @logs.setter
    def logs(self, logs: StepLogs) -> None:
        self._logs = logs

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_metrics, (dict(self), self._logs))


def _rebuild_metrics(values: dict[str, Any], logs: StepLogs | None) -> Metrics:
    metrics = Metrics()
    metrics.update(values)
    metrics._logs = logs
    return metrics


def logs_of(metrics: Any) -> StepLogs | None:
    """The logs carried by a step's metrics, if any were kept (none are made here)."""
    logs = metrics._logs if isinstance(metrics, Metrics) else getattr(metrics, "logs", None)
    return logs if isinstance(logs, StepLogs) and logs else None


_FORMAT = logging.Formatter("%(levelname)s %(message)s")


class _StepLogger(logging.Logger):
    """``plait.step.<step>``: keeps INFO and above in the step's logs, and hands every
    record on to ``logging.getLogger("plait.step.<step>")`` as usual (plait adds no
    handler and changes no level there)."""

    def __init__(self, name: str, logs: StepLogs) -> None:
        super().__init__(name)
        self.logs = logs
        self.target = logging.getLogger(name)

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.INFO or self.target.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:
        return self.target.getEffectiveLevel()

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.logs.add(_FORMAT.format(record))
        if self.target.isEnabledFor(record.levelno):
            self.target.handle(record)


@dataclass(slots=True)
class StepContext:
    """What a step can know about its own execution.

    Attributes:
        run_id: The id of the run.
        step: The step's name.
        attempt: The attempt number, from 1.
        element: The index or key of the map element being computed, or None.
        metrics: Values logged with :meth:`log_metric` (and the step's logs).
        capture: True inside :meth:`capture_output`.
    """

    run_id: str
    step: str
    attempt: int = 1
    element: Any = None
    metrics: Metrics = field(default_factory=Metrics)
    capture: bool = False
    _logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """A stdlib logger named ``plait.step.<step>``.

        Records at INFO and above are kept with the step's record in the history (``plait
        runs show RUN --logs``), whatever the logging configuration; every record also
        goes on to ``logging.getLogger("plait.step.<step>")`` and its handlers as usual
        (plait never adds handlers).
        """
        if self._logger is None:
            self._logger = _StepLogger(f"plait.step.{self.step}", self.metrics.logs)
        return self._logger

    def log_metric(self, name: str, value: Any) -> None:
        """Record a metric for this step; it appears in ``StepResult.metrics``."""
        self.metrics[name] = value

    def capture_output(self) -> AbstractContextManager[None]:
        """Keep what the step prints (``sys.stdout`` and ``sys.stderr``) in its logs while
        the ``with`` block runs, instead of printing it::

            with current().capture_output():
                model.fit(data)  # its progress output goes to the step's record

        Steps printing at the same time in threads or async tasks keep their own lines
        (the redirection looks the current step up in a context variable); threads the
        step starts itself print as usual. Output that goes to the file descriptors
        directly (C extensions, subprocesses) is not captured.
        """
        return _capture(self)


def current() -> StepContext:
    """The context of the step running in this thread or task.

    Raises:
        PlaitError: When called outside a running step.
    """
    held = _CURRENT.get()
    if held is None:
        raise PlaitError("current() is only available inside a running step")
    if isinstance(held, StepContext):
        return held
    return held.context()


def _made() -> StepContext | None:
    """The current step's context if one was made (nothing is made here)."""
    held = _CURRENT.get()
    if held is None or isinstance(held, StepContext):
        return held
    return held.made


Token = contextvars.Token[StepContext | LazyContext | None]


def set_context(ctx: StepContext | LazyContext | None) -> Token:
    """Make ``ctx`` the current step context (or what makes it); returns the token to
    reset it."""
    return _CURRENT.set(ctx)


def reset_context(token: Token) -> None:
    """Undo :func:`set_context`."""
    _CURRENT.reset(token)


# -- captured output -------------------------------------------------------------------------
class _Redirect:
    """A stand-in for ``sys.stdout``/``sys.stderr``: text written while a capturing step
    is current goes to its logs (whole lines, prefixed ``[stdout]``/``[stderr]``), all
    other text to the stream it replaced."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self._partial: dict[int, str] = {}  # id(StepLogs) -> text since the last newline

    def write(self, text: str) -> int:
        ctx = _made()
        if ctx is None or not ctx.capture:
            return self.stream.write(text)
        logs = ctx.metrics.logs
        pending = self._partial.pop(id(logs), "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            logs.add(f"[{self.label}] {line}")
        if rest:
            self._partial[id(logs)] = rest
        return len(text)

    def flush_step(self, logs: StepLogs) -> None:
        rest = self._partial.pop(id(logs), "")
        if rest:
            logs.add(f"[{self.label}] {rest}")

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_INSTALL_LOCK = threading.Lock()
_ACTIVE = 0


@contextmanager
def _capture(ctx: StepContext) -> Iterator[None]:
    """Keep what the step of ``ctx`` prints in its logs while the block runs.

    The redirection of ``sys.stdout``/``sys.stderr`` is installed by the first capturing
    step and removed by the last; it dispatches on the current step (a context variable),
    so concurrent steps in threads or tasks each keep their own lines.
    """
    global _ACTIVE
    with _INSTALL_LOCK:
        if _ACTIVE == 0:
            sys.stdout = _Redirect("stdout", sys.stdout)
            sys.stderr = _Redirect("stderr", sys.stderr)
        _ACTIVE += 1
    was, ctx.capture = ctx.capture, True
    try:
        yield
    finally:
        ctx.capture = was
        with _INSTALL_LOCK:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _Redirect):
                    stream.flush_step(ctx.metrics.logs)
            _ACTIVE -= 1
            if _ACTIVE == 0:
                if isinstance(sys.stdout, _Redirect):
                    sys.stdout = sys.stdout.stream
                if isinstance(sys.stderr, _Redirect):
                    sys.stderr = sys.stderr.stream
