"""OpenTelemetry tracing: one span per run, a child span per step.

``OpenTelemetryHook(tracer_provider=None)`` uses the given tracer provider, or the global
one (``opentelemetry.trace.set_tracer_provider``): with no SDK configured, spans cost next
to nothing and go nowhere. Install ``opentelemetry-api`` (and ``opentelemetry-sdk`` plus
an exporter to send spans somewhere): ``pip install 'plait[otel]'``.

Spans and their attributes:

- ``plait.run <pipeline>``: ``plait.run_id``, ``plait.pipeline``, ``plait.executor``,
  ``plait.params.<name>`` (as text), then at the end ``plait.status``,
  ``plait.duration_s`` and ``plait.steps.<status>`` counts; status ERROR if the run
  failed.
- ``plait.step <step>`` (child of the run span): ``plait.step``, ``plait.status``
  (``ok`` / ``failed`` / ``skipped``), ``plait.outcome`` (``Ok`` / ``Err`` / ``Skipped``),
  ``plait.cached``, ``plait.attempts``, ``plait.duration_s``, ``plait.reason``,
  ``plait.fallback``, ``plait.cache_key`` and ``plait.data_version.<output>`` when known,
  and numeric metrics as ``plait.metric.<name>``. A failed step records its exception
  (an ``exception`` event with type, message and stack trace) and has status ERROR.

Hooks run on the scheduler's thread, so a step span is not the *current* span inside the
step's own code: spans a step opens itself are not nested under it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["OpenTelemetryHook"]


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class OpenTelemetryHook:
    """Traces runs and steps with OpenTelemetry.

    Args:
        tracer_provider: The provider to get the tracer from (default: the global one).

    Raises:
        ImportError: When ``opentelemetry-api`` is not installed (with the install hint).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ImportError(
                "OpenTelemetryHook needs opentelemetry-api: pip install 'plait[otel]' "
                "(or pip install opentelemetry-sdk)"
            ) from exc
        from plait import __version__

        self._trace = trace
        self.tracer = trace.get_tracer("plait", __version__, tracer_provider=tracer_provider)
        self._lock = threading.Lock()
        self._runs: dict[str, Any] = {}
        self._steps: dict[tuple[str, str], Any] = {}

    def on_run_start(self, run: Any) -> None:
        """Open the run's span."""
        attributes: dict[str, Any] = {
            "plait.run_id": run.run_id,
            "plait.pipeline": run.pipeline,
            "plait.executor": run.executor,
        }
        for name, value in dict(run.params).items():
            attributes[f"plait.params.{name}"] = repr(value)[:200]
        if run.tags:
            attributes["plait.tags"] = list(run.tags)
        span = self.tracer.start_span(f"plait.run {run.pipeline}", attributes=attributes)
        with self._lock:
            self._runs[run.run_id] = span

    def _child(self, run_id: str, name: str, start_time: int | None) -> Any:
        parent = self._runs.get(run_id)
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            f"plait.step {name}",
            context=context,
            start_time=start_time,
            attributes={"plait.step": name, "plait.run_id": run_id},
        )

    def on_step_start(self, step: Any, run: Any) -> None:
        """Open a step's span as it starts executing."""
        with self._lock:
            self._steps[(run.run_id, step.name)] = self._child(run.run_id, step.name, None)

    def on_step_end(self, step_result: Any, run: Any) -> None:
        """Close the step's span (cache hits and skips get a span of their own here)."""
        with self._lock:
            span = self._steps.pop((run.run_id, step_result.name), None)
            if span is None:  # never executed: a cache hit, a skip
                start = _ns(step_result.start_time) or time.time_ns()
                span = self._child(run.run_id, step_result.name, start)
        self._describe(span, step_result)
        span.end(end_time=_ns(step_result.end_time))

    def _describe(self, span: Any, record: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("plait.status", record.status)
        span.set_attribute("plait.outcome", type(record.outcome).__name__)
        span.set_attribute("plait.cached", bool(record.cached))
        span.set_attribute("plait.attempts", int(record.attempts))
        span.set_attribute("plait.duration_s", float(record.duration))
        span.set_attribute("plait.fallback", bool(record.fallback))
        if record.reason:
            span.set_attribute("plait.reason", record.reason)
        if record.cache_key:
            span.set_attribute("plait.cache_key", record.cache_key)
        for output, version in record.data_versions.items():
            span.set_attribute(f"plait.data_version.{output}", version)
        for name, value in record.metrics.items():
            if isinstance(value, bool | int | float | str):
                span.set_attribute(f"plait.metric.{name}", value)
        if record.status == "failed":
            error = getattr(record.outcome, "error", None)
            if isinstance(error, BaseException):
                span.record_exception(error)
            elif record.error is not None:
                span.add_event(
                    "exception",
                    {
                        "exception.type": record.error.type,
                        "exception.message": record.error.message,
                        "exception.stacktrace": record.error.traceback,
                    },
                )
            span.set_status(Status(StatusCode.ERROR, str(record.error or "failed")))

    def on_run_end(self, result: Any) -> None:
        """Close the run's span with its status and step counts."""
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            span = self._runs.pop(result.run_id, None)
            leftover = [k for k in self._steps if k[0] == result.run_id]
            open_steps = [self._steps.pop(k) for k in leftover]
        for step_span in open_steps:  # a cancelled run: steps that never reported back
            step_span.set_status(Status(StatusCode.ERROR, f"run {result.status}"))
            step_span.end()
        if span is None:
            return
        counts: dict[str, int] = {}
        for record in result.steps.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        span.set_attribute("plait.status", result.status)
        span.set_attribute("plait.duration_s", float(result.duration))
        for status, count in counts.items():
            span.set_attribute(f"plait.steps.{status}", count)
        if result.status != "succeeded":
            span.set_status(Status(StatusCode.ERROR, f"run {result.status}"))
        span.end()
