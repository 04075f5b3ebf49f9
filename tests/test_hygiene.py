"""Hygiene: importing and running plait changes nothing about the process or the disk."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

from plait import Pipeline, step

HEAVY_OPTIONAL_MODULES = ["numpy", "pandas", "pydantic", "rich", "dask", "ray", "distributed"]

_IMPORT_PROBE = textwrap.dedent(
    """
    import json, logging, sys
    root = logging.getLogger()
    before = list(root.handlers), root.level
    import plait
    after = list(root.handlers), root.level
    sys.stderr.write(json.dumps({
        "heavy": sorted(m for m in %r if m in sys.modules),
        "root_handlers_changed": before[0] != after[0],
        "root_level_changed": before[1] != after[1],
    }))
    """
)


def _import_plait_in_a_subprocess(cwd):
    env = {**os.environ}
    env.pop("PLAIT_STORE", None)
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE % (HEAVY_OPTIONAL_MODULES,)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, json.loads(completed.stderr)


def test_import_loads_no_heavy_optional_module(tmp_path):
    _, report = _import_plait_in_a_subprocess(tmp_path)
    assert report["heavy"] == []


def test_import_prints_nothing(tmp_path):
    stdout, _ = _import_plait_in_a_subprocess(tmp_path)
    assert stdout == ""


def test_import_writes_nothing_to_the_current_directory(tmp_path):
    _import_plait_in_a_subprocess(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_import_configures_no_logging(tmp_path):
    _, report = _import_plait_in_a_subprocess(tmp_path)
    assert (report["root_handlers_changed"], report["root_level_changed"]) == (False, False)


@step
def produce(n):
    return list(range(n))


@step
def consume(produce):
    return sum(produce)


@step(outputs=[])
def sink(consume):
    return None


def test_running_without_a_store_writes_no_files(clean_cwd):
    result = Pipeline([produce, consume, sink]).run(params={"n": 5})
    assert result["consume"] == 10
    assert sorted(path.name for path in clean_cwd.iterdir()) == []


def test_failing_run_without_a_store_writes_no_files(clean_cwd):
    @step
    def boom():
        raise ValueError("no")

    result = Pipeline([boom]).run(on_error="continue")
    assert not result.ok
    assert sorted(path.name for path in clean_cwd.iterdir()) == []


def test_running_adds_no_root_logging_handlers():
    root = logging.getLogger()
    before = list(root.handlers)
    Pipeline([produce, consume]).run(params={"n": 3})
    assert root.handlers == before


def test_running_prints_nothing(capfd):
    Pipeline([produce, consume, sink]).run(params={"n": 3})
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_no_test_installs_system_packages():
    # Debian packages come from .ci/system.sh (the README's test command runs it); a test
    # that installed them itself would hide a missing install step.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    offenders = []
    for folder, _, files in os.walk(os.path.join(root, "tests")):
        for name in files:
            if name.endswith((".py", ".sh")) and name != "test_hygiene.py":
                with open(os.path.join(folder, name), encoding="utf-8") as source:
                    text = source.read()
                if "apt-get" in text or 'system.sh"' in text:
                    offenders.append(name)
    with open(os.path.join(root, ".ci", "postgres.sh"), encoding="utf-8") as script:
        assert "apt-get" not in script.read(), ".ci/postgres.sh must only start the server"
    assert offenders == []
