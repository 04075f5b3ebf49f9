"""Observing runs: hooks and the built-in hooks.

- :class:`LoggingHook`: run and step events on the ``plait`` logger;
- :class:`ProgressHook`: a live display on a terminal, plain lines elsewhere;
- :class:`OpenTelemetryHook`: a span per run and per step (needs ``opentelemetry-api``);
- :class:`ProfileHook`: per-step peak memory and RSS change in ``StepResult.metrics``.
"""

from plait.observe.hooks import HookSet, LoggingHook, RunInfo
from plait.observe.otel import OpenTelemetryHook
from plait.observe.profile import ProfileHook
from plait.observe.progress import ProgressHook

__all__ = [
    "HookSet",
    "LoggingHook",
    "OpenTelemetryHook",
    "ProfileHook",
    "ProgressHook",
    "RunInfo",
]
