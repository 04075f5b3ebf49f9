"""Executors: where a run's steps execute. Pass one as ``run(executor=...)``.

``"sequential"``, ``"threads"`` / ``"threads:8"`` and ``"processes"`` / ``"processes:4"``
are shortcuts for ``Sequential()``, ``Threads(8)`` and ``Processes(4)``; ``"dask"`` /
``"dask:tcp://host:8786"`` and ``"ray"`` / ``"ray:auto"`` for ``Dask(...)`` and
``Ray(...)`` (extras ``plait[dask]`` and ``plait[ray]``). ``Dask`` and ``Ray`` are loaded
on first access, so importing this module never imports an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.run.executors import Executor, Processes, Sequential, Threads

if TYPE_CHECKING:
    from plait.run.dask_executor import Dask
    from plait.run.ray_executor import Ray

__all__ = ["Dask", "Executor", "Processes", "Ray", "Sequential", "Threads"]


def __getattr__(name: str) -> Any:
    if name == "Dask":
        from plait.run.dask_executor import Dask

        return Dask
    if name == "Ray":
        from plait.run.ray_executor import Ray

        return Ray
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
