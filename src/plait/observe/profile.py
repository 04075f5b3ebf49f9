"""Per-step memory profiling: peak Python memory (tracemalloc) and RSS change (psutil).

``ProfileHook`` adds two metrics to each executed step's ``StepResult.metrics``, so they
reach the run's history with the step's other metrics:

- ``peak_memory_bytes``: the highest Python heap use (as traced by :mod:`tracemalloc`)
  while the step ran, above what was in use when it started: the memory the step needed
  at its peak;
- ``rss_delta_bytes``: how much the process's resident set grew (or shrank) over the step,
  from :mod:`psutil` (memory from native libraries included); left out when psutil is not
  installed (``pip install 'plait[profile]'``).

Hooks run in the scheduler's process, so the figures describe steps run *in that
process*: exact with the sequential executor (one step at a time), and an upper bound
with threads (steps running at the same time share the process's peak). Steps run on the
``processes``, Dask or Ray executors run elsewhere and are not measured. Tracing memory
slows Python allocations down (often 1.5-3x): use it to investigate, not all the time.
"""

from __future__ import annotations

import logging
import threading
import tracemalloc
from typing import Any

__all__ = ["ProfileHook"]

_log = logging.getLogger("plait.observe")
_REMOTE = ("processes", "dask", "ray")


class ProfileHook:
    """Records per-step peak memory and RSS change in ``StepResult.metrics``.

    Args:
        rss: Also measure the resident set size with psutil (when installed).
        only_flagged: Profile only the steps declared with ``@step(profile=True)``.
    """

    def __init__(self, *, rss: bool = True, only_flagged: bool = False) -> None:
        self.only_flagged = only_flagged
        self._process: Any = None
        if rss:
            try:
                import psutil  # type: ignore[import-untyped, unused-ignore]
            except ImportError:
                _log.warning(
                    "ProfileHook: psutil is not installed, so RSS is not measured "
                    "(pip install 'plait[profile]')"
                )
            else:
                self._process = psutil.Process()
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str], tuple[int, int | None]] = {}
        self._owns_tracing: set[str] = set()
        self._skip: set[str] = set()

    def _rss(self) -> int | None:
        return None if self._process is None else int(self._process.memory_info().rss)

    def on_run_start(self, run: Any) -> None:
        """Start tracing memory (unless the steps run in other processes)."""
        if str(run.executor).startswith(_REMOTE):
            _log.info(
                "ProfileHook: steps of run %s run on %s, outside this process: not profiled",
                run.run_id,
                run.executor,
            )
            self._skip.add(run.run_id)
            return
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self._owns_tracing.add(run.run_id)

    def on_step_start(self, step: Any, run: Any) -> None:
        """Note the memory in use as the step starts, and reset the peak."""
        if run.run_id in self._skip or not tracemalloc.is_tracing():
            return
        if self.only_flagged and not getattr(step.options, "profile", False):
            return
        with self._lock:
            if not self._started:  # steps overlapping in threads share one peak
                tracemalloc.reset_peak()
            current, _ = tracemalloc.get_traced_memory()
            self._started[(run.run_id, step.name)] = (current, self._rss())

    def on_step_end(self, step_result: Any, run: Any) -> None:
        """Add ``peak_memory_bytes`` (and ``rss_delta_bytes``) to the step's metrics."""
        with self._lock:
            start = self._started.pop((run.run_id, step_result.name), None)
            if start is None or not tracemalloc.is_tracing():
                return
            _, peak = tracemalloc.get_traced_memory()
        base, rss = start
        step_result.metrics["peak_memory_bytes"] = max(0, peak - base)
        now = self._rss()
        if rss is not None and now is not None:
            step_result.metrics["rss_delta_bytes"] = now - rss

    def on_run_end(self, result: Any) -> None:
        """Stop tracing memory if this hook started it."""
        self._skip.discard(result.run_id)
        if result.run_id in self._owns_tracing:
            self._owns_tracing.discard(result.run_id)
            if not self._owns_tracing:
                tracemalloc.stop()
        with self._lock:
            for key in [k for k in self._started if k[0] == result.run_id]:
                del self._started[key]
