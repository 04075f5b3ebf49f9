"""Data versions of dataset files: their content hash, confirmed cheaply when unchanged.

Design note: the fast-path rule
-------------------------------
A source's data version is the hash of its file's bytes (xxh3-128, as ``input_files``).
Hashing a large file on every run would be slow, so the hash is remembered with the
file's *signature*, and a later run reuses it only when the signature proves the bytes are
the same:

- **local files**: ``(device, inode, size, mtime_ns, ctime_ns)``. Every write to a file,
  and every ``os.utime`` that puts an old mtime back, sets its ctime to the current time,
  and no system call lets a program set ctime; so an edit changes the signature even when
  the size and mtime were restored. Timestamps have a granularity (a few ms on ext4, 2 s
  on FAT), so a second write in the same tick as the first could leave the signature
  unchanged: a remembered hash is trusted only if the file's ctime and mtime were more
  than 2 s older than the moment the hash was taken ("racy" files, as git calls them, are
  hashed again until they are old enough). A file whose timestamps lie in the future is
  hashed every time.
- **object stores** that report an ETag (S3 and its clones): ``(size, ETag,
  LastModified)``. An object is never changed in place, and a new object with other
  bytes gets another ETag.
- **anything else** (``memory://``, HTTP...): no signature; hashed every time.

What could still fool the rule: a clock set backwards, or bytes changed under the file
system (a raw disk write). Confirming an unchanged local file costs one ``stat`` and a
dictionary lookup (about 2 µs; the remembered hash is read from the store's
``datasets/files/`` once per process). The hash is remembered only when the signature
was the same before and after hashing, so a file changing while it is read is hashed
again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["RACY_NS", "FileVersions", "signature"]

RACY_NS = 2_000_000_000  # a file changed less than this before its hash is not trusted

_MEMO: dict[tuple[str, str], _Known] = {}  # (store URL or "", path) -> what was hashed
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Known:
    signature: tuple[Any, ...]
    version: str
    hashed_at_ns: int


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def signature(fs: Any, path: str) -> tuple[Any, ...] | None:
    """What proves a file unchanged, or None when nothing does (see the module's rule).

    Raises:
        FileNotFoundError: When there is no such file.
    """
    if _is_local(fs):
        st = os.stat(path)
        return ("local", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    info = fs.info(path)
    etag = info.get("ETag") or info.get("etag")
    if not etag:
        return None
    return ("etag", info.get("size"), str(etag), str(info.get("LastModified", "")))


def _trusted(known: _Known, now: tuple[Any, ...] | None) -> bool:
    if now is None or known.signature != now:
        return False
    if now[0] == "local":  # not racy: both timestamps well before the hash was taken
        return bool(known.hashed_at_ns - max(now[4], now[5]) > RACY_NS)
    return True


def content_hash(fs: Any, path: str) -> str:
    """The hash of a file's bytes (the same for a local file and a remote copy)."""
    from plait.store._hash_core import new_hasher
    from plait.store.hashing import file_version

    if _is_local(fs):
        return file_version(path)
    hasher = new_hasher()
    with fs.open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            hasher.update(block)
    return str(hasher.hexdigest())


class FileVersions:
    """Content versions of files, remembered per store (in memory, and in the store's
    ``datasets/files/`` so another process confirms an unchanged file without reading it).

    Args:
        store: The run's store, or None (remembered in this process only).
    """

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.url = "" if store is None else str(store.url)

    def version(self, fs: Any, path: str) -> str:
        """The content version of ``path`` in ``fs``.

        Raises:
            FileNotFoundError: When there is no such file.
        """
        key = (self.url, path)
        before = signature(fs, path)
        known = _MEMO.get(key)
        if known is None and self.store is not None and before is not None:
            known = self._read(path)
        if known is not None and _trusted(known, before):
            _MEMO[key] = known
            return known.version
        hashed_at = time.time_ns()
        version = content_hash(fs, path)
        if before is not None and signature(fs, path) == before:
            self._remember(path, _Known(before, version, hashed_at))
        return version

    def _record_path(self, path: str) -> str:
        return f"datasets/files/{hashlib.blake2b(path.encode(), digest_size=16).hexdigest()}.json"

    def _read(self, path: str) -> _Known | None:
        assert self.store is not None
        try:
            raw = json.loads(self.store.backend.read(self._record_path(path)))
            if raw.get("path") != path:
                return None
            return _Known(tuple(raw["signature"]), str(raw["version"]), int(raw["hashed_at_ns"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remember(self, path: str, known: _Known) -> None:
        with _LOCK:
            _MEMO[(self.url, path)] = known
        if self.store is None:
            return
        record = {
            "path": path,
            "signature": list(known.signature),
            "version": known.version,
            "hashed_at_ns": known.hashed_at_ns,
        }
        with contextlib.suppress(OSError):  # an optimisation: the next run hashes again
            self.store.backend.write(self._record_path(path), json.dumps(record).encode())
