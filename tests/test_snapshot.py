"""Pipeline versions: ``p.freeze()`` → a sealed Snapshot (verify, save/load, diff)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from plait import Pipeline, step
from plait.snapshot import Snapshot, SnapshotError


@step
def load(n: int, scale: float = 2.0) -> list[float]:
    return [i * scale for i in range(n)]


@step(retries=1)
def total(load: list[float]) -> float:
    return sum(load)


def _pipeline(**kw):
    return Pipeline([load, total], name="shop", params={"n": 3}, config={"lr": 0.1}, **kw)


def test_freeze_holds_structure_code_source_options_and_defaults():
    snap = _pipeline(version="1.0.0").freeze()
    assert snap.pipeline == "shop"
    assert snap.version == "1.0.0"
    assert snap.experiment == "shop"
    assert snap.order == ["load", "total"]
    assert snap.steps["total"]["inputs"] == {"load": "load"}
    assert snap.steps["total"]["options"]["retries"] == 1
    assert snap.steps["load"]["defaults"] == {"scale": 2.0}
    assert "return sum(load)" in snap.steps["total"]["source"]
    assert len(snap.steps["load"]["code"]) == 32
    assert snap.params == {"n": 3}
    assert snap.config == {"lr": 0.1}
    assert len(snap.seal) == 64
    assert snap.verify() is True


def test_the_seal_is_deterministic_and_covers_everything():
    assert _pipeline().freeze().seal == _pipeline().freeze().seal
    assert _pipeline(version="2").freeze().seal != _pipeline().freeze().seal
    other_config = Pipeline([load, total], name="shop", params={"n": 3}, config={"lr": 0.2})
    assert other_config.freeze().seal != _pipeline().freeze().seal


def test_the_seal_is_the_same_in_another_process_whatever_the_hash_seed(tmp_path):
    module = tmp_path / "flow_snap.py"
    module.write_text(
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step
            def a(x, k=2):
                return {"x": x, "k": k}

            p = Pipeline([a], name="seeded", params={"x": 1}, config={"b": 1, "a": [1, 2]})
            print(p.freeze().seal)
            """
        )
    )
    seals = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(tmp_path)}
        out = subprocess.run(
            [sys.executable, str(module)], env=env, capture_output=True, text=True, check=True
        )
        seals.add(out.stdout.strip())
    assert len(seals) == 1


def test_verify_refuses_a_changed_snapshot(tmp_path):
    snap = _pipeline().freeze()
    path = tmp_path / "v1.json"
    snap.save(path)
    data = json.loads(path.read_text())
    data["steps"]["total"]["options"]["retries"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(SnapshotError, match="does not match its seal"):
        Snapshot.load(path)


def test_save_and_load_round_trip(tmp_path):
    snap = _pipeline(version="1.2.0").freeze()
    snap.save(tmp_path / "deep" / "v.json")
    again = Snapshot.load(tmp_path / "deep" / "v.json")
    assert again == snap
    assert again.seal == snap.seal
    assert again.verify()
    assert [p.name for p in tmp_path.joinpath("deep").iterdir()] == ["v.json"]  # no temp left


def test_load_refuses_what_is_not_a_snapshot(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(SnapshotError, match="not a snapshot"):
        Snapshot.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("nope")
    with pytest.raises(SnapshotError, match="not JSON"):
        Snapshot.load(tmp_path / "y.json")


def test_attributes_are_copies_so_the_snapshot_stays_sealed():
    snap = _pipeline().freeze()
    snap.steps["total"]["code"] = "changed"
    assert snap.steps["total"]["code"] != "changed"
    assert snap.verify()


def test_diff_lists_changes_step_by_step():
    before = _pipeline(version="1.0").freeze()

    @step(retries=3)
    def total(load: list[float]) -> float:  # new code, new option
        return sum(load) * 2

    @step
    def report(total: float) -> str:
        return f"{total}"

    after = Pipeline(
        [load, total, report], name="shop", params={"n": 4}, config={"lr": 0.1}, version="1.1"
    ).freeze()
    changes = before.diff(after)
    rows = [(c.step, c.what) for c in changes]
    assert ("total", "code") in rows
    assert ("total", "source") in rows
    assert ("total", "options.retries") in rows
    assert ("report", "added") in rows
    assert (None, "params.n") in rows
    assert (None, "version") in rows
    assert ("load", "code") not in rows
    assert rows.index(("total", "code")) < rows.index(("report", "added"))
    assert "step 'total': options.retries 1 -> 3" in [str(c) for c in changes]
    assert after.diff(before)[-1].what == "version"
    assert ("report", "removed") in [(c.step, c.what) for c in after.diff(before)]
    assert before.diff(_pipeline(version="1.0").freeze()) == []


def test_freeze_needs_no_run_time_params():
    snap = Pipeline([load, total], name="shop").freeze()  # n is given at run time
    assert snap.params == {}
    assert snap.verify()


def test_datasets_are_part_of_the_version():
    from plait.io import CSV

    @step
    def rows(companies) -> int:
        return len(companies)

    before = Pipeline([rows], datasets={"companies": CSV("data/a.csv")}).freeze()
    after = Pipeline([rows], datasets={"companies": CSV("data/b.csv")}).freeze()
    assert before.datasets["companies"]["path"] == "data/a.csv"
    [change] = before.diff(after)
    assert (change.step, change.what) == (None, "datasets.companies")
