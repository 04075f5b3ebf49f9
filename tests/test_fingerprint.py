"""Code fingerprints: what counts as a change of a step's code, and what does not.

Every variant is a real module written to its own directory under ``tmp_path`` and imported
fresh, so the source plait reads is the source the test wrote. A step's fingerprint is
observed through ``Pipeline([step]).fingerprint`` and through the cache (a run on a store
hits, or re-runs with the reason ``"code changed"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from plait import Pipeline
from store_cases import CALLS, forget_modules, load_module

MODULES = ("fp_steps", "fp_helpers", "fp_deep")

BASE = '''
from plait import step
from store_cases import CALLS

@step
def compute(x):
    """Add one."""
    CALLS.hit("compute")
    return x + 1
'''

COSMETIC = {
    "comment": '''
from plait import step
from store_cases import CALLS

# a comment above
@step
def compute(x):  # trailing comment
    """Add one."""
    # a comment inside
    CALLS.hit("compute")
    return x + 1  # and another
''',
    "docstring": '''
from plait import step
from store_cases import CALLS

@step
def compute(x):
    """Add one to x.

    A longer explanation that does not change what the step does.
    """
    CALLS.hit("compute")
    return x + 1
''',
    "no-docstring": """
from plait import step
from store_cases import CALLS

@step
def compute(x):
    CALLS.hit("compute")
    return x + 1
""",
    "blank-lines": '''
from plait import step
from store_cases import CALLS



@step
def compute(x):

    """Add one."""

    CALLS.hit("compute")

    return x + 1
''',
    "formatting": '''
from plait import step
from store_cases import CALLS

@step
def compute(
    x,
):
    """Add one."""
    CALLS.hit(
        "compute"
    )
    return (x
            +   1)
''',
    "moved-down": '''
from plait import step
from store_cases import CALLS

def unrelated():
    return "something else in the module"

@step
def compute(x):
    """Add one."""
    CALLS.hit("compute")
    return x + 1
''',
}

BEHAVIOUR = {
    "constant": '''
from plait import step
from store_cases import CALLS

@step
def compute(x):
    """Add one."""
    CALLS.hit("compute")
    return x + 2
''',
    "operator": '''
from plait import step
from store_cases import CALLS

@step
def compute(x):
    """Add one."""
    CALLS.hit("compute")
    return x - 1
''',
    "extra-statement": '''
from plait import step
from store_cases import CALLS

@step
def compute(x):
    """Add one."""
    CALLS.hit("compute")
    x = x * 10
    return x + 1
''',
    "default-value": '''
from plait import step
from store_cases import CALLS

@step
def compute(x, k=1):
    """Add one."""
    CALLS.hit("compute")
    return x + k
''',
}


@pytest.fixture(autouse=True)
def _fresh_modules(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    CALLS.reset()
    yield
    forget_modules(*MODULES)


def _fingerprint(directory, source, **extra):
    module = load_module(directory, "fp_steps", source, extra=extra or None)
    return Pipeline([module.compute]).fingerprint


@pytest.mark.parametrize("variant", list(COSMETIC), ids=list(COSMETIC))
def test_cosmetic_edits_keep_the_fingerprint(tmp_path, variant):
    before = _fingerprint(tmp_path / "base", BASE)
    after = _fingerprint(tmp_path / variant, COSMETIC[variant])
    assert after == before


@pytest.mark.parametrize("variant", list(BEHAVIOUR), ids=list(BEHAVIOUR))
def test_a_body_change_changes_the_fingerprint(tmp_path, variant):
    before = _fingerprint(tmp_path / "base", BASE)
    after = _fingerprint(tmp_path / variant, BEHAVIOUR[variant])
    assert after != before


def test_changing_a_default_value_changes_the_fingerprint(tmp_path):
    # the default is used when no source provides k: it is code, like a literal
    source = BEHAVIOUR["default-value"]
    before = _fingerprint(tmp_path / "k1", source)
    after = _fingerprint(tmp_path / "k2", source.replace("k=1", "k=2"))
    assert after != before


def test_a_changed_default_value_reruns_the_step(tmp_path):
    store = tmp_path / "store"
    source = BEHAVIOUR["default-value"]
    first = load_module(tmp_path / "k1", "fp_steps", source)
    assert Pipeline([first.compute], store=store).run(params={"x": 1})["compute"] == 2
    second = load_module(tmp_path / "k2", "fp_steps", source.replace("k=1", "k=2"))
    result = Pipeline([second.compute], store=store).run(params={"x": 1})
    assert result["compute"] == 3
    assert not result.steps["compute"].cached


def test_the_same_source_imported_twice_keeps_the_fingerprint(tmp_path):
    assert _fingerprint(tmp_path / "a", BASE) == _fingerprint(tmp_path / "b", BASE)


def test_version_label_changes_the_fingerprint(tmp_path):
    module = load_module(tmp_path / "v", "fp_steps", BASE)
    plain = Pipeline([module.compute]).fingerprint
    v1 = Pipeline([module.compute.with_options(version="1")]).fingerprint
    v2 = Pipeline([module.compute.with_options(version="2")]).fingerprint
    assert len({plain, v1, v2}) == 3
    assert Pipeline([module.compute.with_options(version="1")]).fingerprint == v1


# -- project-local helpers are part of the fingerprint, transitively --------------------------

STEP_WITH_HELPER = """
from plait import step
from fp_helpers import helper

