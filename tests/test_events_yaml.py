"""A YAML pipeline's ``triggers:`` section: checked with file:line:column when it loads,
built into triggers for ``plait serve pipeline.yaml``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from events_cases import (
    announced_url,
    environment,
    plait_command,
    post_run,
    recorded_status,
    started,
    terminate,
    wait_until,
)
from plait import Store, load_pipeline
from plait.errors import UsageError
from plait.events import Cron, Every, FileWatch, RedisStream, Webhook
from plait.events._config import triggers_from_config, triggers_from_yaml
from plait.yaml_pipeline import YamlPipelineError

HELPERS = """
def greet(name: str = "world") -> str:
    return "hello " + name
"""

PIPELINE = """
name: greeter
imports: [helpers]
params:
  name: {type: str, default: world}
triggers:
  - cron: "0 * * * *"
    tz: Europe/Paris
    params: {name: cron}
  - every: 5m
  - webhook: /run
    port: 0
  - watch: "inbox/*.csv"
    param: name
  - redis: redis://127.0.0.1:6379/0
    group: workers
steps:
  - call: helpers:greet
    inputs: {name: name}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent(PIPELINE))
    return tmp_path


def test_triggers_are_built_from_the_yaml(project: Path) -> None:
    cron, every, hook, watch, redis = triggers_from_yaml(str(project / "pipeline.yaml"), "greeter")
    assert isinstance(cron, Cron)
    assert str(cron.tz) == "Europe/Paris"
    assert cron.params == {"name": "cron"}
    assert isinstance(every, Every)
    assert every.interval == 300
    assert isinstance(hook, Webhook)
    assert (hook.path, hook.port, hook.host) == ("/run", 0, "127.0.0.1")
    assert isinstance(watch, FileWatch)
    assert watch.pattern == str(project / "inbox" / "*.csv")  # from the YAML's folder
    assert isinstance(redis, RedisStream)
    assert (redis.stream, redis.group) == ("greeter", "workers")


def test_a_yaml_with_triggers_still_loads_and_runs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    pipeline = load_pipeline(str(project / "pipeline.yaml"))
    assert pipeline.run().outputs["greet"] == "hello world"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "- cron: '0 * * * *'\n    every: 5m",
            "pipeline.yaml:6:5: triggers[0]: a trigger is a mapping with one of",
        ),
        ("- every: soon", "triggers[0]: every must be seconds or a duration"),
        ("- webhook: /run\n    prot: 80", "unknown key 'prot' (did you mean 'port'?)"),
        ("- 5", "triggers[0]: a trigger is a mapping with one of"),
    ],
)
def test_bad_trigger_entries_are_reported_with_their_position(
    project: Path, entry: str, message: str
) -> None:
    text = (
        "name: greeter\nimports: [helpers]\nsteps:\n  - call: helpers:greet\ntriggers:\n  "
        + entry
        + "\n"
    )
    (project / "pipeline.yaml").write_text(text)
    with pytest.raises(YamlPipelineError) as caught:
        load_pipeline(str(project / "pipeline.yaml"))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cron": "0 * * * *", "port": 80}, r"'port' is not an option of a cron trigger"),
        ({"webhook": "/run", "params": {"a": 1}}, r"'params' is not an option of a webhook"),
        ({"cron": "nope"}, r"triggers\[0\] \(cron\): Cron\('nope'\) is not a valid cron"),
    ],
)
def test_options_of_another_kind_are_refused(entry: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        triggers_from_config([entry])


def test_plait_serve_uses_the_yaml_triggers(project: Path) -> None:
    (project / "pipeline.yaml").write_text(
        textwrap.dedent(PIPELINE).split("triggers:")[0]
        + "triggers:\n  - webhook: /go\n    port: 0\nsteps:\n  - call: helpers:greet\n"
        "    inputs: {name: name}\n"
    )
    token = "yaml-serve-token"
    env = environment(PLAIT_TOKEN=token, PYTHONPATH=str(project))
    with started(plait_command("serve", "pipeline.yaml"), project, env) as server:
        url = announced_url(server)
        assert url.endswith("/go")
        run_id = post_run(url, token, b'{"name": "yaml"}')
        history = Store(str(project / ".plait")).history
        wait_until(lambda: recorded_status(history, run_id) == "succeeded", what="the run")
        stdout, stderr = terminate(server)
    assert server.returncode == 0, stderr
    assert "webhook /go" in stdout
