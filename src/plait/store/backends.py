"""Byte stores under a root: a local directory, or any fsspec URL.

Both offer the same five calls on relative, ``/``-separated paths (so does the Redis
backend, :mod:`plait.store.redis_backend`). Writes are atomic:
the local backend writes a temporary file in the target's directory, fsyncs it when asked,
and renames it into place; object stores (S3, GCS...) publish an object whole on upload.
A reader therefore sees a complete file or none, and two writers of the same path (the
same content, since paths are content addresses) never corrupt each other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "open_backend"]

_REDIS_SCHEMES = ("redis", "rediss", "valkey", "valkeys")


class Backend(Protocol):
    """Reads and writes whole byte strings at relative paths."""

    url: str

    def read(self, path: str) -> bytes:
        """The bytes at ``path``; ``FileNotFoundError`` when there are none."""
        ...

    def write(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Publish ``data`` at ``path`` atomically (``durable``: survive a power cut)."""
        ...

    def exists(self, path: str) -> bool:
        """True when ``path`` holds bytes."""
        ...

    def delete(self, path: str) -> None:
        """Remove ``path`` if it exists."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Relative paths of every file under ``prefix``."""
        ...


class LocalBackend:
    """A directory on the local file system."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path)

    def read(self, path: str) -> bytes:
        """Read a whole file."""
        with open(self._path(path), "rb") as handle:
            return handle.read()

    def write(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Write to a temporary sibling, then rename over ``path``."""
        target = self._path(path)
        directory = os.path.dirname(target)
        temp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
        try:
            handle = open(temp, "wb")  # noqa: SIM115 - closed below, before the rename
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            handle = open(temp, "wb")  # noqa: SIM115
        try:
            with handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def exists(self, path: str) -> bool:
        """True when the file exists."""
        return os.path.exists(self._path(path))

    def delete(self, path: str) -> None:
        """Remove the file if present."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(path))

    def list(self, prefix: str) -> Iterator[str]:
        """Walk the directory ``prefix``, skipping temporary files."""
        base = self._path(prefix)
        for directory, _, files in os.walk(base):
            for name in files:
                if not name.endswith(".tmp"):
                    full = os.path.join(directory, name)
                    yield os.path.relpath(full, self.root).replace(os.sep, "/")


class FsspecBackend:
    """Any fsspec file system (``s3://bucket/prefix``, ``gcs://...``, ``memory://...``)."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs

        self.url = url
        self.fs, self.root = url_to_fs(url, **storage_options)
        self.root = self.root.rstrip("/")

    def _path(self, path: str) -> str:
        return f"{self.root}/{path}"

    def read(self, path: str) -> bytes:
        """Fetch an object."""
        return bytes(self.fs.cat_file(self._path(path)))

    def write(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Upload an object (published whole by the object store)."""
        self.fs.pipe_file(self._path(path), data)

    def exists(self, path: str) -> bool:
        """True when the object exists."""
        return bool(self.fs.exists(self._path(path)))

    def delete(self, path: str) -> None:
        """Remove the object if present."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(path))

    def list(self, prefix: str) -> Iterator[str]:
        """Every object under ``prefix``."""
        base = self._path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(self.root) + 1
        for full in found:
            yield full[strip:] if full.startswith(self.root) else full


def open_backend(url: str, **storage_options: Any) -> Backend:
    """A backend for a path or URL (``file://`` and plain paths are local;
    ``redis://``, ``rediss://``, ``valkey://`` a Redis database, see
    :mod:`plait.store.redis_backend`)."""
    if url.partition("://")[0] in _REDIS_SCHEMES and "://" in url:
        from plait.store.redis_backend import RedisBackend

        return RedisBackend(url, **storage_options)
    if "://" not in url or url.startswith("file://"):
        return LocalBackend(url.removeprefix("file://"))
    return FsspecBackend(url, **storage_options)
