"""Checking a store, and repairing what can be repaired: ``plait doctor``.

Design note. :func:`check` reads and never writes: it opens ``index.db`` and a SQLite
``history.db`` read-only, runs SQLite's ``quick_check`` on both, reads the history's schema
version, reads every cache entry and every artifact an entry names (size, xxh3 checksum,
and with a secret the artifact's and the entry's signatures), and lists artifacts no entry
names, temporary files left by killed writers and unreadable dataset records. Each
finding is a :class:`Problem` that says what is wrong and what :func:`repair` would do
about it.

:func:`repair` acts on a fresh :func:`check`, in an order where each step only relies on
what the previous ones left:

1. leftover temporary files are deleted;
2. a damaged ``history.db`` is moved aside and its readable rows recovered into a fresh
   database (:mod:`plait.history.recover`);
3. a damaged ``index.db`` is moved aside; a damaged or missing index is rebuilt from the
   history's step records (cache key, step, pipeline, output data versions, run,
   time) joined with the artifacts still on disk. An artifact is adopted only when its
   bytes load and hash to the data version its name claims, so a damaged artifact never
   comes back as a hit (:mod:`plait.store._index_rebuild`). With a secret nothing is
   rebuilt (see ``docs/trust.md``);
4. entries whose artifacts are missing or damaged are dropped, and the damaged files
   deleted (their paths come from :class:`~plait.store.store.ArtifactRef`, which refuses
   anything but a content address);
5. artifacts no entry names are deleted;
6. dataset records (``datasets/``, written by :mod:`plait.io`) that are not readable JSON
   objects are deleted: their readers treat them as absent, so a run writes them again.

Artifacts are files under ``objects/`` or, when small, rows inline in ``index.db``
(written in one transaction with their entry); both are checked, repaired and listed
alike, by their content-address path. An index that is lost takes its inline artifacts
with it: the rebuild adopts only files, and the other steps are recomputed.

A temporary file or an unnamed artifact file younger than :data:`GRACE` seconds may belong
to a write in progress (a file artifact is written before its entry) and is left alone. Entries and
artifacts whose signature does not match this store's secret are reported and never
deleted: another key may own them (``plait cache clear`` removes them).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from plait.store._doctor_files import (
    GRACE,
    history_path,
    index_path,
    inline_paths,
    old_files,
    read_index,
    schema_version,
    sqlite_state,
)
from plait.store._index_rebuild import rebuild_plan
from plait.store.entries import checksum, parse_entry
from plait.store.store import ArtifactRef, Entry, Store

__all__ = ["GRACE", "Problem", "Report", "check", "repair"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a store.

    Attributes:
        kind: ``artifact-missing``, ``artifact-damaged``, ``artifact-unsigned``,
            ``entry-damaged``, ``entry-unsigned``, ``orphan``, ``temp-file``,
            ``index-missing``, ``index-damaged``, ``history-damaged``, ``history-newer``
            or ``dataset-record-damaged``.
        path: The file, relative to the store's root.
        detail: What is wrong.
        repair: What :func:`repair` does about it ("" when it does nothing).
    """

    kind: str
    path: str
    detail: str
    repair: str

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "path": self.path, "detail": self.detail, "repair": self.repair}


@dataclass(frozen=True, slots=True)
class Report:
    """What :func:`check` found (and, after :func:`repair`, what was done).

    Attributes:
        store: The store's location.
        problems: What is wrong, in the order found.
        entries: Readable cache entries.
        artifacts: Artifacts in the store (files and inline ones).
        history_version: The history's schema version (None: no SQLite history read).
        actions: What :func:`repair` did, one line each.
    """

    store: str
    problems: tuple[Problem, ...]
    entries: int
    artifacts: int
    history_version: int | None
    actions: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "store": self.store,
            "healthy": self.healthy,
            "problems": [problem.to_json() for problem in self.problems],
            "entries": self.entries,
            "artifacts": self.artifacts,
            "history_schema_version": self.history_version,
            "actions": list(self.actions),
        }


@dataclass(slots=True)
class _Findings:
    """What a check gathers on its way (the repair reuses it)."""

    problems: list[Problem] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)
    doomed: dict[str, list[str]] = field(default_factory=dict)  # key -> damaged artifact paths
    index_lost: bool = False
    history_damaged: bool = False
    history_version: int | None = None
    dataset_records: list[str] = field(default_factory=list)  # unreadable, to delete


# -- checking ---------------------------------------------------------------------------------
def check(store: Store) -> Report:
    """Check ``store`` without changing it.

    Args:
        store: The store (its secret, if any, is used to check signatures).

    Returns:
        The problems found; :attr:`Report.healthy` when there are none.

    Raises:
        StoreSecretError: When the store is signed and was opened without its secret.
    """
    findings = _check(store)
    return _report(store, findings)


