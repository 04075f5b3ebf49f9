"""Observing runs: hooks and the built-in hooks."""

from plait.observe.hooks import HookSet, LoggingHook, RunInfo

__all__ = ["HookSet", "LoggingHook", "RunInfo"]
