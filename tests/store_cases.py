"""Shared helpers for the store and cache tests.

- :data:`CALLS` counts step executions (thread-safe), so cache hits are proven by counters;
  each test module resets it in an autouse fixture. :func:`bump` / :func:`count` count in
  files instead, for steps that run in other processes.
- :func:`load_module` writes a module's source to a directory of its own and imports it
  fresh, so fingerprint tests edit real source files (one directory per variant: no stale
  ``.pyc`` or ``linecache`` entries when two variants are written within the same second).
- :func:`store_files` / :func:`damage` find and corrupt artifacts under a store directory;
  :func:`entries` / :func:`rewrite_entries` read and rewrite cache entries wherever the
  store keeps them (a local store's ``index.db``, or ``cache/`` objects).
- ``concurrent_pipeline``, ``session_pipeline``, ``shared_square`` and ``hash_samples``
  are imported by the subprocesses some tests start, so they live in an importable module.
- :class:`Blob` is a plain user class, so values of it go through the pickle serializer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import json
import sqlite3
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HEX32 = r"[0-9a-f]{32}"


class Calls:
    """A thread-safe counter of step executions by name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def total(self) -> int:
        return sum(self.counts.values())


CALLS = Calls()


class Blob:
    """A user object: stored with pickle, compared by its state."""

    def __init__(self, payload: object) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and other.payload == self.payload

    def __hash__(self) -> int:
        return hash(repr(self.payload))

    def __repr__(self) -> str:
        return f"Blob({self.payload!r})"


@dataclasses.dataclass(frozen=True)
class Point:
    """A user dataclass."""

    x: float
    y: float


class Color(enum.Enum):
    """A user enum."""

    RED = 1
    GREEN = 2


class Stateful:
    """A plain object hashed through its state (no registered hasher)."""

    def __init__(self, a: object, b: object) -> None:
        self.a = a
        self.b = b


