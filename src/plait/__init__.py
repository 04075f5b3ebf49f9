"""plait: plain Python functions wired into fast, cached, recorded pipelines.

>>> from plait import Pipeline, step
>>> @step
... def double(x):
...     return 2 * x
>>> Pipeline([double]).run(params={"x": 21})["double"]
42
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.pipeline import Pipeline, param
from plait.results import Err, Ok, RunResult, Skipped, StepResult
from plait.run.context import current
from plait.steps import Step, step
from plait.store.expiry import expire

if TYPE_CHECKING:
    from plait.store.memo import cached
    from plait.store.store import Store

__all__ = [
    "Err",
    "Ok",
    "Pipeline",
    "RunResult",
    "Skipped",
    "Step",
    "StepResult",
    "Store",
    "cached",
    "current",
    "expire",
    "param",
    "step",
]
__version__ = "0.1.0"

_LAZY = {"Store": "plait.store.store", "cached": "plait.store.memo"}


def __getattr__(name: str) -> Any:
    """Import the store's modules on first use, keeping ``import plait`` light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