def _check(store: Store) -> _Findings:
    findings = _Findings()
    _check_history(store, findings, history_path(store))
    index = index_path(store)
    if index is not None:
        state = sqlite_state(index, required="entries")
        if state == "missing" and _used(store):
            findings.index_lost = True
            findings.problems.append(Problem("index-missing", "index.db", "missing", ""))
        elif state not in ("ok", "missing"):
            findings.index_lost = True
            findings.problems.append(Problem("index-damaged", "index.db", state, ""))
    if findings.index_lost:
        findings.problems[-1] = _rebuild_problem(store, findings)
    else:
        _check_entries(store, findings)
    _check_files(store, findings)
    _check_dataset_records(store, findings)
    return findings


def _check_dataset_records(store: Store, findings: _Findings) -> None:
    from plait.store._dataset_records import damaged_dataset_records

    for path, detail in damaged_dataset_records(store):
        findings.dataset_records.append(path)
        findings.problems.append(Problem("dataset-record-damaged", path, detail, "delete it"))


def _check_history(store: Store, findings: _Findings, path: str | None) -> None:
    from plait.history.db import SCHEMA_VERSION

    if path is None:
        return
    state = sqlite_state(path, required="meta")
    if state == "missing":
        return
    if state != "ok":
        findings.history_damaged = True
        findings.problems.append(
            Problem(
                "history-damaged",
                "history.db",
                state,
                "move it aside as history.db.damaged-<time> and recover its readable rows "
                "into a fresh history.db",
            )
        )
        return
    findings.history_version = schema_version(path)
    if findings.history_version is not None and findings.history_version > SCHEMA_VERSION:
        findings.problems.append(
            Problem(
                "history-newer",
                "history.db",
                f"schema version {findings.history_version}, newer than this plait "
                f"understands ({SCHEMA_VERSION})",
                "",
            )
        )


def _used(store: Store) -> bool:
    return any(store.backend.exists(name) for name in ("objects", "steps", "steps.db"))


def _rebuild_problem(store: Store, findings: _Findings) -> Problem:
    lost = findings.problems[-1]
    if store.signed:
        plan = (
            "start an empty index (with a secret, entries are not rebuilt from the history's "
            "unsigned records; the next run recomputes and signs them) and remove the "
            "artifacts no entry names"
        )
    else:
        count = len(list(rebuild_plan(store, history_ok=not findings.history_damaged)))
        aside = "set it aside as index.db.damaged-<time> and " if lost.kind.endswith("d") else ""
        plan = (
            f"{aside}rebuild it from the history and the artifacts on disk "
            f"({count} entries can be rebuilt)"
        )
    return Problem(lost.kind, lost.path, f"cache index {lost.detail}", plan)


def _check_entries(store: Store, findings: _Findings) -> None:
    for key, data in _raw_entries(store):
        entry = store.lookup(key)
        if entry is None:
            findings.problems.append(_bad_entry(key, data))
            if findings.problems[-1].kind == "entry-damaged":
                findings.doomed[key] = []
            continue
        findings.entries[key] = entry
        for ref in entry.outputs.values():
            problem = _check_artifact(store, entry, ref)
            if problem is not None:
                findings.problems.append(problem)
                if problem.kind != "artifact-unsigned":
                    findings.doomed.setdefault(key, []).append(ref.path)


def _bad_entry(key: str, data: bytes) -> Problem:
    where = f"index.db[{key}]"
    try:
        parse_entry(data)
    except (ValueError, KeyError, TypeError) as exc:
        return Problem("entry-damaged", where, f"cache entry {key} is damaged ({exc})", "drop it")
    return Problem(
        "entry-unsigned",
        where,
        f"cache entry {key} is not signed with this store's secret (PLAIT_SECRET)",
        "",
    )


def _check_artifact(store: Store, entry: Entry, ref: ArtifactRef) -> Problem | None:

    owner = f"(an output of step {entry.step!r}, entry {entry.key[:12]})"
    drop = "drop the entry and delete the file (the step is recomputed on the next run)"
    try:
        data = store.read_artifact(ref.path)
    except FileNotFoundError:
        drop = "drop the entry (the step is recomputed on the next run)"
        return Problem("artifact-missing", ref.path, f"artifact missing {owner}", drop)
    if len(data) != ref.size or checksum(data) != ref.checksum:
        detail = f"artifact damaged: {len(data)} bytes, expected {ref.size}, checksum differs"
        if len(data) == ref.size:
            detail = f"artifact damaged: its checksum differs {owner}"
        return Problem("artifact-damaged", ref.path, f"{detail} {owner}".strip(), drop)
    if not store.verify_artifact(ref, data):
        detail = f"artifact not signed with this store's secret {owner}"
        return Problem("artifact-unsigned", ref.path, detail, "")
    return None


