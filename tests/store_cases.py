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
    """Every file under ``<root>/<kind>`` (``objects``, ``cache``), sorted."""
    return sorted(p for p in (root / kind).rglob("*") if p.is_file())


def entries(root: Path) -> dict[str, bytes]:
    """Cache entries by key, wherever the store keeps them: rows of ``index.db`` (a local
    store's SQLite index) or ``cache/**/<key>.json`` files."""
    found = {p.stem: p.read_bytes() for p in store_files(root, "cache")}
    database = root / "index.db"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as connection:
            found.update(
                (key, bytes(data))
                for key, data in connection.execute("SELECT key, data FROM entries")
            )
    return found


def rewrite_entries(root: Path, transform: Callable[[bytes], bytes]) -> int:
    """Replace every cache entry by ``transform(entry)``; return how many there were."""
    for path in store_files(root, "cache"):
        path.write_bytes(transform(path.read_bytes()))
    database = root / "index.db"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as connection, connection:
            rows = connection.execute("SELECT key, data FROM entries").fetchall()
            connection.executemany(
                "UPDATE entries SET data = ? WHERE key = ?",
                [(transform(bytes(data)), key) for key, data in rows],
            )
    return len(entries(root))


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
