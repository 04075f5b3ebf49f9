"""FileWatch on real files: a run per new or changed file matching the glob (debounced),
none for other files; and the CLI's plait serve on a webhook, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from cli_cases import plait
from events_cases import (
    StopAfter,
    announced_url,
    environment,
    plait_command,
    post_run,
    run_status,
    running,
    started,
    terminate,
    wait_until,
)
from plait import Pipeline, Store, step
from plait.errors import UsageError
from plait.events import FileWatch, Server

SEEN: list[str] = []


@step(cache=False)  # the path is the same when the file changes: its content is not an input
def ingest(path: str) -> int:
    SEEN.append(os.path.basename(path))
    return len(Path(path).read_text())


def test_new_and_changed_files_matching_the_glob_start_runs(tmp_path: Path) -> None:
    SEEN.clear()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stopper = StopAfter(2)
    watch = FileWatch(str(inbox / "*.csv"), param="path", debounce=0.05)
    server = Server(
        Pipeline([ingest], name="w"),
        [watch],
        overlap="queue",
        hooks=[stopper],
        store=str(tmp_path / "s"),
    )
    stopper.server = server
    with running(server):
        (inbox / "notes.txt").write_text("ignored")
        (inbox / "a.csv").write_text("1,2\n")
        wait_until(lambda: len(stopper.ended) >= 1, what="a run for a.csv")
        (inbox / "a.csv").write_text("1,2\n3,4\n")  # changed
        wait_until(lambda: len(stopper.ended) >= 2, what="a run for the change")
    assert SEEN[:2] == ["a.csv", "a.csv"]
    records = Store(str(tmp_path / "s")).history.runs(
        trigger="watch " + str(inbox / "*.csv"), limit=None
    )
    assert len(records) >= 2
    assert all(r.trigger["event_id"].startswith(str(inbox / "a.csv") + "@") for r in records)


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    import asyncio

    server = Server(Pipeline([ingest]), [FileWatch(str(tmp_path / "nowhere" / "*.csv"))])
    with pytest.raises(UsageError, match="does not exist"):
        asyncio.run(server.run())


FLOW = """
from plait import Pipeline, step

@step
def greet(name: str) -> str:
    return "hello " + name

p = Pipeline([greet], name="greeter")
"""


def test_plait_serve_webhook_runs_on_post_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    token = "cli-test-token"
    command = plait_command("serve", "flow.py:p", "--webhook", "127.0.0.1:0")
    with started(command, tmp_path, environment(PLAIT_TOKEN=token)) as server:
        url = announced_url(server)
        run_id = post_run(url, token, json.dumps({"name": "ada"}).encode())
        wait_until(lambda: run_status(url, token, run_id) == "succeeded", what="the run")
        stdout, stderr = terminate(server)
    assert server.returncode == 0, stderr
    assert "1 run(s) started, 1 succeeded" in stdout
    assert "Traceback" not in stderr
    shown = plait("runs", "list", "--trigger", "webhook /run", cwd=tmp_path)
    assert run_id[:8] in shown.stdout, shown.stdout + shown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "needs at least one trigger"),
        (("--every", "soon"), "is not a duration"),
        (("--cron", "every hour"), "not a valid cron expression"),
        (("--webhook", "0.0.0.0:8000"), "refusing to serve a webhook"),
        (("--redis", "http://x"), "is not a Redis URL"),
    ],
)
def test_plait_serve_usage_errors_are_clear(tmp_path: Path, args: tuple, message: str) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    done = plait("serve", "flow.py:p", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_plait_stream_reads_a_file(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    (tmp_path / "names.txt").write_text("ada\nbob\n")
    done = plait(
        "stream", "flow.py:p", "names.txt", "--no-follow", "--param-name", "name", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "2 item(s) in 2 run(s): 2 succeeded" in done.stdout
    again = plait(
        "stream", "flow.py:p", "names.txt", "--no-follow", "--param-name", "name", cwd=tmp_path
    )
    assert "0 item(s) in 0 run(s)" in again.stdout  # its checkpoint: nothing new


SLOW = """
import os, time
from plait import Pipeline, step

@step
def slow(name: str) -> str:
    open(os.environ["STARTED"], "w").close()
    while True:  # until cancelled
        time.sleep(0.05)
    return name

p = Pipeline([slow], name="slow")
"""


def test_sigterm_past_the_grace_period_records_the_running_run_cancelled(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(SLOW))
    started_file = tmp_path / "started"
    env = environment(PLAIT_TOKEN="grace-token", STARTED=str(started_file))
    command = plait_command("serve", "flow.py:p", "--webhook", "127.0.0.1:0", "--grace", "0")
    with started(command, tmp_path, env) as server:
        run_id = post_run(announced_url(server), "grace-token", b'{"name": "x"}')
        wait_until(started_file.exists, what="the step to start")
        stdout, stderr = terminate(server)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "1 cancelled" in stdout
    assert "did not stop; exiting without them" in stderr
    record = Store(str(tmp_path / ".plait")).history.run(run_id)
    assert record.status == "cancelled"
