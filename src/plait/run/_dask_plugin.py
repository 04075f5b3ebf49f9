"""The Dask worker plugin that installs a :class:`~plait.run.worker_setup.Bundle`.

A module of its own because it subclasses ``distributed.WorkerPlugin`` at import time:
:mod:`plait.run.dask_executor` imports it only after checking that ``distributed`` is
installed, and workers import it by name when the scheduler hands them the plugin.
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from plait.run.worker_setup import Bundle, install

__all__ = ["NAME", "SetupPlugin"]

NAME = "plait-worker-setup"  # one plugin per cluster: registering again replaces it


class SetupPlugin(WorkerPlugin):
    """Installs the bundle on every worker, including those that join later."""

    name = NAME

    def __init__(self, bundle: Bundle | None) -> None:
        self.bundle = bundle

    def setup(self, worker: Any) -> None:
        """Called by each worker before it runs tasks (at once on those already up)."""
        install(self.bundle)
