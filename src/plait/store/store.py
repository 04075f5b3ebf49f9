"""The store: content-addressed artifacts and the cache entries that point at them.

Layout under the root (a directory or an fsspec URL)::

    objects/ab/<data version>.<serializer>   one value's bytes, content-addressed
    index.db (or cache/cd/<key>.json remote) a step's cached outputs (entries), and in a
                                             local store the artifacts of at most
                                             INLINE_MAX bytes (table artifacts, keyed by
                                             the same objects/... path)
    steps/<pipeline>/<step>.json             the last key parts of a step (for "why"):
                                             in steps.db (table parts) for a local store;
                                             files of older stores are still read

An entry is written after its file artifacts, and with its inline ones in one transaction,
so an entry never points at a missing object. Readers look inline first, then for a file
(:meth:`Store.read_artifact`).
Every artifact's size and xxh3 checksum are in its entry and verified on read: a damaged
or truncated artifact is logged and treated as a miss (the step is recomputed), never
returned. Fields read from the store never reach a path unchecked: a data version is hex,
a serializer name a short word (:class:`ArtifactRef` refuses anything else), so a crafted
entry cannot read or delete a file outside the store.

With a secret (``Store(secret=...)`` or ``PLAIT_SECRET``), every artifact and every entry
is signed (:mod:`plait.store.signing`): an entry that is unsigned, signed with another key
or edited is a miss, an artifact whose signature does not match is refused, and neither is
ever deleted (two processes with different keys leave each other's work alone). A store
written with a secret and opened without one is refused (:class:`StoreSecretError`). The
secret never travels inside a pickled ``Store``: a worker reads ``PLAIT_SECRET`` from its
own environment. Without a secret, whoever can write the store decides what a hit
returns and can run code through a pickled artifact: see ``docs/trust.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.assets._catalog import Catalog
    from plait.history import History

from plait.errors import PlaitError
from plait.store._entry_io import check_secret, read_entry, write_entry
from plait.store.backends import Backend, LocalBackend, open_backend
from plait.store.entries import ArtifactRef, CorruptArtifact, Entry, checksum, parse_entry
from plait.store.index import FileIndex, Index, PartsFile, SQLiteIndex
from plait.store.serializers import serializer_for, serializer_named
from plait.store.signing import Signer

__all__ = ["INLINE_MAX", "SESSION", "ArtifactRef", "CorruptArtifact", "Entry", "Store"]

_log = logging.getLogger("plait.store")

SESSION = uuid.uuid4().hex  # this process: for expire.session()
INLINE_MAX = 64 * 1024  # bytes: a local store keeps artifacts up to this size in index.db


@functools.lru_cache(maxsize=4096)
def _safe(name: str) -> str:
    """A file-name-safe form of a pipeline or step name (readable, collision-free)."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{clean}-{digest}"