@step
def compute(x):
    return helper(x)
"""

STEP_WITH_HELPER_MODULE = """
from plait import step
import fp_helpers

@step
def compute(x):
    return fp_helpers.helper(x)
"""

HELPERS = """
from fp_deep import deep

def helper(x):
    return deep(x) + {helper_constant}

def unrelated():
    return {unrelated_constant}
"""

DEEP = """
import json

def deep(x):
    return x * {deep_constant} + len(json.dumps([x]))
"""


def _helper_fingerprint(directory, step_source, helper=1, deep=2, unrelated=0):
    helpers = HELPERS.format(helper_constant=helper, unrelated_constant=unrelated)
    return _fingerprint(
        directory,
        step_source,
        fp_helpers=helpers,
        fp_deep=DEEP.format(deep_constant=deep),
    )


@pytest.mark.parametrize(
    "step_source", [STEP_WITH_HELPER, STEP_WITH_HELPER_MODULE], ids=["from-import", "module-attr"]
)
def test_editing_a_helper_changes_the_fingerprint(tmp_path, step_source):
    base = _helper_fingerprint(tmp_path / "base", step_source)
    assert _helper_fingerprint(tmp_path / "same", step_source) == base
    assert _helper_fingerprint(tmp_path / "helper", step_source, helper=5) != base


@pytest.mark.parametrize(
    "step_source", [STEP_WITH_HELPER, STEP_WITH_HELPER_MODULE], ids=["from-import", "module-attr"]
)
def test_editing_a_helper_of_a_helper_changes_the_fingerprint(tmp_path, step_source):
    base = _helper_fingerprint(tmp_path / "base", step_source)
    assert _helper_fingerprint(tmp_path / "deep", step_source, deep=3) != base


def test_editing_an_uncalled_function_of_the_helper_module_keeps_the_fingerprint(tmp_path):
    base = _helper_fingerprint(tmp_path / "base", STEP_WITH_HELPER)
    assert _helper_fingerprint(tmp_path / "other", STEP_WITH_HELPER, unrelated=9) == base


def test_an_edited_helper_reruns_the_step_with_reason_code_changed(tmp_path):
    store = tmp_path / "store"

    def run(directory, deep):
        load_module(
            directory,
            "fp_steps",
            STEP_WITH_HELPER,
            extra={
                "fp_helpers": HELPERS.format(helper_constant=1, unrelated_constant=0),
                "fp_deep": DEEP.format(deep_constant=deep),
            },
        )
        module = sys.modules["fp_steps"]
        return Pipeline([module.compute], store=store).run(params={"x": 2})

    first = run(tmp_path / "a", deep=2)
    again = run(tmp_path / "b", deep=2)
    edited = run(tmp_path / "c", deep=3)
    assert first["compute"] == 2 * 2 + 1 + 3
    assert again.steps["compute"].cached
    assert not edited.steps["compute"].cached
    assert edited.steps["compute"].reason == "code changed"
    assert edited["compute"] == 2 * 3 + 1 + 3


def test_cosmetic_edit_hits_and_body_edit_reruns_through_the_cache(tmp_path):
    store = tmp_path / "store"

    def run(directory, source):
        module = load_module(directory, "fp_steps", source)
        return Pipeline([module.compute], store=store).run(params={"x": 1})

    assert run(tmp_path / "base", BASE)["compute"] == 2
    cosmetic = run(tmp_path / "cosmetic", COSMETIC["comment"])
    assert cosmetic.steps["compute"].cached
    assert CALLS["compute"] == 1
    changed = run(tmp_path / "changed", BEHAVIOUR["constant"])
    assert not changed.steps["compute"].cached
    assert changed.steps["compute"].reason == "code changed"
    assert changed["compute"] == 3
    assert CALLS["compute"] == 2


def test_recursive_helpers_are_fingerprinted(tmp_path):
    source = """
