"""stream(): one run per item or micro-batch, offsets checkpointed only after a run is
recorded (a SIGKILL then a restart loses nothing and re-processes nothing acknowledged),
FileTail following rotation, and back-pressure."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from cli_cases import plait
from events_cases import environment, hanging_flow, plait_command, started, wait_until
from plait import Pipeline, Store, step
from plait.errors import UsageError
from plait.events import FileTail, Item, Iterable, StreamStats, stream

SEEN: list[object] = []


@step
def handle(item: object) -> str:
    SEEN.append(item)
    if item == "boom":
        raise ValueError("boom")
    return str(item).upper()


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    SEEN.clear()


def _triggers(store: str) -> list[dict]:
    return [r.trigger for r in Store(store).history.runs(limit=None)]


def test_one_run_per_item_recorded_with_the_item_id(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    stats = stream(Pipeline([handle], name="s"), Iterable(["a", "b", "c"]), store=store)
    assert (stats.items, stats.runs, SEEN) == (3, 3, ["a", "b", "c"])
    assert sorted(t["event_id"] for t in _triggers(store)) == ["0", "1", "2"]
    assert {t["kind"] for t in _triggers(store)} == {"stream"}


def test_micro_batches_pass_lists(tmp_path: Path) -> None:
    @step
    def total(items: list[int]) -> int:
        SEEN.append(list(items))
        return sum(items)

    stats = stream(Pipeline([total], name="b"), Iterable(range(7)), param="items", batch=3)
    assert SEEN == [[0, 1, 2], [3, 4, 5], [6]]
    assert stats.runs == 3


def test_a_restart_goes_on_after_the_last_committed_item(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    stop = threading.Event()

    class StopAtTwo:
        def on_run_end(self, result: object) -> None:
            if len(SEEN) == 2:
                stop.set()

    p = Pipeline([handle], name="s")
    stream(p, Iterable(list("abcde")), store=store, hooks=[StopAtTwo()], stop=stop)
    assert SEEN == ["a", "b"]
    stream(p, Iterable(list("abcde")), store=store)
    assert SEEN == ["a", "b", "c", "d", "e"]  # nothing twice, nothing lost


def test_a_failed_run_is_committed_unless_on_failure_stop(tmp_path: Path) -> None:
    p = Pipeline([handle], name="s")
    store = str(tmp_path / "stop")
    stats = stream(p, Iterable(["a", "boom", "c"]), store=store, on_failure="stop")
    assert (SEEN, stats.statuses["failed"]) == (["a", "boom"], 1)
    SEEN.clear()
    stream(p, Iterable(["a", "boom", "c"]), store=store, on_failure="stop")
    assert SEEN == ["boom"]  # retried, not committed
    SEEN.clear()
    stats = stream(p, Iterable(["a", "boom", "c"]), store=str(tmp_path / "go"))
    assert SEEN == ["a", "boom", "c"]
    assert stats.statuses == Counter({"succeeded": 2, "failed": 1})


def test_back_pressure_bounds_the_items_read_ahead() -> None:
    read: list[int] = []
    processed: list[int] = []

    def numbers() -> object:
        for n in range(50):
            read.append(n)
            yield n

    @step
    def slow(item: int) -> int:
        processed.append(item)
        assert len(read) - len(processed) <= 3 + 1, (read, processed)
        return item

    stream(Pipeline([slow], name="bp"), Iterable(numbers()), max_in_flight=3)
    assert processed == list(range(50))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"batch": 0}, "batch must be"), ({"on_failure": "ignore"}, "on_failure must be")],
)
def test_bad_stream_options(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        stream(Pipeline([handle]), Iterable([]), **options)


def test_file_tail_follows_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\npart")
    tail = FileTail(log, poll=0.01)
    stop = threading.Event()
    got: list[Item] = []
    lines = tail.items(None, stop)
    got += [next(lines), next(lines)]
    with log.open("a") as handle:
        handle.write("ial\n")
    got.append(next(lines))
    log.rename(tmp_path / "app.log.1")  # rotated: a new file at the path
    log.write_text("fresh\n")
    got.append(next(lines))
    with log.open("r+") as handle:  # truncated in place, then a shorter line
        handle.truncate(0)
        handle.write("hi\n")
    got.append(next(lines))
    stop.set()
    lines.close()
    assert [i.value for i in got] == ["one", "two", "partial", "fresh", "hi"]
    assert got[1].offset["position"] == len("one\ntwo\n")


def test_file_tail_resumes_at_its_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("a\nb\nc\n")
    tail = FileTail(log, follow=False)
    first = list(tail.items(None, threading.Event()))
    again = list(tail.items(first[1].offset, threading.Event()))
    assert [i.value for i in again] == ["c"]
    log.rename(tmp_path / "old.log")
    log.write_text("x\n")  # another inode: read from its start
    assert [i.value for i in tail.items(first[1].offset, threading.Event())] == ["x"]


@pytest.mark.faults
def test_sigkill_then_restart_loses_nothing_and_replays_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    (tmp_path / "flow.py").write_text(hanging_flow("line"))
    lines = [f"line-{n:03d}" for n in range(60)]
    (tmp_path / "input.txt").write_text("".join(f"{line}\n" for line in lines))
    out = tmp_path / "out.txt"
    env = environment(OUT=str(out), HANG_AT="line-040")
    args = ["flow.py:p", "input.txt", "--no-follow", "--param-name", "line"]
    command = plait_command("stream", *args, "--store", ".plait")
    log = tmp_path / "err.txt"
    with (
        log.open("w") as errors,
        started(command, tmp_path, env, stdout=subprocess.DEVNULL, stderr=errors) as first,
    ):
        wait_until(
            lambda: out.exists() and "line-040" in out.read_text(),
            what="the stream to reach line-040",
            timeout=60,
            alive=first,
            log=log,
        )
        first.kill()
        first.wait(30)
    before = out.read_text().splitlines()
    assert before == lines[:41]
    first_runs = Store(str(tmp_path / ".plait")).history.runs(limit=None)
    acknowledged = {r.trigger["event_id"] for r in first_runs if r.status == "succeeded"}
    assert len(acknowledged) == 40

    done = plait("stream", *args, cwd=tmp_path, OUT=str(out), PLAIT_STORE=".plait")
    assert done.returncode == 0, done.stderr
    assert "20 item(s) in 20 run(s)" in done.stdout
    after = out.read_text().splitlines()
    assert Counter(after) == Counter({**dict.fromkeys(lines, 1), "line-040": 2})  # in flight
    earlier = {r.run_id for r in first_runs}
    runs = Store(str(tmp_path / ".plait")).history.runs(limit=None)
    new = [r for r in runs if r.run_id not in earlier]
    assert len(new) == 20
    assert not acknowledged & {r.trigger["event_id"] for r in new}
    killed = [r for r in first_runs if r.params["line"] == "line-040"]
    assert len(killed) == 1
    assert killed[0].status == "failed"  # its duplicate shows
    assert "process died" in (killed[0].error or "")


def test_a_batch_from_a_followed_file_runs_with_what_came(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("a\nb\nc\n")
    stop = threading.Event()

    @step
    def lines(items: list[str]) -> int:
        SEEN.append(list(items))
        stop.set()
        return len(items)

    def follow() -> StreamStats:
        return stream(
            Pipeline([lines], name="fb"),
            FileTail(log, poll=0.01),
            param="items",
            batch=10,
            batch_wait=0.05,
            stop=stop,
            store=str(tmp_path / "s"),
        )

    stats = follow()
    assert SEEN == [["a", "b", "c"]]
    assert stats.runs == 1
    log.write_text("a\nb\nc\nd\n")  # appended while stopped: the checkpoint resumes after c
    stop.clear()
    follow()
    assert SEEN == [["a", "b", "c"], ["d"]]
