"""Observing runs: hooks and the built-in hooks.

- :class:`LoggingHook`: run and step events on the ``plait`` logger;
- :class:`ProgressHook`: a live display on a terminal, plain lines elsewhere;
- :class:`OpenTelemetryHook`: a span per run and per step (needs ``opentelemetry-api``);
- :class:`ProfileHook`: per-step peak memory and RSS change in ``StepResult.metrics``;
- emitters (loaded on first use): :class:`JsonLines`, :class:`WebhookEmitter`,
  :class:`RedisEmitter` publish run and step events from a background thread.
"""

from typing import TYPE_CHECKING, Any

from plait.observe.hooks import HookSet, LoggingHook, RunInfo
from plait.observe.otel import OpenTelemetryHook
from plait.observe.profile import ProfileHook
from plait.observe.progress import ProgressHook

if TYPE_CHECKING:
    from plait.observe.emitters import JsonLines, RedisEmitter, WebhookEmitter

__all__ = [
    "HookSet",
    "JsonLines",
    "LoggingHook",
    "OpenTelemetryHook",
    "ProfileHook",
    "ProgressHook",
    "RedisEmitter",
    "RunInfo",
    "WebhookEmitter",
]

_EMITTERS = ("JsonLines", "RedisEmitter", "WebhookEmitter")


def __getattr__(name: str) -> Any:
    if name in _EMITTERS:
        from plait.observe import emitters

        return getattr(emitters, name)
    raise AttributeError(f"module 'plait.observe' has no attribute {name!r}")
