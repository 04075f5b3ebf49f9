"""The dataset protocol and the base of plait's file datasets.

Design note
-----------
A dataset is any object with ``load()`` and ``save(data)`` (Kedro's dataset protocol, so
``kedro-datasets`` objects work unchanged). plait's own datasets are :class:`FileDataset`
subclasses: one file at an fsspec path (local, ``s3://``, ``memory://``...), read through a
file handle and written in one piece (to a temporary file renamed into place on a local
disk, one PUT on an object store), so a reader never sees half a file.

``versioned=True`` keeps every save: ``save`` writes ``<path>/<version>/<file name>``, where
the version is the run id of the run that saved it (milliseconds since the epoch in hex, then
random digits: sortable by time) or, outside a run, a new id of the same form; ``load`` reads
the latest (the greatest version). Nothing heavy is imported until a dataset is used.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
import time
from collections.abc import Mapping
from typing import IO, Any, ClassVar, Protocol, runtime_checkable

from plait.errors import PlaitError

__all__ = ["Dataset", "DatasetError", "FileDataset", "dataset_path", "new_version"]

_VERSION = re.compile(r"^[0-9a-f]{12,}$")


class DatasetError(PlaitError, OSError):
    """A dataset could not be loaded or saved, or is misconfigured.

    Attributes:
        dataset: The dataset's name in the pipeline or catalog, when known.
    """

    def __init__(self, message: str, *, dataset: str | None = None) -> None:
        super().__init__(message)
        self.dataset = dataset


@runtime_checkable
class Dataset(Protocol):
    """What plait needs of a dataset: Kedro's protocol (``exists()`` is optional)."""

    def load(self) -> Any:
        """Read the data."""

    def save(self, data: Any) -> None:
        """Write ``data``."""


def new_version() -> str:
    """A fresh, time-sortable version id (the same form as a run id)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def dataset_path(dataset: Any) -> str | None:
    """The path a dataset reads and writes, if it says (plait's ``path``, Kedro's
    ``_filepath``); a local path is made absolute."""
    path = getattr(dataset, "path", None)
    if path is None:
        path = getattr(dataset, "_filepath", None)
    if path is None:
        return None
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if "://" in text:
        return text
    return os.path.abspath(text)


class FileDataset:
    """One file at an fsspec path, read and written by a format subclass.

    Args:
        path: A local path or an fsspec URL (``s3://bucket/key.csv``, ``memory://x.csv``).
        load_args: Keyword arguments for the reading function (``pandas.read_csv``...).
        save_args: Keyword arguments for the writing function (``DataFrame.to_csv``...).
        storage_options: Options of the fsspec filesystem (credentials, ``endpoint_url``).
        versioned: Keep every save under ``<path>/<version>/``; load the latest.
    """

    default_load_args: ClassVar[Mapping[str, Any]] = {}
    default_save_args: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        load_args: Mapping[str, Any] | None = None,
        save_args: Mapping[str, Any] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        versioned: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.load_args = {**self.default_load_args, **(load_args or {})}
        self.save_args = {**self.default_save_args, **(save_args or {})}
        self.storage_options = dict(storage_options or {})
        self.versioned = versioned

    # -- the format ----------------------------------------------------------------
    def read(self, handle: IO[bytes]) -> Any:
        """Parse the data from an open binary file (a subclass's job)."""
        raise NotImplementedError

    def write(self, data: Any, handle: IO[bytes]) -> None:
        """Write ``data`` to an open binary file (a subclass's job)."""
        raise NotImplementedError

    # -- the protocol --------------------------------------------------------------
    def load(self) -> Any:
        """Read the file (the latest version when versioned)."""
        fs, path = self.filesystem()
        where = self._load_target(fs, path)
        try:
            with fs.open(where, "rb") as handle:
                return self.read(handle)
        except FileNotFoundError as exc:
            raise DatasetError(f"{self!r}: {self.path!r} does not exist") from exc

    def save(self, data: Any, *, version: str | None = None) -> str:
        """Write ``data``; return the path written (under ``version`` when versioned)."""
        import io

        fs, path = self.filesystem()
        target, shown = path, self.path
        if self.versioned:
            version = version or new_version()
            name = posixpath.basename(path)
            target, shown = posixpath.join(path, version, name), _under(self.path, version, name)
        buffer = io.BytesIO()
        self.write(data, buffer)
        _write_bytes(fs, target, buffer.getvalue())
        return shown

    def exists(self) -> bool:
        """Whether there is something to load."""
        try:
            fs, path = self.filesystem()
            if self.versioned:
                return self.latest_version() is not None
            return bool(fs.isfile(path))
        except (OSError, ValueError):
            return False

    # -- paths and versions ----------------------------------------------------------
    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem and the path within it."""
        from fsspec.core import url_to_fs

        from plait.io._catalog import revealed

        fs, path = url_to_fs(self.path, **revealed(self.storage_options))
        return fs, str(path)

    def versions(self) -> list[str]:
        """The saved versions, oldest first (empty when not versioned)."""
        if not self.versioned:
            return []
        fs, path = self.filesystem()
        try:
            names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if _VERSION.match(n))

    def latest_version(self) -> str | None:
        """The greatest saved version, or None."""
        found = self.versions()
        return found[-1] if found else None

    def load_path(self) -> str:
        """The path ``load`` reads: the file, or its latest version's file."""
        if not self.versioned:
            return self.path
        fs, path = self.filesystem()
        target = self._load_target(fs, path)
        return _under(self.path, *target.split("/")[-2:])

    def _load_target(self, fs: Any, path: str) -> str:
        if not self.versioned:
            return path
        latest = self.latest_version()
        if latest is None:
            raise DatasetError(f"{self!r}: no version saved under {self.path!r} yet")
        return posixpath.join(path, latest, posixpath.basename(path))

    def describe(self) -> dict[str, Any]:
        """Plain data describing the dataset (type, path, options)."""
        shown: dict[str, Any] = {"type": type(self).__name__, "path": self.path}
        if self.versioned:
            shown["versioned"] = True
        if self.load_args:
            shown["load_args"] = dict(self.load_args)
        if self.save_args:
            shown["save_args"] = dict(self.save_args)
        return shown

    def __repr__(self) -> str:
        extra = ", versioned=True" if self.versioned else ""
        return f"{type(self).__name__}({self.path!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))


def _under(base: str, *parts: str) -> str:
    """``parts`` joined under a path as the user wrote it (a URL or a local path)."""
    if "://" in base:
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def _write_bytes(fs: Any, path: str, data: bytes) -> None:
    """Write a whole file: temp file and rename locally, one write elsewhere."""
    from fsspec.implementations.local import LocalFileSystem

    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        temp = f"{path}.tmp-{secrets.token_hex(4)}"
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.remove(temp)
        return
    with fs.open(path, "wb") as handle:
        handle.write(data)
