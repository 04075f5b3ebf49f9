"""A run's datasets: sources loaded once and versioned by content, sinks saved.

Design note
-----------
The graph resolves an input named like a source dataset to a ``FROM_DATASET`` source, a
static input like a param; so the scheduler asks this module two things about it: its
*data version* (for the consumer's cache key: the content hash of the file it loads, see
:mod:`plait.io._versions` for the fast path; for an object that does not say which file it
reads, the data version of the loaded value) and its *value* (loaded on the driver when a
step that executes needs it, at most once per run). A source all of whose consumers hit
the cache is never loaded.

A sink is saved on the driver right after its step: after an execution, always (a failed
save fails the step, whose cache entry stays, so the next run saves again); after a cache
hit, only when the file is missing or not what this store last saved there for the same
value (the value, the file's path and its content version are remembered in the store's
``datasets/sinks/``). A versioned plait dataset is saved under the run id.

What each run read and wrote (name, role, type, path, data version) is kept in the
store's ``datasets/runs/<run id>/`` and read back by :func:`plait.io.run_datasets`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from plait.io._base import DatasetError, FileDataset, dataset_path
from plait.io._records import run_record_path
from plait.io._versions import FileVersions

if TYPE_CHECKING:
    from plait.graph import Plan
    from plait.run.task import TaskResult
    from plait.steps import Step
    from plait.store.cache import RunCache
    from plait.store.store import Store

__all__ = ["RunDatasets"]

_log = logging.getLogger("plait.io")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class RunDatasets:
    """The datasets of one run.

    Args:
        datasets: Data name -> dataset.
        producers: Data name -> the step producing it (the names that are sinks).
        store: The run's store, or None (nothing remembered between runs).
        run_id: The run's id (the version of a versioned sink).
    """

    def __init__(
        self,
        datasets: Mapping[str, Any],
        producers: Mapping[str, str],
        *,
        store: Store | None,
        run_id: str,
    ) -> None:
        self.sources = {n: d for n, d in datasets.items() if n not in producers}
        self.sinks: dict[str, dict[str, Any]] = {}
        for name, dataset in datasets.items():
            if name in producers:
                self.sinks.setdefault(producers[name], {})[name] = dataset
        self.store = store
        self.run_id = run_id
        self.files = FileVersions(store)
        self._values: dict[str, Any] = {}
        self._versions: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_plan(cls, plan: Plan, cache: RunCache | None, run_id: str) -> RunDatasets:
        """The datasets of a run of ``plan`` (with the run's store, if it has one)."""
        producers = {output: item.name for item in plan.order for output in item.outputs}
        store = cache.store if cache is not None else None
        return cls(plan.datasets, producers, store=store, run_id=run_id)

    # -- sources -------------------------------------------------------------------
    def load(self, name: str) -> Any:
        """The value of source ``name``, loaded once per run."""
        with self._lock:
            if name in self._values:
                return self._values[name]
            dataset = self.sources[name]
            try:
                value = dataset.load()
            except DatasetError:
                raise
            except Exception as exc:
                raise DatasetError(
                    f"loading dataset {name!r} ({dataset!r}) failed: {exc}", dataset=name
                ) from exc
            self._values[name] = value
            return value

    def version(self, name: str) -> str:
        """The data version of source ``name``: its file's content hash when it has one."""
        found = self._versions.get(name)
        if found is not None:
            return found
        dataset = self.sources[name]
        located = _file_of(dataset)
        if located is not None:
            fs, path = located
            try:
                version = self.files.version(fs, path)
            except OSError as exc:
                raise DatasetError(
                    f"dataset {name!r} ({dataset!r}): cannot read {path!r}: {exc}", dataset=name
                ) from exc
        else:
            from plait.store.hashing import data_version

            version = data_version(self.load(name))
        self._versions[name] = version
        self._note(name, "source", dataset, _load_path(dataset), version)
        return version

    # -- sinks -----------------------------------------------------------------------
    def saves(self, step: str) -> bool:
        """Whether step ``step`` has outputs to save."""
        return step in self.sinks

    def save_executed(
        self, item: Step, result: TaskResult, local: Callable[[Any], Any]
    ) -> TaskResult:
        """Save the sinks of a step that executed; a failed save fails the step (the
        result returned is then a failure with the save's error)."""
        import traceback

        from plait.run.task import TaskResult

        versions = {output: ref.version for output, ref in (result.artifacts or {}).items()}
        try:
            values = tuple(local(value) for value in result.values)
            self.after_execution(item, values, versions)
        except Exception as exc:
            return TaskResult(
                False,
                error=exc,
                attempts=result.attempts,
                start=result.start,
                end=result.end,
                duration=result.duration,
                metrics=result.metrics,
                traceback=traceback.format_exc(),
            )
        return result

    def after_execution(
        self, item: Step, values: tuple[Any, ...], versions: Mapping[str, str]
    ) -> None:
        """Save the sink outputs of a step that executed.

        Raises:
            DatasetError: When a save fails (naming the step, the output and the dataset).
        """
        for output, dataset in self.sinks[item.name].items():
            value = values[item.outputs.index(output)]
            self._save(item, output, dataset, value, versions.get(output))

    def after_hit(
        self, item: Step, versions: Mapping[str, str], load: Callable[[str], Any]
    ) -> None:
        """Save the sink outputs of a cache hit whose files are missing or changed.

        Raises:
            DatasetError: When a save fails.
        """
        for output, dataset in self.sinks[item.name].items():
            version = versions.get(output)
            saved = self._saved(dataset, version)
            if saved is not None:
                self._note(output, "sink", dataset, saved[0], saved[1])
                continue
            self._save(item, output, dataset, load(output), version)

    def _save(self, item: Step, output: str, dataset: Any, value: Any, version: str | None) -> None:
        try:
            if isinstance(dataset, FileDataset):
                path: str | None = dataset.save(value, version=self.run_id)
            else:
                dataset.save(value)
                path = dataset_path(dataset)
        except Exception as exc:
            raise DatasetError(
                f"step {item.name!r}: saving output {output!r} to {dataset!r} failed: {exc}",
                dataset=output,
            ) from exc
        file_version = self._file_version(dataset)
        self._note(output, "sink", dataset, path, file_version or version)
        if self.store is not None and version is not None:
            record = {"value": version, "path": path, "file": file_version}
            self._write(f"datasets/sinks/{_digest(_key(dataset))}.json", record)

    def _file_version(self, dataset: Any) -> str | None:
        located = _file_of(dataset)
        if located is None:
            return None
        try:
            return self.files.version(*located)
        except OSError:
            return None

    def _saved(self, dataset: Any, version: str | None) -> tuple[str | None, str] | None:
        """(path, version) when the sink already holds what this store saved there for
        ``version`` (the value's data version), else None."""
        if self.store is None or version is None:
            return None
        try:
            record = json.loads(
                self.store.backend.read(f"datasets/sinks/{_digest(_key(dataset))}.json")
            )
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("value") != version:
            return None
        if _file_of(dataset) is None:  # an object that does not say which file it writes
            exists = getattr(dataset, "exists", None)
            return (record.get("path"), version) if exists is None or exists() else None
        if _load_path(dataset) != record.get("path"):
            return None  # another version was saved since, or the file is gone
        try:
            now = self._file_version(dataset)
        except DatasetError:
            return None
        if now is None or now != record.get("file"):
            return None
        return record.get("path"), now

    # -- the record of the run --------------------------------------------------------
    def _note(
        self, name: str, role: str, dataset: Any, path: str | None, version: str | None
    ) -> None:
        if self.store is None:
            return
        if path is not None and "://" not in path:
            path = os.path.abspath(path)  # the record is read from other folders
        entry = {
            "name": name,
            "role": role,
            "type": type(dataset).__name__,
            "path": path,
            "version": version,
        }
        self._write(run_record_path(self.run_id, name), entry)

    def _write(self, path: str, record: Mapping[str, Any]) -> None:
        assert self.store is not None
        try:
            self.store.backend.write(path, json.dumps(record).encode())
        except OSError as exc:  # never fails a run: the next run saves or hashes again
            _log.warning("could not record dataset state in %s: %s", self.store.url, exc)


def _key(dataset: Any) -> str:
    """What identifies a sink across runs: its path, else its description."""
    return dataset_path(dataset) or repr(dataset)


def _load_path(dataset: Any) -> str | None:
    if isinstance(dataset, FileDataset):
        try:
            return dataset.load_path()
        except DatasetError:
            return None
    return dataset_path(dataset)


def _file_of(dataset: Any) -> tuple[Any, str] | None:
    """The filesystem and path of the file a dataset loads, when it says; else None.

    Raises:
        DatasetError: For a versioned dataset with no version saved.
    """
    if isinstance(dataset, FileDataset):
        fs, path = dataset.filesystem()
        return fs, dataset._load_target(fs, path)
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None or getattr(dataset, "_version", None) is not None:
        return None  # a Kedro versioned dataset: which file it loads is its own business
    text = str(filepath)
    if "://" in text:
        return None
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(), dataset_path(dataset) or text
