"""A step pickles with the standard library too (``pickle``, ``copy``), not only with
cloudpickle: its shared empty mappings come back as the same shared object."""

from __future__ import annotations

import copy
import pickle

import pytest

from plait import Pipeline, Step
from plait.steps import NO_ENTRIES


def double(x: int) -> int:
    return 2 * x


def test_a_step_of_a_module_function_pickles_and_runs_after():
    step = Step(double, outputs=["y"])
    back = pickle.loads(pickle.dumps(step))
    assert back.bound is NO_ENTRIES
    assert back.extra_inputs is NO_ENTRIES
    assert Pipeline([back]).run(params={"x": 4})["y"] == 8


def test_a_step_copies_deeply_and_shallowly():
    step = Step(double, outputs=["y"], name="twice")
    for made in (copy.copy(step), copy.deepcopy(step)):
        assert made.name == "twice"
        assert made.bound is NO_ENTRIES
        assert Pipeline([made]).run(params={"x": 5})["y"] == 10


def test_the_shared_empty_mapping_is_empty_and_read_only():
    assert dict(NO_ENTRIES) == {}
    assert len(NO_ENTRIES) == 0
    assert "x" not in NO_ENTRIES
    assert NO_ENTRIES.get("x") is None
    assert pickle.loads(pickle.dumps(NO_ENTRIES)) is NO_ENTRIES
    with pytest.raises(TypeError):
        NO_ENTRIES["x"] = 1  # type: ignore[index]
