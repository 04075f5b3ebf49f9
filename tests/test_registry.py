"""plait.Registry: named functions and steps for YAML pipelines."""

from __future__ import annotations

import textwrap

import pytest

from plait import Pipeline, Registry, step
from plait.errors import PlaitError
from plait.registry import DuplicateNameError


def fetch(n: int) -> list[int]:
    return list(range(n))


def total(fetch: list[int]) -> int:
    return sum(fetch)


def test_register_by_call_and_lookup_by_name_and_attribute():
    reg = Registry()
    returned = reg.register(fetch, "data.fetch")
    assert returned is fetch  # the entry is still the plain function
    assert reg["data.fetch"] is fetch
    assert reg.data.fetch is fetch
    assert "data.fetch" in reg
    assert reg.list() == ["data.fetch"]


def test_register_as_decorator_keeps_the_step():
    reg = Registry()

    @reg.register("math.total")
    @step
    def summed(fetch: list[int]) -> int:
        return sum(fetch)

    assert reg["math.total"] is summed
    assert summed([1, 2]) == 3
    assert Pipeline([summed]).run(params={"fetch": [1, 2, 3]})["summed"] == 6


def test_decorator_without_name_uses_the_function_name():
    reg = Registry()

    @reg.register
    def clean(x: int) -> int:
        return x

    assert reg["clean"] is clean
    assert reg.list() == ["clean"]


def test_list_is_sorted_and_filters_by_prefix():
    reg = Registry()
    reg.register(total, "math.total")
    reg.register(fetch, "data.fetch")
    assert reg.list() == ["data.fetch", "math.total"]
    assert reg.list("data") == ["data.fetch"]
    assert len(reg) == 2


def test_unknown_name_says_did_you_mean():
    reg = Registry()
    reg.register(fetch, "data.fetch")
    with pytest.raises(
        KeyError, match=r"no entry 'data.fech' in the registry \(did you mean 'data.fetch'\?\)"
    ):
        reg["data.fech"]
    with pytest.raises(AttributeError, match=r"'data.fech'.*did you mean 'data.fetch'\?"):
        _ = reg.data.fech


def test_a_duplicate_name_is_an_error_naming_both_definitions():
    reg = Registry()
    reg.register(fetch, "data.fetch")
    with pytest.raises(DuplicateNameError) as caught:
        reg.register(total, "data.fetch")
    error = caught.value
    assert isinstance(error, PlaitError)
    assert isinstance(error, ValueError)
    assert error.name == "data.fetch"
    message = str(error)
    assert "test_registry.py" in message
    assert "'data.fetch' is already registered" in message
    assert "test_registry.fetch" in message
    assert "test_registry.total" in message
    assert "register it under another name" in message


def test_registering_the_same_object_twice_is_allowed():
    reg = Registry()
    reg.register(fetch, "data.fetch")
    reg.register(fetch, "data.fetch")
    assert reg["data.fetch"] is fetch


def test_a_rerun_notebook_cell_replaces_the_entry(tmp_path):
    # the same qualname from the same file, defined again: a re-run cell, not a clash
    source = textwrap.dedent(
        """
        def clean(x):
            return x + VERSION
        """
    )
    path = str(tmp_path / "cell.py")
    first: dict[str, object] = {"VERSION": 1}
    exec(compile(source, path, "exec"), first)
    second: dict[str, object] = {"VERSION": 2}
    exec(compile(source, path, "exec"), second)
    reg = Registry()
    reg.register(first["clean"], "clean")
    reg.register(second["clean"], "clean")
    assert reg["clean"](0) == 2


def test_a_name_must_be_dotted_identifiers():
    reg = Registry()
    with pytest.raises(ValueError, match=r"registry name 'data\.\.x' is not dotted identifiers"):
        reg.register(fetch, "data..x")
    with pytest.raises(TypeError, match="registers functions or steps"):
        reg.register(3, "three")  # type: ignore[arg-type]


def test_a_name_is_not_both_an_entry_and_a_namespace():
    reg = Registry()
    reg.register(fetch, "data")
    with pytest.raises(DuplicateNameError, match="'data' is an entry"):
        reg.register(total, "data.total")