from plait import step

def countdown(n):
    return 0 if n <= 0 else 1 + countdown(n - {step})

@step
def compute(x):
    return countdown(x)
"""
    base = _fingerprint(tmp_path / "a", source.format(step=1))
    assert _fingerprint(tmp_path / "b", source.format(step=1)) == base
    assert _fingerprint(tmp_path / "c", source.format(step=2)) != base


def test_methods_of_a_project_class_are_part_of_the_fingerprint(tmp_path):
    source = """
from plait import step

class Scaler:
    def apply(self, x):
        return x * {factor}

@step
def compute(x):
    return Scaler().apply(x)
"""
    base = _fingerprint(tmp_path / "a", source.format(factor=2))
    assert _fingerprint(tmp_path / "b", source.format(factor=3)) != base


DECORATED = """
import functools
from plait import step
from fp_helpers import logged

@functools.lru_cache(maxsize=None)
def memoized(x):
    return x + {memoized}

@logged
def first(x):
    return x * {first}

@logged
def second(x):
    return x * {second}

@step
def compute(x):
    return memoized(x) + first(x) + second(x)
"""

DECORATOR = """
import functools

def logged(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)
    return wrapper
"""


def _decorated_fingerprint(directory, memoized=1, first=2, second=3):
    source = DECORATED.format(memoized=memoized, first=first, second=second)
    return _fingerprint(directory, source, fp_helpers=DECORATOR)


def test_editing_an_lru_cached_helper_changes_the_fingerprint(tmp_path):
    base = _decorated_fingerprint(tmp_path / "base")
    assert _decorated_fingerprint(tmp_path / "same") == base
    assert _decorated_fingerprint(tmp_path / "edited", memoized=5) != base


@pytest.mark.parametrize("edited", ["first", "second"])
def test_editing_a_helper_wrapped_by_a_decorator_changes_the_fingerprint(tmp_path, edited):
    # both helpers share the decorator's wrapper code: each must still count on its own
    base = _decorated_fingerprint(tmp_path / "base")
    assert _decorated_fingerprint(tmp_path / "edited", **{edited: 7}) != base


# -- library code is not part of the fingerprint --------------------------------------------

LIBRARY_SCRIPT = """
import importlib, json, os, sys
sys.dont_write_bytecode = True
from plait import Pipeline

def load(folder, name, text):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".py"), "w") as handle:
        handle.write(text)
    sys.modules.pop(name, None)
    importlib.invalidate_caches()

site, project = sys.argv[1], sys.argv[2]
fingerprints = {}
for label, library_body, project_body in [
    ("base", "x + 1", "x * 2"),
    ("library-edited", "x + 1000", "x * 2"),
    ("project-edited", "x + 1", "x * 3"),
]:
    load(site, "fp_fakelib", "def library_function(x):\\n    return " + library_body + "\\n")
    load(
        project,
        "fp_project",
        "import json\\n"
        "from plait import step\\n"
        "from fp_fakelib import library_function\\n"
        "def local_helper(x):\\n    return " + project_body + "\\n"
        "@step\\n"
        "def compute(x):\\n"
        "    return json.dumps(library_function(local_helper(x)))\\n",
    )
    module = importlib.import_module("fp_project")
    fingerprints[label] = Pipeline([module.compute]).fingerprint