class Store:
    """Artifacts on disk (or any fsspec URL) plus the cache index.

    Args:
        url: A directory (default ``.plait``) or an fsspec URL such as ``s3://bucket/x``.
        history: Where runs are recorded: a SQLite path, ``duckdb:///...`` or
            ``postgresql://...``; default ``history.db`` in a local store; False: none.
        secret: Key for signing pickled artifacts (default: ``PLAIT_SECRET`` if set).
        storage_options: Passed to fsspec for remote URLs (credentials, endpoint...).
        project: The project the runs recorded through this store belong to (recorded
            with each run; None: no project).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] = ".plait",
        *,
        secret: str | bytes | None = None,
        history: str | bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        project: str | None = None,
    ) -> None:
        self.url = os.fspath(url)
        self.project = project
        self.backend: Backend = open_backend(self.url, **dict(storage_options or {}))
        secret = secret if secret is not None else os.environ.get("PLAIT_SECRET")
        secret = secret.encode() if isinstance(secret, str) else secret
        self._signer = Signer(secret) if secret else None
        self._history_url = history
        self._history: History | None = None
        self._index: Index | None = None
        self._parts: PartsFile | None = None
        self._has_legacy_parts: bool | None = None

    @property
    def history(self) -> History:
        """The run history: ``history=`` if given, else ``history.db`` (SQLite) in a local
        store's directory.

        Raises:
            PlaitError: For a remote store with no ``history=`` URL.
        """
        if self._history is None:
            url = self._history_url
            if url is False:
                raise PlaitError(f"store {self.url!r} was opened with history=False")
            if url is None or url is True:
                if not isinstance(self.backend, LocalBackend):
                    raise PlaitError(
                        f"store {self.url!r} is remote: give it a history database, e.g. "
                        "Store(url, history='postgresql://...') or a local SQLite path"
                    )
                url = os.path.join(self.backend.root, "history.db")
            from plait.history import History

            self._history = History(url, signer=self._signer)
            self._history.project = self.project  # experiments list this project's runs
        return self._history

    @property
    def catalog(self) -> Catalog:
        """The asset catalog (datasets, models, metrics) kept in the history: see
        :class:`plait.assets.Catalog`; scoped to ``project`` when the store has one."""
        from plait.assets._catalog import Catalog

        return Catalog(self.history, self, self.project)

    @property
    def has_history(self) -> bool:
        """True when runs on this store are recorded."""
        if self._history_url is False:
            return False
        return self._history_url is not None or isinstance(self.backend, LocalBackend)

    def close(self) -> None:
        """Close the store's database connections (they reopen on next use)."""
        if self._history is not None:
            self._history.close()
        if isinstance(self._index, SQLiteIndex):
            self._index.close()
        if self._parts is not None:
            self._parts.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Never the secret: a worker reads PLAIT_SECRET from its own environment.
        return (_rebuild_store, (self.url, self._history_url, self.project))

    def check_secret(self) -> None:
        """Refuse, up front, a store written with a secret when this one has none.

        Peeks at one cache entry: cheap enough to call before every run.

        Raises:
            StoreSecretError: When an entry is signed and this store has no secret.
        """
        if self._signer is not None:
            return
        try:
            data = self.index.first()
        except (OSError, sqlite3.Error):
            return  # a damaged index is set aside and rebuilt by the lookups
        if data is not None:
            check_secret(data, self.url)

    @property
    def signed(self) -> bool:
        """True when this store signs what it writes and checks what it reads."""
        return self._signer is not None

    # -- artifacts -----------------------------------------------------------------
    def verify_artifact(self, ref: ArtifactRef, data: bytes) -> bool:
        """True when ``data`` is signed as ``ref`` says (always True without a secret)."""
        if self._signer is None:
            return True
        return self._signer.verify(
            ref.signature, "artifact", ref.version.encode(), ref.serializer.encode(), data
        )

    def _artifact_signature(self, version: str, serializer: str, data: bytes) -> str | None:
        if self._signer is None:
            return None
        return self._signer.sign("artifact", version.encode(), serializer.encode(), data)

    def _index_first(self) -> None:
        """Make sure a local index file exists before anything else is written, so that an
        index found absent beside artifacts was really lost (see ``SQLiteIndex``)."""
        index = self.index
        if isinstance(index, SQLiteIndex):
            index.ensure()

    def put(
        self, value: Any, version: str, *, inline: list[tuple[str, bytes]] | None = None
    ) -> ArtifactRef:
        """Store ``value`` (whose data version is ``version``) and return its reference.

        With ``inline`` (a list), a local store keeps an artifact of at most
        :data:`INLINE_MAX` bytes in its index instead of a file: its (path, bytes) are
        appended to ``inline`` and written with the entry that names them, in one
        transaction (``save(entry, inline=...)``). Larger ones, and a remote store's,
        are files (objects) written here, before their entry.
        """
        self._index_first()
        serializer = serializer_for(value)
        try:
            data = serializer.dumps(value)
        except Exception:
            if serializer.name == "pickle":
                raise
            serializer = serializer_named("pickle")
            data = serializer.dumps(value)
        ref = ArtifactRef(
            version,
            serializer.name,
            checksum(data),
            len(data),
            self._artifact_signature(version, serializer.name, data),
        )
        if inline is not None and len(data) <= INLINE_MAX and isinstance(self._index, SQLiteIndex):
            inline.append((ref.path, data))
        elif not self.backend.exists(ref.path):
            self.backend.write(ref.path, data)
        return ref

    def read_artifact(self, path: str) -> bytes:
        """The stored bytes at an artifact's ``path``: inline in the index, else its file.

        Raises:
            FileNotFoundError: When it is in neither place.
        """
        index = self.index
        if isinstance(index, SQLiteIndex):
            try:
                data = index.artifact(path)
            except sqlite3.Error as exc:
                raise OSError(f"cannot read artifact {path}: {exc}") from exc
            if data is not None:
                return data
        return self.backend.read(path)

    def delete_artifact(self, path: str) -> None:
        """Delete the artifact at ``path`` wherever it is (inline and/or file)."""
        self.delete_inline_artifacts([path])
        self.backend.delete(path)

    def inline_artifact_paths(self) -> list[str]:
        """The paths of the artifacts kept inline in a local store's index."""
        index = self.index
        return index.artifact_paths() if isinstance(index, SQLiteIndex) else []

    def delete_inline_artifacts(self, paths: list[str] | None) -> int:
        """Delete the inline artifacts at ``paths`` (None: every one); return how many."""
        index = self.index
        if not isinstance(index, SQLiteIndex) or paths == []:
            return 0
        return index.delete_artifacts(paths)

    def get(self, ref: ArtifactRef) -> Any:
        """Read and verify an artifact.

        Raises:
            CorruptArtifact: When it is missing, damaged, truncated, not signed right or
                does not load with its serializer.
        """
        try:
            data = self.read_artifact(ref.path)
        except FileNotFoundError as exc:
            raise CorruptArtifact(f"artifact {ref.path} is missing from {self.url}") from exc
        if len(data) != ref.size or checksum(data) != ref.checksum:
            # The ref is trusted (its entry was checked, and the path is a checked content
            # address): the bytes are what is wrong. Delete so the recomputed value is
            # written again.
            self.delete_artifact(ref.path)
            raise CorruptArtifact(
                f"artifact {ref.path} in {self.url} is damaged ({len(data)} bytes, expected "
                f"{ref.size}); it will be recomputed"
            )
        if not self.verify_artifact(ref, data):
            raise CorruptArtifact(
                f"artifact {ref.path} in {self.url} is not signed with this store's secret "
                "(PLAIT_SECRET): refusing to load it; it will be recomputed"
            )
        try:
            return serializer_named(ref.serializer).loads(data)
        except Exception as exc:
            # Bytes that match their entry but do not load (planted, or another format):
            # damaged, never a crash. Unsigned bytes are deleted so the recomputed value
            # is written again; signed ones are this store's own and are left alone.
            if self._signer is None:
                self.delete_artifact(ref.path)
            raise CorruptArtifact(
                f"artifact {ref.path} in {self.url} cannot be read as {ref.serializer} "
                f"({type(exc).__name__}: {exc}); it will be recomputed"
            ) from exc

    # -- cache entries ---------------------------------------------------------------
    @property
    def index(self) -> Index:
        """Where the entries live: SQLite for a local store, objects for a remote one."""
        if self._index is None:
            if isinstance(self.backend, LocalBackend):
                self._index = SQLiteIndex(os.path.join(self.backend.root, "index.db"))
            else:
                self._index = FileIndex(self.backend)
        return self._index

    def lookup(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or None (a damaged entry is a miss)."""
        try:
            data = self.index.get(key)
        except (OSError, sqlite3.Error) as exc:
            _log.warning("cannot read cache entry %s: %s", key, exc)
            return None
        if data is None:
            return None
        return read_entry(key, data, self._signer, self.url)

    def save(self, entry: Entry, *, inline: list[tuple[str, bytes]] | None = None) -> None:
        """Publish an entry, atomically: its file artifacts must already be stored, and
        the ``inline`` ones :meth:`put` collected are written with it in one transaction.

        A local store keeps the binary form (:func:`~plait.store.entries.encode_entry`);
        a remote one one JSON object per entry, as before."""
        index = self.index
        if inline and isinstance(index, SQLiteIndex):
            index.put_with(entry.key, self._encode(entry), inline)
        else:
            index.put(entry.key, self._encode(entry))

    def _encode(self, entry: Entry) -> bytes:
        return write_entry(entry, self._signer, binary=isinstance(self.index, SQLiteIndex))

    def drop(self, key: str) -> None:
        """Remove the entry under ``key``."""
        self.index.delete(key)

    def entries(self) -> Iterator[Entry]:
        """Every readable cache entry (in no particular order)."""
        for data in self.index.values():
            try:
                yield parse_entry(data)
            except (ValueError, KeyError, TypeError):
                continue

    # -- explanations ------------------------------------------------------------------
    @property
    def _parts_file(self) -> PartsFile | None:
        """Where a local store keeps its steps' last key parts (None: a remote store)."""
        if self._parts is None and isinstance(self.backend, LocalBackend):
            self._parts = PartsFile(os.path.join(self.backend.root, "steps.db"))
        return self._parts

    def _legacy_parts(self) -> bool:
        """True when a local store has the ``steps/`` folder of an older plait (looked at
        once per Store: a new store never writes one)."""
        if self._has_legacy_parts is None:
            self._has_legacy_parts = self.backend.exists("steps")
        return self._has_legacy_parts

    def _parts_path(self, pipeline: str, step: str) -> str:
        return f"steps/{_safe(pipeline)}/{_safe(step)}.json"

    def last_parts(self, pipeline: str, step: str) -> dict[str, Any] | None:
        """The key ingredients of the step's last execution, if recorded.

        A local store keeps them in ``steps.db``; a remote one, and a local store written
        before that, in ``steps/<pipeline>/<step>.json`` (still read).
        """
        path = self._parts_path(pipeline, step)
        parts = self._parts_file
        try:
            data = parts.get(path) if parts is not None else None
            if data is None:
                if parts is not None and not self._legacy_parts():
                    return None
                data = self.backend.read(path)
            parsed: dict[str, Any] = json.loads(data)
        except (OSError, ValueError, sqlite3.Error):
            return None
        return parsed

    def recorded_parts(self, pipeline: str) -> frozenset[str] | None:
        """Where the steps of ``pipeline`` that have recorded parts keep them (see
        :meth:`has_parts`), read at once; None when that cannot be listed cheaply (a
        remote store, or a local one with the ``steps/`` files of an older plait)."""
        parts = self._parts_file
        if parts is None or self._legacy_parts():
            return None
        prefix = f"steps/{_safe(pipeline)}/"
        try:
            return frozenset(parts.names(prefix))
        except sqlite3.Error:
            return None

    def has_parts(self, recorded: frozenset[str], pipeline: str, step: str) -> bool:
        """True when ``step`` is among :meth:`recorded_parts`' answer ``recorded``."""
        return self._parts_path(pipeline, step) in recorded

    def record_parts(self, pipeline: str, step: str, parts: Mapping[str, Any]) -> None:
        """Remember the key ingredients of a step's execution."""
        self.record_many_parts([(pipeline, step, parts)])

    def record_many_parts(self, items: list[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Remember the key ingredients of several executions (pipeline, step, parts), in
        one transaction for a local store."""
        if not items:
            return
        rows = [
            (self._parts_path(pipeline, step), json.dumps(dict(parts), separators=(",", ":")))
            for pipeline, step, parts in items
        ]
        where = self._parts_file
        if where is not None:
            self._index_first()
            try:
                where.put_many([(path, data.encode()) for path, data in rows])
            except sqlite3.Error as exc:
                raise OSError(f"cannot record the key parts of {len(rows)} step(s): {exc}") from exc
            return
        for path, data in rows:
            self.backend.write(path, data.encode())

    # -- maintenance (plait.store._maintenance) ----------------------------------------------
    def clear(self) -> int:
        """Delete every cache entry and artifact (files and inline ones), and what datasets
        remember between runs (``datasets/files/``, ``datasets/sinks/``); return how many
        were removed.

        Run history is kept, and with it each run's dataset records (``datasets/runs/``).
        """
        from plait.store._maintenance import clear

        return clear(self)

    def gc(
        self,
        *,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        keep_lineage: bool = False,
    ) -> dict[str, int]:
        """Drop old runs and what only they kept alive.

        Runs beyond the ``keep_last`` newest of each pipeline, or started more than
        ``older_than`` ago, are dropped: their records and their datasets' records
        (unless ``keep_lineage``, which keeps both, and lineage, while scrubbing values),
        the cache entries they wrote that no remaining run used, then every artifact no
        remaining entry references (files and inline ones). With neither argument, only
        unreferenced artifacts are removed. A run that produced an asset version with an
        alias (``catalog.tag(...)``) is never dropped, so that version stays loadable.

        Returns:
            Counts of removed ``runs``, ``entries`` and ``artifacts``.
        """
        from plait.store._maintenance import gc

        return gc(self, keep_last=keep_last, older_than=older_than, keep_lineage=keep_lineage)


def _rebuild_store(url: str, history: str | bool | None, project: str | None = None) -> Store:
    return Store(url, history=history, project=project)


def as_store(value: Any) -> Store | None:
    """Normalise ``store=`` arguments: a Store, a path or URL, or None (``PLAIT_STORE``)."""
    if value is None:
        env = os.environ.get("PLAIT_STORE")
        return Store(env) if env else None
    if isinstance(value, Store):
        return value
    if isinstance(value, str | os.PathLike):
        return Store(value)
    raise TypeError(f"store= takes a Store, a directory or a URL, got {value!r}")