def _raw_entries(store: Store) -> Iterator[tuple[str, bytes]]:

    path = index_path(store)
    if path is not None:
        yield from read_index(path)
        return
    for name in list(store.backend.list("cache")):
        if name.endswith(".json"):
            try:
                yield name.rsplit("/", 1)[-1].removesuffix(".json"), store.backend.read(name)
            except FileNotFoundError:
                continue


def _check_files(store: Store, findings: _Findings) -> None:

    for path in old_files(store, temporary=True):
        findings.problems.append(
            Problem("temp-file", path, "a temporary file left by a killed writer", "delete it")
        )
    if findings.index_lost:
        return  # every artifact looks unnamed until the index is rebuilt
    named = {ref.path for entry in findings.entries.values() for ref in entry.outputs.values()}
    for path in old_files(store, temporary=False):
        if path not in named:
            findings.problems.append(
                Problem("orphan", path, "an artifact no cache entry names", "delete it")
            )


def _report(store: Store, findings: _Findings, actions: tuple[str, ...] = ()) -> Report:
    count = sum(1 for _ in store.backend.list("objects")) + len(inline_paths(store))
    return Report(
        store.url,
        tuple(findings.problems),
        len(findings.entries),
        count,
        findings.history_version,
        actions,
    )


# -- repairing ----------------------------------------------------------------------------------
def repair(store: Store) -> Report:
    """Repair ``store``: see the module's design note for what is done, in which order.

    Args:
        store: The store. Run it when no run is writing to the store.

    Returns:
        A fresh :func:`check` of the repaired store, with :attr:`Report.actions` saying
        what was done. Problems no repair can fix (a history newer than this plait,
        entries or artifacts signed with another key) remain in it.

    Raises:
        StoreSecretError: When the store is signed and was opened without its secret.
    """
    findings = _check(store)
    actions = _fix(store, findings)
    store.close()
    after = _check(store)
    return _report(store, after, tuple(actions))


def _fix(store: Store, findings: _Findings) -> list[str]:
    """Apply the repairs of ``findings``; return what was done."""
    actions = [f"deleted {p.path}" for p in findings.problems if p.kind == "temp-file"]
    for path in actions:
        store.backend.delete(path.removeprefix("deleted "))
    store.close()
    if findings.history_damaged:
        actions.append(_recover_history(store))
    if findings.index_lost:
        actions.append(_rebuild_index(store, findings))
    for key, paths in findings.doomed.items():
        for path in paths:
            store.delete_artifact(path)
            actions.append(f"deleted damaged artifact {path}")
        store.drop(key)
        actions.append(f"dropped cache entry {key}")
    for path in findings.dataset_records:
        store.backend.delete(path)
        actions.append(f"deleted damaged dataset record {path}")
    named = {ref.path for entry in store.entries() for ref in entry.outputs.values()}
    for path in old_files(store, temporary=False):
        if path not in named:
            store.delete_artifact(path)
            actions.append(f"deleted orphaned artifact {path}")
    return actions


def _recover_history(store: Store) -> str:
    from plait.history.recover import recover

    path = history_path(store)
    assert path is not None  # only a SQLite history is found damaged
    done = recover(path)
    copied = ", ".join(f"{n} {table}" for table, n in done.copied.items() if table != "meta")
    lost = sum(n for n in done.lost.values() if n > 0)
    unreadable = [table for table, n in done.lost.items() if n < 0]
    note = f"; tables not readable: {', '.join(unreadable)}" if unreadable else ""
    return (
        f"moved the damaged history aside as {os.path.basename(done.aside)} and recovered "
        f"its readable rows ({copied}; {lost} rows lost{note})"
    )


def _rebuild_index(store: Store, findings: _Findings) -> str:
    from plait.history.recover import set_aside

    path = index_path(store)
    assert path is not None  # only a SQLite index is found missing or damaged
    aside = ""
    if os.path.exists(path):
        aside = f"moved the damaged index aside as {os.path.basename(set_aside(path))}; "
    # an empty database file: the index then opens it as its own, neither warning that it
    # is missing nor staying absent when the plan has no entry
    sqlite3.connect(path).close()
    store.index.delete("")
    rebuilt = 0
    for entry in rebuild_plan(store, history_ok=True):
        store.save(entry)
        findings.entries[entry.key] = entry
        rebuilt += 1
    if store.signed:
        return aside + "started an empty index (a signed store is not rebuilt)"
    return f"{aside}rebuilt the index: {rebuilt} entries from the history and the artifacts"