print(json.dumps(fingerprints))
"""


def test_library_code_is_not_part_of_the_fingerprint(tmp_path):
    # a directory named site-packages on sys.path is library code, like an installed package
    site = tmp_path / "lib" / "site-packages"
    project = tmp_path / "project"
    site.mkdir(parents=True)
    project.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(project)])}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LIBRARY_SCRIPT), str(site), str(project)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    found = json.loads(completed.stdout)
    assert found["library-edited"] == found["base"]
    assert found["project-edited"] != found["base"]


# -- module constants a step reads are part of the fingerprint, by value ---------------------

CONSTANT_STEP = """
import enum
import re
from plait import step

class Mode(enum.Enum):
    FAST = 1
    SLOW = 2

THRESHOLD = {value}
UNRELATED = {unrelated}

@step
def compute(x):
    return (x, THRESHOLD)
"""

CONSTANT_EDITS = {
    "int": ("1", "2"),
    "float": ("0.5", "0.25"),
    "str": ("'a'", "'b'"),
    "bytes": ("b'a'", "b'b'"),
    "none-to-bool": ("None", "False"),
    "bool-to-int": ("True", "1"),
    "tuple": ("(1, 'a')", "(1, 'b')"),
    "frozenset": ("frozenset({1, 2})", "frozenset({1, 3})"),
    "list": ("[1, 2]", "[1, 2, 3]"),
    "dict": ("{'a': (1, 2)}", "{'a': (1, 3)}"),
    "enum-member": ("Mode.FAST", "Mode.SLOW"),
    "regex": ("re.compile('a+')", "re.compile('a*')"),
}


def _constant_fingerprint(directory, value, unrelated="0"):
    return _fingerprint(directory, CONSTANT_STEP.format(value=value, unrelated=unrelated))


@pytest.mark.parametrize("kind", list(CONSTANT_EDITS), ids=list(CONSTANT_EDITS))
def test_editing_a_module_constant_the_step_reads_changes_the_fingerprint(tmp_path, kind):
    before, after = CONSTANT_EDITS[kind]
    base = _constant_fingerprint(tmp_path / "base", before)
    assert _constant_fingerprint(tmp_path / "same", before) == base
    assert _constant_fingerprint(tmp_path / "edited", after) != base


def test_editing_a_constant_the_step_does_not_read_keeps_the_fingerprint(tmp_path):
    base = _constant_fingerprint(tmp_path / "base", "1", unrelated="0")
    assert _constant_fingerprint(tmp_path / "other", "1", unrelated="9") == base


def test_a_large_list_is_not_part_of_the_fingerprint(tmp_path):
    # over 1,000 elements a list is data, not a setting: validate() warns about it instead
    base = _constant_fingerprint(tmp_path / "base", "list(range(2000))")
    assert _constant_fingerprint(tmp_path / "edited", "list(range(2001))") == base


HELPER_CONSTANTS = """
LIMIT = {limit}

def helper(x):
    return x * LIMIT
"""

STEP_READING_MODULE_CONSTANT = """
from plait import step
import fp_helpers

@step
def compute(x):
    return x + fp_helpers.LIMIT
