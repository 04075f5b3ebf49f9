"""Executors: where a run's steps execute. Pass one as ``run(executor=...)``.

``"sequential"``, ``"threads"`` / ``"threads:8"`` and ``"processes"`` / ``"processes:4"``
are shortcuts for ``Sequential()``, ``Threads(8)`` and ``Processes(4)``; ``"dask"`` /
``"dask:tcp://host:8786"``, ``"ray"`` / ``"ray:auto"`` and ``"celery:redis://host:6379/0"``
for ``Dask(...)``, ``Ray(...)`` and ``Celery(...)`` (extras ``plait[dask]``,
``plait[ray]`` and ``plait[celery]``); a ``distributed.Client`` passed as ``executor=`` is
``Dask(client)``. ``Dask``, ``Ray`` and ``Celery`` are loaded on first access, so
importing this module never imports an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.run.executors import Executor, Processes, Sequential, Threads

if TYPE_CHECKING:
    from plait.run.celery_executor import Celery
    from plait.run.dask_executor import Dask
    from plait.run.ray_executor import Ray

__all__ = ["Celery", "Dask", "Executor", "Processes", "Ray", "Sequential", "Threads"]


def __getattr__(name: str) -> Any:
    if name == "Celery":
        from plait.run.celery_executor import Celery

        return Celery
    if name == "Dask":
        from plait.run.dask_executor import Dask

        return Dask
    if name == "Ray":
        from plait.run.ray_executor import Ray

        return Ray
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
