"""The Ray executor: what is particular to Ray.

Behaviour shared with every executor is in the executor-parametrised suite, and what all
remote executors share is in ``test_remote``; both run on the session's local Ray (two
CPUs). Here: a worker that dies mid-step, who owns Ray (an executor shuts down only the
Ray it initialised itself: tried in a child process, since Ray is one per process), and
the install hint.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import executor_cases
from plait import Pipeline
from plait.errors import UsageError
from plait.executors import Ray

ray_executor = pytest.fixture(name="ray_executor")(executor_cases.shared_ray)


sibling = executor_cases.sibling


def test_a_worker_that_dies_mid_step_fails_the_step(ray_executor):
    executor_cases.check_a_dying_worker_fails_its_step(ray_executor, "WorkerCrashedError")


def test_a_worker_death_is_retried_when_the_step_allows(ray_executor, tmp_path):
    executor_cases.check_a_worker_death_is_retried(ray_executor, tmp_path)


def test_the_ray_shortcut_uses_a_running_ray_and_leaves_it_running(ray_executor):
    import ray

    result = Pipeline([sibling]).run(params={"x": 1}, executor="ray")
    assert result["sibling"] == 2
    assert ray.is_initialized()
    assert ray.get(ray.put(3)) == 3


OWNED = textwrap.dedent(
    """
    import ray
    from plait import Pipeline, step


    @step
    def double(x):
        return 2 * x


    if __name__ == "__main__":
        result = Pipeline([double]).run(params={"x": 21}, executor="ray")
        print(result["double"], ray.is_initialized())
    """
)


def test_the_ray_shortcut_starts_ray_and_shuts_it_down(tmp_path):
    script = tmp_path / "owned.py"
    script.write_text(OWNED)
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["42", "False"]


def test_a_missing_ray_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(UsageError, match=r"pip install 'plait\[ray\]'"):
        Ray()
    with pytest.raises(UsageError, match=r"pip install 'plait\[ray\]'"):
        Pipeline([sibling]).run(params={"x": 1}, executor="ray")


def test_a_worker_count_after_ray_is_refused_with_the_address_form():
    with pytest.raises(UsageError, match=r"'ray:2'.*cluster address, like 'ray:auto'"):
        Pipeline([sibling]).run(params={"x": 1}, executor="ray:2")


def test_the_executor_says_where_it_connects():
    assert repr(Ray()) == "Ray()"
    assert repr(Ray("ray://head:10001")) == "Ray('ray://head:10001')"


# -- worker setup and the driver's registrations --------------------------------------------


def test_worker_setup_and_registrations_reach_the_ray_workers(ray_executor, tmp_path):
    # the session's Ray, already running: left running
    executor_cases.check_setup_and_registrations_reach_the_workers(
        lambda setup: Ray(setup=setup), tmp_path
    )
