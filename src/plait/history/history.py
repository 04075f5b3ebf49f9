"""The history: every run and step execution, queryable, with lineage across runs.

Writing. A run's record is written when the run starts (status ``running``) and updated
when it ends. Step records are written in batches by the run's
:class:`~plait.history.recorder.RunRecorder`: committed before a step executes, before a
hook or the caller is told of an outcome, and otherwise by a background thread at most
``flush_delay`` seconds (10 ms) after a step ends, so a chain of cache hits costs one
transaction per batch. After a ``kill -9``, every step that was reported, or that finished
before another step started executing, keeps its record (the recorder's docstring states
the guarantee); what any step computed is in the store in any case, so resume loses
nothing.

Structure. Each run names the structure of the pipeline it executed (steps, inputs,
outputs, ``after`` edges), kept once per distinct structure in the ``structures`` table
under the hash of its JSON, so a report drawn from the record has the pipeline's edges.

Liveness. A run records its host, pid and process start time, and its recorder keeps a
heartbeat (:mod:`plait.history.liveness`). Reading runs first settles the ``running`` ones
whose process is known to be dead: they are written as ``failed`` with ``error``
"process died (...)", so a killed run never reads ``running`` forever.

Lineage. Each step execution adds one row per output (role ``out``) and per input (role
``in``) to the ``data`` table, keyed by data version, so "who produced this value", "who
consumed it" and "how did it come to be" are index lookups, across runs. These rows
repeat the step record's ``input_versions`` and ``data_versions``; the recorder writes
them with its background batches, after the record, so settling a run whose process
died writes them again from its records (opening a history, and each lineage query,
settles first).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from plait.errors import suggest
from plait.history import liveness
from plait.history.browse import Browsing
from plait.history.db import Database, connect
from plait.history.recorder import RunRecorder
from plait.history.records import RecordedPipeline, RunRecord, StepRecord
from plait.history.values import decode_inputs, display, dumps, encode_inputs, sign_inputs
from plait.store.signing import Signer

if TYPE_CHECKING:
    from plait.history.experiments import ExperimentTable

__all__ = ["History", "RunRecorder"]


class History(Browsing):
    """Run records in a database (SQLite by default; PostgreSQL, DuckDB).

    Args:
        url: A path (SQLite), ``sqlite:///...``, ``duckdb:///...`` or ``postgresql://...``.
        signer: Signs and checks the runs' params/config blobs (default: one for
            ``PLAIT_SECRET`` if set; a :class:`~plait.Store` passes its own).
        heartbeat: Seconds between a running run's heartbeats (default:
            ``PLAIT_HISTORY_HEARTBEAT`` or 10); a run of another host whose heartbeat is
            three periods old is dead.
    """

    def __init__(
        self, url: str, *, signer: Signer | None = None, heartbeat: float | None = None
    ) -> None:
        self.url = url
        secret = os.environ.get("PLAIT_SECRET")
        self._signer = signer if signer is not None else Signer(secret.encode()) if secret else None
        self.heartbeat = heartbeat if heartbeat is not None else liveness.heartbeat_period()
        self._db: Database | None = None
        self._lock = threading.Lock()
        #: The project whose runs ``experiment`` and ``best`` read by default (a store
        #: sets its own ``project``); None: every project's.
        self.project: str | None = None

    @property
    def db(self) -> Database:
        """The open database (connected and migrated on first use)."""
        db = self._db
        if db is None:
            opened = False
            with self._lock:
                db = self._db
                if db is None:
                    db = self._db = connect(self.url)
                    opened = True
            if opened:  # a run killed since reads failed, with all its lineage rows
                with contextlib.suppress(Exception):
                    self.settle()
        return db

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __repr__(self) -> str:
        return f"History({self.url!r})"

    # -- writing ------------------------------------------------------------------
    def start_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        fingerprint: str,
        params: Mapping[str, Any],
        config: Mapping[str, Any],
        tags: Sequence[str],
        started_at: float,
        executor: str,
        origin_run_id: str | None,
        inputs: Mapping[str, Any] | None,
        structure: str | None = None,
        target: str | None = None,
        trigger: Mapping[str, str] | None = None,
        experiment: str | None = None,
        version: str | None = None,
        project: str | None = None,
    ) -> RunRecorder:
        """Record a run as started and return the recorder of its steps.

        ``inputs`` holds the exact params, config and requested outputs, kept for resume
        (as JSON when they round-trip exactly, else pickled; signed with a secret).
        ``structure`` is the JSON text of the pipeline's structure
        (:meth:`RecordedPipeline.to_json`), kept once per distinct text. ``target`` names
        the code that ran (see :attr:`RunRecord.target`); ``trigger``, ``experiment``,
        ``version`` and ``project`` are kept as :class:`RunRecord` reads them.
        """
        from plait import __version__

        blob = None if inputs is None else encode_inputs(inputs)
        structure_id = self._keep_structure(structure) if structure is not None else None
        pid = os.getpid()
        values = {
            "run_id": run_id,
            "pipeline": pipeline,
            "fingerprint": fingerprint,
            "status": "running",
            "params": dumps(display(params)),
            "config": dumps(display(config)),
            "tags": dumps(list(tags)),
            "started_at": started_at,
            "host": liveness.host(),
            "plait_version": __version__,
            "python_version": sys.version.split()[0],
            "origin_run_id": origin_run_id,
            "executor": executor,
            "inputs": blob,
            "structure": structure_id,
            "pid": pid,
            "pid_start": liveness.process_start(pid),
            "heartbeat": time.time(),
            "inputs_signature": sign_inputs(self._signer, run_id, blob),
            "target": target,
            "trigger": None if trigger is None else _trigger_json(trigger),
            "experiment": experiment,
            "version": version,
            "project": project,
        }
        self.db.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join(['?'] * len(values))})",
            list(values.values()),
        )
        return RunRecorder(self.db, run_id, self.heartbeat)

    def _keep_structure(self, body: str) -> str:
        """Store a pipeline structure once; return its id (the hash of its JSON)."""
        key = hashlib.sha256(body.encode()).hexdigest()[:32]
        if not self.db.execute("SELECT 1 FROM structures WHERE id = ?", [key]):
            self.db.execute(
                "INSERT INTO structures (id, body) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                [key, body],
            )
        return key

    # -- reading ------------------------------------------------------------------
    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id starts with ``run_id`` (a unique prefix).

        Raises:
            KeyError: When no run, or more than one, matches.
        """
        rows = self.db.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 2",
            [run_id, run_id + "\uffff"],
        )
        if len(rows) == 1:
            return str(rows[0][0])
        if rows:
            raise KeyError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        recent = [
            str(r[0])
            for r in self.db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 20")
        ]
        raise KeyError(f"no run {run_id!r} in {self.url}{suggest(run_id, recent)}")

    def run(self, run_id: str, *, steps: bool = True) -> RunRecord:
        """One run with its step records and structure (``run_id`` may be a unique prefix).

        Args:
            run_id: The run's id, or a unique prefix of it.
            steps: False: read only the run's row; its steps and structure load on first
                access, as for a listed run (a run of 100,000 steps is one small query).

        Raises:
            KeyError: When no run, or more than one, matches ``run_id``.
        """
        full = self.resolve(run_id)
        self.settle(full)
        rows = self.db.execute(f"SELECT {RunRecord.COLUMNS} FROM runs WHERE run_id = ?", [full])
        if not steps:
            return RunRecord.from_row(rows[0], load=functools.partial(self._details, full))
        return RunRecord.from_row(rows[0], *self._details(full))

    def _details(self, run_id: str) -> tuple[dict[str, StepRecord], RecordedPipeline | None]:
        """A run's step records (in the order they started) and its structure."""
        found = self.db.execute(
            "SELECT r.run_id, s.body FROM runs r LEFT JOIN structures s ON s.id = r.structure "
            "WHERE r.run_id = ?",
            [run_id],
        )
        if not found:
            raise KeyError(f"run {run_id!r} is no longer in {self.url}")
        steps = self.db.execute(
            f"SELECT {StepRecord.COLUMNS} FROM steps WHERE run_id = ? ORDER BY started_at, name",
            [run_id],
        )
        records = {row[1]: StepRecord.from_row(row) for row in steps}
        body = found[0][1]
        return records, RecordedPipeline.from_json(body) if body else None

    def settle(self, run_id: str | None = None) -> list[str]:
        """Write ``failed`` ("process died ...") for the ``running`` runs (all, or
        ``run_id``) whose process is known to be dead, and write their lineage rows again
        from their step records (the last ones may not have been written); return their
        ids."""
        sql = "SELECT run_id, host, pid, pid_start, heartbeat FROM runs WHERE status = 'running'"
        args = [] if run_id is None else [run_id]
        rows = self.db.execute(sql + (" AND run_id = ?" if run_id else ""), args)
        dead = []
        for full, host, pid, start, beat in rows:
            reason = liveness.dead_reason(host or "", pid, start, beat)
            if reason is None:
                continue
            dead.append(str(full))
            with contextlib.suppress(Exception):  # a read-only history still reads true
                self._rebuild_lineage(str(full))
                self.db.execute(
                    "UPDATE runs SET status = 'failed', error = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    [reason, full],
                )
        return dead

    def _rebuild_lineage(self, run_id: str) -> None:
        """A run's lineage rows (``data``), written again from its step records, whose
        input and output versions they repeat: a recorder commits a step's record before
        the next step executes, and its lineage rows with its next background batch, so a
        killed run's last records may lack theirs."""
        rows = self.db.execute(
            "SELECT name, input_versions, data_versions FROM steps WHERE run_id = ?", [run_id]
        )
        lineage = [
            (str(version), run_id, str(name), str(data), role)
            for name, inputs, outputs in rows
            for role, text in (("out", outputs), ("in", inputs))
            for data, version in _versions(text).items()
        ]
        with self.db.transaction() as cursor:
            cursor.execute(self.db.sql("DELETE FROM data WHERE run_id = ?"), (run_id,))
            self.db.insert(cursor, "data", "version, run_id, step, name, role", lineage)

    def run_inputs(self, run_id: str) -> bytes | None:
        """The params/config blob a run was started with (JSON text or a pickle)."""
        rows = self.db.execute("SELECT inputs FROM runs WHERE run_id = ?", [self.resolve(run_id)])
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def load_inputs(self, run_id: str) -> dict[str, Any] | None:
        """The exact params, config and requested outputs a run was started with (for
        resume, rerun and debug); None when the run kept none.

        Raises:
            PlaitError: With a secret, when the blob is unsigned or signed with another
                key: nothing is unpickled.
        """
        full = self.resolve(run_id)
        rows = self.db.execute("SELECT inputs, inputs_signature FROM runs WHERE run_id = ?", [full])
        if not rows or rows[0][0] is None:
            return None
        return decode_inputs(
            bytes(rows[0][0]), rows[0][1], run_id=full, signer=self._signer, where=self.url
        )

    def compare(self, run_a: str, run_b: str) -> dict[str, Any]:
        """What differs between two runs: params, config, metrics, fingerprints and each
        step (its status, code fingerprint and outputs).

        Steps are listed in pipeline order (the recorded structure of B, then A's), steps
        no structure lists after them in the order they started. ``metrics`` holds each
        run's metrics (see :func:`plait.history.experiments.run_metrics`); each step's
        ``code`` its function fingerprint in each run (``same_code`` when equal).
        """
        from plait.history.experiments import run_metrics

        a, b = self.run(run_a), self.run(run_b)
        steps = {}
        for name in _step_order(a, b):
            left, right = a.steps.get(name), b.steps.get(name)
            steps[name] = {
                "status": (left and left.status, right and right.status),
                "cached": (left and left.cached, right and right.cached),
                "duration": (left and left.duration, right and right.duration),
                "code": (left and left.fingerprint, right and right.fingerprint),
                "same_code": bool(left and right and left.fingerprint == right.fingerprint),
                "data_versions": (left and left.data_versions, right and right.data_versions),
                "metrics": (left and left.metrics, right and right.metrics),
                "same_output": bool(left and right and left.data_versions == right.data_versions),
            }
        return {
            "runs": (a.run_id, b.run_id),
            "params": _changed(a.params, b.params),
            "config": _changed(a.config, b.config),
            "metrics": (run_metrics(self, a), run_metrics(self, b)),
            "fingerprint": (a.fingerprint, b.fingerprint),
            "status": (a.status, b.status),
            "steps": steps,
        }

    def compare_many(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """What differs between several runs (ids or unique prefixes), each value listed
        per run: the params and config values that differ, every metric, and per step its
        status, code fingerprint and data versions (see
        :func:`plait.history.experiments.compare_runs`)."""
        from plait.history.experiments import compare_runs

        return compare_runs(self, run_ids)

    def experiment(
        self,
        name: str,
        *,
        project: str | None = None,
        all_projects: bool = False,
        sort: str | None = None,
        descending: bool = True,
        limit: int | None = None,
    ) -> ExperimentTable:
        """The runs of experiment ``name`` side by side: runs by (the params and config
        values that differ between them) and metrics, newest first or sorted by the metric
        ``sort`` (see :mod:`plait.history.experiments`). Only the runs of ``project``
        (default: the store's project) unless ``all_projects``.

        Raises:
            PlaitError: When the experiment has no runs, or no run has the ``sort`` metric.
        """
        from plait.history.experiments import experiment_table

        scope = None if all_projects else project or self.project
        return experiment_table(
            self, name, project=scope, sort=sort, descending=descending, limit=limit
        )

    def best(
        self,
        experiment: str,
        metric: str,
        mode: Literal["max", "min"] = "max",
        *,
        project: str | None = None,
        all_projects: bool = False,
    ) -> RunRecord:
        """The succeeded run of ``experiment`` with the highest (``mode="max"``) or lowest
        (``"min"``) ``metric`` (among ``project``'s runs, by default the store's project,
        unless ``all_projects``).

        Raises:
            PlaitError: When no succeeded run has a number for ``metric``.
        """
        from plait.history.experiments import best_run

        scope = None if all_projects else project or self.project
        return best_run(self, experiment, metric, mode=mode, project=scope)

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete run records (their step and lineage rows, the asset versions they first
        produced, and the structures no run left names); return how many."""
        ids = list(run_ids)
        self.db.execute_many(
            [
                *[
                    (f"DELETE FROM {table} WHERE run_id = ?", [[i] for i in ids])
                    for table in ("data", "steps", "assets", "runs")
                ],
                (
                    "DELETE FROM structures WHERE id NOT IN "
                    "(SELECT structure FROM runs WHERE structure IS NOT NULL)",
                    [()] if ids else [],
                ),
            ]
        )
        return len(ids)

    def referenced_keys(self) -> set[str]:
        """Cache keys of every recorded step execution."""
        rows = self.db.execute("SELECT DISTINCT cache_key FROM steps WHERE cache_key IS NOT NULL")
        return {str(row[0]) for row in rows}


def _versions(text: str | None) -> dict[str, Any]:
    """A step record's JSON map of data names to versions ({} when unreadable)."""
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _trigger_json(trigger: Mapping[str, Any]) -> str:
    """``{"kind", "name", "event_id"}`` as JSON with sorted keys and no spaces (the
    ``runs(trigger=)`` filter looks for ``"name":"..."`` in it)."""
    return json.dumps(
        {str(k): None if v is None else str(v) for k, v in trigger.items()},
        sort_keys=True,
        separators=(",", ":"),
    )


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ (None on the side a key is missing from)."""
    return {
        key: (a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if key not in a or key not in b or a[key] != b[key]
    }


def _step_order(a: RunRecord, b: RunRecord) -> list[str]:
    """The steps of either run, in pipeline order where a structure was recorded."""
    ran = set(a.steps) | set(b.steps)
    ordered: dict[str, None] = {}
    for record in (b, a):
        if record.structure is not None:
            ordered.update((s.name, None) for s in record.structure.order if s.name in ran)
    for record in (a, b):
        ordered.update((name, None) for name in record.steps)
    return list(ordered)
