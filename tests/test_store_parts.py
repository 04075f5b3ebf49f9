"""Where a store keeps each step's last key parts (what a miss's reason and ``plait why``
compare against): ``steps.db`` in a local store, written once per run, while the
``steps/<pipeline>/<step>.json`` files of older stores are still read.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from plait import Pipeline, Store, step

CALLS: Counter[str] = Counter()


@step
def first(x: int) -> int:
    CALLS["first"] += 1
    return x + 1


@step
def second(first: int) -> int:
    CALLS["second"] += 1
    return first * 2


def _run(store: Path | Store, x: int):
    return Pipeline([first, second], name="parts").run(params={"x": x}, store=store)


def _parts_rows(store: Path) -> list[tuple[str, dict[str, object]]]:
    with sqlite3.connect(store / "steps.db") as db:
        rows = db.execute("SELECT name, data FROM parts ORDER BY name").fetchall()
    return [(name, json.loads(data)) for name, data in rows]


def test_a_local_store_keeps_key_parts_in_steps_db_not_a_file_per_step(tmp_path):
    store = tmp_path / "store"
    assert _run(store, 1)["second"] == 4
    assert not (store / "steps").exists()
    rows = _parts_rows(store)
    assert [name.split("/")[2].split("-")[0] for name, _ in rows] == ["first", "second"]
    assert all("code" in parts and "recorded_at" in parts for _, parts in rows)
    changed = _run(store, 2)
    assert changed.steps["first"].reason == "input 'x' changed"
    assert changed.steps["second"].reason == "input 'first' changed"


def test_the_parts_files_of_an_older_store_are_still_read(tmp_path):
    store = tmp_path / "store"
    with Store(store) as opened:
        _run(opened, 1)
    for name, parts in _parts_rows(store):  # the layout an older plait wrote
        path = store / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(parts))
    (store / "steps.db").unlink()
    for suffix in ("-wal", "-shm"):
        (store / f"steps.db{suffix}").unlink(missing_ok=True)
    with Store(store) as opened:
        assert opened.last_parts("parts", "first") is not None
        changed = _run(opened, 5)
    assert changed.steps["first"].reason == "input 'x' changed"
    # the new parts went to steps.db and are read before the old file
    assert _run(store, 6).steps["first"].reason == "input 'x' changed"


def test_a_damaged_parts_file_only_costs_the_reason(tmp_path, caplog):
    store = tmp_path / "store"
    with Store(store) as opened:
        _run(opened, 1)
    (store / "steps.db").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (store / f"steps.db{suffix}").unlink(missing_ok=True)
    CALLS.clear()
    with Store(store) as opened:
        changed = _run(opened, 2)
    assert changed["second"] == 6
    assert CALLS == {"first": 1, "second": 1}
    assert changed.steps["first"].reason == "no entry (first run)"
    assert "could not record why" in caplog.text