def load_module(directory: Path, name: str, source: str, *, extra: dict[str, str] | None = None):
    """Write ``name.py`` (and ``extra`` modules) into ``directory`` and import them fresh.

    Earlier modules of the same names are dropped from ``sys.modules`` first; the directory
    is on ``sys.path`` only while importing (modules keep their ``__file__``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    modules = {name: source, **(extra or {})}
    for module_name, text in modules.items():
        (directory / f"{module_name}.py").write_text(textwrap.dedent(text))
        sys.modules.pop(module_name, None)
    importlib.invalidate_caches()
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))


def forget_modules(*names: str) -> None:
    """Drop modules written by :func:`load_module` from ``sys.modules``."""
    for module_name in names:
        sys.modules.pop(module_name, None)


def store_files(root: Path, kind: str = "objects") -> list[Path]:
    """Every file under ``<root>/<kind>`` (``objects``, ``cache``), sorted; for
    ``objects``, the artifacts a local store keeps inline in ``index.db`` too (as
    :class:`InlineArtifact`, which reads, writes, renames and unlinks like a file)."""
    files = sorted(p for p in (root / kind).rglob("*") if p.is_file())
    if kind == "objects":
        files += inline_artifacts(root)  # type: ignore[arg-type]
    return files


class InlineArtifact:
    """An artifact kept inline in a local store's ``index.db`` (table ``artifacts``),
    with the few ``Path`` methods the tests use on artifact files."""

    def __init__(self, database: Path, path: str) -> None:
        self.database = database
        self.path = path  # objects/ab/<version>.<serializer>

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[-1]

    def _sql(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.database)) as connection, connection:
            return connection.execute(query, args).fetchall()

    def read_bytes(self) -> bytes:
        rows = self._sql("SELECT data FROM artifacts WHERE path = ?", self.path)
        if not rows:
            raise FileNotFoundError(self.path)
        return bytes(rows[0][0])  # type: ignore[arg-type]

    def write_bytes(self, data: bytes) -> None:
        self._sql(
            "INSERT INTO artifacts (path, data) VALUES (?, ?) "
            "ON CONFLICT (path) DO UPDATE SET data = excluded.data",
            self.path,
            data,
        )

    def exists(self) -> bool:
        return bool(self._sql("SELECT 1 FROM artifacts WHERE path = ?", self.path))

    is_file = exists

    def unlink(self) -> None:
        self._sql("DELETE FROM artifacts WHERE path = ?", self.path)

    def with_suffix(self, suffix: str) -> InlineArtifact:
        return InlineArtifact(self.database, self.path.rsplit(".", 1)[0] + suffix)

    def rename(self, target: InlineArtifact) -> InlineArtifact:
        self._sql("UPDATE artifacts SET path = ? WHERE path = ?", target.path, self.path)
        return target

    def __lt__(self, other: object) -> bool:
        return str(self) < str(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InlineArtifact) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __str__(self) -> str:
        return f"{self.database}[{self.path}]"

    __repr__ = __str__


def inline_artifacts(root: Path) -> list[InlineArtifact]:
    """The artifacts kept inline in ``<root>/index.db``, sorted by path."""
    database = root / "index.db"
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(database)) as connection:
        try:
            rows = connection.execute("SELECT path FROM artifacts ORDER BY path").fetchall()
        except sqlite3.OperationalError:  # an index of an earlier version
            return []
    return [InlineArtifact(database, str(row[0])) for row in rows]


def entries(root: Path) -> dict[str, bytes]:
    """Cache entries by key, wherever the store keeps them: rows of ``index.db`` (a local
    store's SQLite index) or ``cache/**/<key>.json`` files. Binary entries (a local
    store's form) are given as their JSON view (:func:`json_view`), so tests read and
    forge every entry as JSON."""
    return {key: json_view(data) for key, data in raw_entries(root).items()}


def raw_entries(root: Path) -> dict[str, bytes]:
    """Cache entries by key as stored (binary in ``index.db``, JSON in ``cache/``)."""
    found = {p.stem: p.read_bytes() for p in store_files(root, "cache")}
    database = root / "index.db"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as connection:
            found.update(
                (key, bytes(data))
                for key, data in connection.execute("SELECT key, data FROM entries")
            )
    return found


def json_view(data: bytes) -> bytes:
    """A binary entry as the JSON an earlier plait stored (its signature, if any, in a
    ``"signature"`` field); anything else unchanged."""
    from plait.store.entries import MAGIC, decode_body, split_binary

    if data[:4] != MAGIC:
        return data
    signature, body = split_binary(data)
    raw = json.loads(decode_body(body).to_json())
    if signature is not None:
        raw["signature"] = signature
    return json.dumps(raw, separators=(",", ":")).encode()


def from_view(view: bytes) -> bytes:
    """The binary form of a (possibly forged) JSON view, its signature copied as it is
    (never recomputed: a forger has no secret); a view that is no entry stays as it is."""
    from plait.store.entries import Entry, encode_entry

    try:
        raw = json.loads(view)
        signature = raw.pop("signature", None)
        entry = Entry.from_raw(raw)
        if signature is None:
            return encode_entry(entry)
        return encode_entry(entry, lambda body: str(signature).ljust(64, "0")[:64])
    except (ValueError, KeyError, TypeError, AttributeError):
        return view


def rewrite_entries(root: Path, transform: Callable[[bytes], bytes]) -> int:
    """Replace every cache entry by ``transform(entry)`` (a binary entry is given as its
    JSON view and written back in binary form when the result is still an entry); return
    how many there were."""
    for path in store_files(root, "cache"):
        path.write_bytes(transform(path.read_bytes()))
    database = root / "index.db"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as connection, connection:
            rows = connection.execute("SELECT key, data FROM entries").fetchall()
            connection.executemany(
                "UPDATE entries SET data = ? WHERE key = ?",
                [(_rewritten(bytes(data), transform), key) for key, data in rows],
            )
    return len(entries(root))


def _rewritten(data: bytes, transform: Callable[[bytes], bytes]) -> bytes:
    from plait.store.entries import MAGIC

    if data[:4] != MAGIC:
        return transform(data)
    view = json_view(data)
    changed = transform(view)
    try:  # an entry the transform left as it was keeps its bytes (marshal's output
        same = json.loads(changed) == json.loads(view)  # is not canonical)
    except ValueError:
        same = False
    return data if same else from_view(changed)


def damage(path: Path, how: str) -> None:
    """Corrupt a file in place: ``"flip"`` bytes (same size), ``"truncate"`` it, or
    ``"garbage"`` (replace it by unrelated bytes)."""
    data = path.read_bytes()
    if how == "flip":
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = b"\x00not what was stored\xff"
    else:  # pragma: no cover - a typo in a test
        raise ValueError(how)
    path.write_bytes(data)


def bump(folder: str, name: str) -> None:
    """Count one call in a file (works across processes: one short append is atomic)."""
    with open(Path(folder, f"{name}.calls"), "a") as handle:
        handle.write(".")


def count(folder: str | Path, name: str) -> int:
    """How many times :func:`bump` counted ``name``."""
    path = Path(folder, f"{name}.calls")
    return len(path.read_text()) if path.exists() else 0


# -- a pipeline for the multi-process store test (importable by worker processes) ---------


def remote_steps() -> list[object]:
    """``raw`` (a dict holding a tuple) -> ``summary`` (a :class:`Blob`), counted in
    :data:`CALLS`: the steps the remote store tests (Redis, S3) run with param ``n``."""
    from plait import step

    @step
    def raw(n):
        CALLS.hit("raw")
        return {"rows": list(range(n)), "pair": (n, -n)}

    @step
    def summary(raw):
        CALLS.hit("summary")
        return Blob(sum(raw["rows"]))

    return [raw, summary]


#: The outputs of :func:`remote_steps` for ``n=4``.
REMOTE_EXPECTED = {"raw": {"rows": [0, 1, 2, 3], "pair": (4, -4)}, "summary": Blob(6)}


def concurrent_pipeline():
    """``seed -> spread (map) -> folded``, plus ``blob`` (a pickled object)."""
    from plait import Pipeline, step

    @step
    def seed(n):
        return list(range(n))

    @step(map="seed")
    def spread(seed, n):
        return seed * n

    @step
    def folded(spread):
        return sum(spread)

    @step
    def blob(n):
        return Blob({"n": n, "pair": (n, -n)})

    return Pipeline([seed, spread, folded, blob], name="concurrent")


def concurrent_expected(n: int) -> dict[str, object]:
    """The outputs of :func:`concurrent_pipeline` for param ``n``."""
    seed = list(range(n))
    spread = [i * n for i in seed]
    return {
        "seed": seed,
        "spread": spread,
        "folded": sum(spread),
        "blob": Blob({"n": n, "pair": (n, -n)}),
    }


def _per_process(n):
    CALLS.hit("per_process")
    return n * 2


def session_pipeline():
    """One step whose entries expire with the process that wrote them (module-level, so
    worker processes import it by reference)."""
    from plait import Pipeline, expire, step

    per_process = step(_per_process, name="per_process", expire=expire.session())
    return Pipeline([per_process], name="session")


def shared_square(x: int, folder: str) -> int:
    """Counted in ``folder`` (works across processes); memoized by the ``@cached`` tests."""
    bump(folder, "shared_square")
    return x * x


def hash_samples() -> list[object]:
    """Values whose data versions must not depend on the process or ``PYTHONHASHSEED``
    (string sets and dicts are where hash randomisation would show)."""
    return [
        {"b": 1, "a": 2, "c": {"x", "y", "z"}},
        {"alpha", "beta", "gamma", "delta"},
        frozenset({("k", 1), ("j", 2)}),
        Point(1.0, 2.0),
        Color.GREEN,
        Stateful({"s", "t"}, [1, 2]),
        Blob("payload"),
        {"nested": [{"q": frozenset({"m", "n"})}]},
        {10**30: "big key", -(2**70): {"deep": ("t", None)}},
    ]


# -- the fault-injection pipeline (imported by the processes the fault tests start) ------
#
# Seven steps whose outputs cover every artifact kind: JSON (``source``, ``summary``),
# ``.npy`` (``matrix``, ``scaled``), Parquet (``table``) and pickle (``blob``, ``final``).
# Each step counts its calls with :func:`bump` and appends ``start``/``done`` lines to
# ``<folder>/progress``; a step finds ``<folder>/block-<name>`` waits there (having touched
# ``<folder>/blocked-<name>``) until the file is gone, so a test kills the process at a
# point it chose, synchronised through files rather than timing.

FAULT_STEPS = ("source", "matrix", "table", "blob", "summary", "scaled", "final")
FAULT_KINDS = {"source": "json", "matrix": "npy", "table": "parquet", "blob": "pickle"}
FAULT_PARENTS = {
    "source": (),
    "matrix": ("source",),
    "table": ("source",),
    "blob": ("matrix", "table"),
    "summary": ("blob",),
    "scaled": ("matrix",),
    "final": ("summary", "scaled"),
}


def ancestors(name: str) -> set[str]:
    """Every step ``name`` depends on, transitively (in :data:`FAULT_PARENTS`)."""
    found: set[str] = set()
    todo = list(FAULT_PARENTS[name])
    while todo:
        parent = todo.pop()
        if parent not in found:
            found.add(parent)
            todo.extend(FAULT_PARENTS[parent])
    return found


def _progress(folder: str, line: str) -> None:
    with open(Path(folder, "progress"), "a") as handle:
        handle.write(line + "\n")


def fault_begin(folder: str, name: str) -> None:
    """Count a call, log its start, and wait while ``block-<name>`` exists (at most 120 s)."""
    import time

    bump(folder, name)
    _progress(folder, f"start {name}")
    block = Path(folder, f"block-{name}")
    if block.exists():
        Path(folder, f"blocked-{name}").touch()
        deadline = time.monotonic() + 120
        while block.exists() and time.monotonic() < deadline:
            time.sleep(0.01)


def fault_pipeline(name: str = "faults"):
    """The seven-step pipeline described above (params ``n`` and ``folder``)."""
    import numpy as np
    import pandas as pd

    from plait import Pipeline, step

    @step
    def source(n, folder):
        fault_begin(folder, "source")
        _progress(folder, "done source")
        return {"values": list(range(n))}

    @step
    def matrix(source, folder):
        fault_begin(folder, "matrix")
        _progress(folder, "done matrix")
        return np.arange(len(source["values"]) * 3, dtype=np.float64).reshape(-1, 3)

    @step
    def table(source, folder):
        fault_begin(folder, "table")
        _progress(folder, "done table")
        values = source["values"]
        return pd.DataFrame({"v": values, "sq": [v * v for v in values]})

    @step
    def blob(matrix, table, folder):
        fault_begin(folder, "blob")
        _progress(folder, "done blob")
        return Blob((float(matrix.sum()), int(table["sq"].sum())))

    @step
    def summary(blob, folder):
        fault_begin(folder, "summary")
        _progress(folder, "done summary")
        return {"total": blob.payload[0] + blob.payload[1]}

    @step
    def scaled(matrix, folder):
        fault_begin(folder, "scaled")
        _progress(folder, "done scaled")
        return matrix * 2.5

    @step
    def final(summary, scaled, folder):
        fault_begin(folder, "final")
        _progress(folder, "done final")
        return (summary["total"], float(scaled.max()))

    return Pipeline([source, matrix, table, blob, summary, scaled, final], name=name)


def fault_expected(n: int) -> dict[str, object]:
    """The outputs of :func:`fault_pipeline` for param ``n``, computed without plait."""
    import numpy as np
    import pandas as pd

    values = list(range(n))
    matrix = np.arange(n * 3, dtype=np.float64).reshape(-1, 3)
    table = pd.DataFrame({"v": values, "sq": [v * v for v in values]})
    blob = Blob((float(matrix.sum()), int(table["sq"].sum())))
    total = blob.payload[0] + blob.payload[1]
    scaled = matrix * 2.5
    return {
        "source": {"values": values},
        "matrix": matrix,
        "table": table,
        "blob": blob,
        "summary": {"total": total},
        "scaled": scaled,
        "final": (total, float(scaled.max())),
    }


def same_outputs(got: dict[str, object], expected: dict[str, object]) -> list[str]:
    """The names whose values differ (type, dtype, shape or content); [] when all agree."""
    import numpy as np
    import pandas as pd

    wrong = []
    for name, want in expected.items():
        have = got.get(name, "<missing>")
        if type(have) is not type(want):
            wrong.append(name)
        elif isinstance(want, np.ndarray):
            if have.dtype != want.dtype or not np.array_equal(have, want):  # type: ignore[union-attr]
                wrong.append(name)
        elif isinstance(want, pd.DataFrame):
            if not want.equals(have):
                wrong.append(name)
        elif have != want:
            wrong.append(name)
    return wrong


def snapshot(directory: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every path under ``directory`` (outside ``skip``) with its size and mtime: compare
    two snapshots to prove nothing there was created, changed or deleted."""
    found: dict[str, tuple[int, int]] = {}
    skipped = {p.resolve() for p in skip}
    for path in directory.rglob("*"):
        if any(path.resolve() == s or s in path.resolve().parents for s in skipped):
            continue
        stat = path.lstat()
        found[str(path)] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return found


def big_pipeline():
    """``big`` (a 16 MB array: its artifact takes a while to write) -> ``total``."""
    import numpy as np

    from plait import Pipeline, step

    @step
    def big(folder):
        bump(folder, "big")
        return np.arange(2_000_000, dtype=np.float64)

    @step
    def total(big, folder):
        bump(folder, "total")
        return float(big.sum())

    return Pipeline([big, total], name="big")


def stream_pipeline():
    """A map step over ``items`` whose elements log to ``<folder>/progress``: a long
    stream of artifact, entry and history writes."""
    from plait import Pipeline, step

    @step(map="items")
    def element(items, folder):
        _progress(folder, str(items))
        return {"item": items, "payload": list(range(items % 50))}

    @step
    def gathered(element):
        return sum(e["item"] for e in element)

    return Pipeline([element, gathered], name="stream")
