"""The public API: what ``import plait`` exports, pinned."""

from __future__ import annotations

import plait
import plait.errors

# Exactly the names of DESIGN §2's import lines, §4.2's Registry and load_pipeline, and
# §4.5's assets.
EXPORTED = [
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


def test_all_is_pinned():
    assert sorted(plait.__all__) == EXPORTED


def test_all_is_sorted():
    assert list(plait.__all__) == sorted(plait.__all__)


def test_every_exported_name_exists():
    missing = [name for name in plait.__all__ if not hasattr(plait, name)]
    assert missing == []


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from plait import *", namespace)
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(plait.__all__)


def test_error_classes_are_importable_and_rooted():
    from plait.errors import PipelineValidationError, PlaitError, RunFailed

    assert issubclass(PlaitError, Exception)
    assert issubclass(PipelineValidationError, PlaitError)
    assert issubclass(PipelineValidationError, ValueError)
    assert issubclass(RunFailed, PlaitError)
    assert issubclass(RunFailed, RuntimeError)
    assert plait.errors.PlaitError is PlaitError
