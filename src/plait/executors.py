"""Executors: where a run's steps execute. Pass one as ``run(executor=...)``.

``"sequential"``, ``"threads"`` / ``"threads:8"`` and ``"processes"`` / ``"processes:4"``
are shortcuts for ``Sequential()``, ``Threads(8)`` and ``Processes(4)``.
"""

from plait.run.executors import Executor, Processes, Sequential, Threads

__all__ = ["Executor", "Processes", "Sequential", "Threads"]
