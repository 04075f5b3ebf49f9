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
from plait.steps import Step, step

if TYPE_CHECKING:
    from plait.assets import Asset, Dataset, Metrics, Model
    from plait.registry import Registry
    from plait.results import Err, Ok, RunResult, Skipped, StepResult
    from plait.run.context import current
    from plait.store.expiry import expire
    from plait.store.memo import cached
    from plait.store.store import Store
    from plait.yaml_pipeline import load_pipeline

__all__ = [
    "Asset",
    "Dataset",
    "Err",
    "Metrics",
    "Model",
    "Ok",
    "Pipeline",
    "Registry",
    "RunResult",
    "Skipped",
    "Step",
    "StepResult",
    "Store",
    "cached",
    "current",
    "expire",
    "load_pipeline",
    "param",
    "step",
]
__version__ = "0.1.0"

# Imported on first use, keeping ``import plait`` light: building a pipeline needs only
# steps and pipelines; the run layer (results, context) loads with the first run, the
# store (expiry, Store, cached) with the first cached run.
_LAZY = {
    "Asset": "plait.assets",
    "Dataset": "plait.assets",
    "Metrics": "plait.assets",
    "Model": "plait.assets",
    "Err": "plait.results",
    "Ok": "plait.results",
    "Registry": "plait.registry",
    "RunResult": "plait.results",
    "Skipped": "plait.results",
    "Store": "plait.store.store",
    "StepResult": "plait.results",
    "cached": "plait.store.memo",
    "current": "plait.run.context",
    "expire": "plait.store.expiry",
    "load_pipeline": "plait.yaml_pipeline",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (see ``_LAZY``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