"""


@pytest.mark.parametrize(
    "step_source",
    [STEP_WITH_HELPER, STEP_READING_MODULE_CONSTANT],
    ids=["read-by-helper", "module-attribute"],
)
def test_editing_a_constant_of_a_helper_module_changes_the_fingerprint(tmp_path, step_source):
    def fingerprint(directory, limit):
        helpers = HELPER_CONSTANTS.format(limit=limit)
        return _fingerprint(directory, step_source, fp_helpers=helpers)

    base = fingerprint(tmp_path / "base", 2)
    assert fingerprint(tmp_path / "same", 2) == base
    assert fingerprint(tmp_path / "edited", 3) != base


def test_a_module_level_set_is_state_not_part_of_the_fingerprint(tmp_path):
    # a set is a registry far more often than a setting (which steps to fail, which ids
    # were seen): toggling it must not change the code; validate() warns about it instead
    base = _constant_fingerprint(tmp_path / "base", "set()")
    assert _constant_fingerprint(tmp_path / "edited", "{'compute'}") == base


@pytest.mark.parametrize(
    "body",
    ["COUNTS.append(x)", "COUNTS.clear()", "COUNTS[0] = x", "COUNTS[0] += x", "del COUNTS[0]"],
)
def test_a_module_list_the_step_mutates_does_not_change_the_fingerprint_between_runs(
    tmp_path, body
):
    source = f"""
from plait import step

COUNTS = [0]

@step
def compute(x):
    {body}
    return x
"""
    module = load_module(tmp_path / "m", "fp_steps", source)
    store = tmp_path / "store"
    assert not Pipeline([module.compute], store=store).run(params={"x": 1}).steps["compute"].cached
    module.COUNTS[:] = [0, 5]
    assert Pipeline([module.compute], store=store).run(params={"x": 1}).steps["compute"].cached


def test_a_plain_closure_variable_is_part_of_the_fingerprint(tmp_path):
    source = """
from plait import step

def make(factor):
    @step(name="compute")
    def scaled(x):
        return x * factor
    return scaled

compute = make({factor})
"""
    base = _fingerprint(tmp_path / "a", source.format(factor=2))
    assert _fingerprint(tmp_path / "b", source.format(factor=2)) == base
    assert _fingerprint(tmp_path / "c", source.format(factor=3)) != base


def test_a_mutated_closure_list_does_not_change_the_fingerprint_between_runs(tmp_path):
    # a counter the step appends to is state, not a setting: the second run still hits
    calls: list[int] = []

    from plait import step

    @step
    def counted(x):
        calls.append(x)
        return x

    store = tmp_path / "store"
    with pytest.warns(UserWarning, match="closure variable 'calls'"):
        Pipeline([counted], store=store).validate(params={"x": 1})
    assert not Pipeline([counted], store=store).run(params={"x": 1}).steps["counted"].cached
    assert Pipeline([counted], store=store).run(params={"x": 1}).steps["counted"].cached
    assert calls == [1]


def test_an_edited_module_constant_reruns_the_step_with_reason_code_changed(tmp_path):
    store = tmp_path / "store"

    def run(directory, value):
        module = load_module(directory, "fp_steps", CONSTANT_STEP.format(value=value, unrelated=0))
        return Pipeline([module.compute], store=store).run(params={"x": 1})

    assert run(tmp_path / "a", 1)["compute"] == (1, 1)
    assert run(tmp_path / "b", 1).steps["compute"].cached
    edited = run(tmp_path / "c", 2)
    assert not edited.steps["compute"].cached
    assert edited.steps["compute"].reason == "code changed"
    assert edited["compute"] == (1, 2)


def test_a_class_from_an_unregistered_module_is_fingerprinted_from_its_file(tmp_path):
    # tools that exec a file without entering it in sys.modules: helpers are still the
    # project's, and a class's source is found in its file
    import importlib.util

    source = """
from plait import step

class Scaler:
    def apply(self, x):
        return x * {factor}

def helper(x):
    return Scaler().apply(x) + {offset}

@step
def compute(x):
    return helper(x)
"""

    def fingerprint(directory, factor=2, offset=1):
        directory.mkdir()
        path = directory / "unregistered_flow.py"
        path.write_text(source.format(factor=factor, offset=offset))
        spec = importlib.util.spec_from_file_location("unregistered_flow", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert "unregistered_flow" not in sys.modules
        return Pipeline([module.compute]).fingerprint

    base = fingerprint(tmp_path / "base")
    assert fingerprint(tmp_path / "same") == base
    assert fingerprint(tmp_path / "helper", offset=5) != base
    assert fingerprint(tmp_path / "class", factor=3) != base
