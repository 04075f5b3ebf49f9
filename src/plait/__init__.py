"""plait: plain Python functions wired into fast, cached, recorded pipelines.

>>> from plait import Pipeline, step
>>> @step
... def double(x):
...     return 2 * x
>>> Pipeline([double]).run(params={"x": 21})["double"]
42
"""

from plait.pipeline import Pipeline, param
from plait.results import Err, Ok, RunResult, Skipped, StepResult
from plait.run.context import current
from plait.steps import Step, step

__all__ = [
    "Err",
    "Ok",
    "Pipeline",
    "RunResult",
    "Skipped",
    "Step",
    "StepResult",
    "current",
    "param",
    "step",
]
__version__ = "0.1.0"
