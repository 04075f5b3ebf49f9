r"""Recording one run's steps: buffered, committed in batches, never behind a report.

A finished step's rows (its ``steps`` row and its lineage rows in ``data``) are built at
once, as plain tuples (:func:`step_rows`), and wait in a buffer that is written in one
transaction (one prepared statement per table):

- synchronously, by :meth:`RunRecorder.flush`, before anyone is told of an outcome and
  before anything that may kill the process runs: the scheduler calls it before a step
  executes and before an ``on_step_end`` hook sees a step (see
  :mod:`plait.run.recording`), and :meth:`RunRecorder.finish` calls it before the run's
  end is written and its result handed to the caller;
- otherwise by a background thread, at most ``flush_delay`` seconds (10 ms) after the
  first record of a batch arrived: a chain of cache hits (which executes nothing) costs
  one commit per batch instead of one per step.

The guarantee, precisely: after a ``kill -9`` of the run's process at any point, every
step whose outcome was reported to the caller (the returned result, or ``RunFailed``) or
to a hook, and every step that finished before another step started executing, is in the
history, and its outputs are in the store (an artifact and its entry are written before
the step's record is even buffered). Only a cache hit not yet reported may be missing
from the history (for at most ``flush_delay`` seconds while the process runs); its
outputs were in the store already, so a resume loses nothing. A step's lineage rows are
not in that guarantee's commit: the synchronous :meth:`RunRecorder.flush` commits step
records only (the fewest pages written while the run's thread waits), and their lineage
rows, which repeat the records' input and output versions, go with the background
thread's next commit or the run's end; a reader that finds the run's process dead writes
them again from the records (:meth:`~plait.history.History.settle`). The databases run
in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the death of
the process; only an operating-system crash or power loss can take back the last commits
(see ``docs/trust.md``).

A record is upserted on ``(run_id, name)``: a step whose record is revised later in the
run (a cache hit whose artifact was damaged and recomputed, or metrics a hook added after
the record was committed) is written again, and its lineage rows with it.

Recording never fails a run: a write that fails (a locked, full, damaged or unreachable
database) is a logged warning, and the run goes on; the run's end is still written if
the database takes it, and otherwise a reader finds the run's process gone and reports
it failed. While the run lasts, a daemon thread refreshes its heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any

from plait.history.db import Database
from plait.history.liveness import Heartbeat
from plait.history.records import StepRecord
from plait.history.values import display, dumps

if TYPE_CHECKING:
    from plait.run.context import StepLogs

__all__ = ["FLUSH_DELAY", "RunRecorder", "step_rows"]

_log = logging.getLogger("plait.history")

FLUSH_DELAY = 0.01  # seconds a finished step's record may wait for its batch
_KEY = ("run_id", "name")
_UPSERT = "ON CONFLICT (run_id, name) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}"
    for c in (c.strip() for c in StepRecord.COLUMNS.split(","))
    if c not in _KEY
)


Row = tuple[Any, ...]  # one row of ``steps`` (its COLUMNS) or of ``data``


def _names_json(names: Mapping[str, str]) -> str:
    """The JSON text :func:`~plait.history.values.dumps` gives a map of names to data
    versions, written directly (three times quicker than the encoder on these small
    maps); anything but text keys and values goes through ``dumps``."""
    try:
        return "{" + ",".join([_quote(k) + ":" + _quote(v) for k, v in names.items()]) + "}"
    except TypeError:  # not text
        return dumps(dict(names))


def step_rows(
    run_id: str,
    record: Any,
    input_versions: Mapping[str, str],
    fingerprint: str | None = None,
    peak_memory: int | None = None,
    params: Mapping[str, Any] | None = None,
    logs: StepLogs | None = None,
) -> tuple[Row, list[Row]]:
    """A finished step's ``steps`` row and its lineage (``data``) rows, built at once from
    its :class:`~plait.StepResult`: plain tuples, and no JSON for what is empty."""
    error = record.error
    name = record.name
    versions = record.data_versions
    metrics = record.metrics
    attempts = record.element_attempts
    row = (
        run_id,
        name,
        record.status,
        1 if record.cached else 0,
        record.reason,
        record.attempts,
        record.start_time,
        record.end_time,
        record.duration,
        record.cache_key,
        _names_json(input_versions) if input_versions else "{}",
        _names_json(versions) if versions else "{}",
        None if error is None else error.type,
        None if error is None else error.message,
        None if error is None else error.traceback,
        dumps(display(metrics)) if metrics else "{}",
        peak_memory,
        fingerprint,
        dumps(display(params)) if params else "{}",
        None if not logs else dumps({"lines": list(logs.lines), "dropped": logs.dropped}),
        dumps({str(k): int(v) for k, v in attempts.items()}) if attempts else None,
    )
    lineage = [(v, run_id, name, n, "out") for n, v in versions.items()]
    if input_versions:
        lineage += [(v, run_id, name, n, "in") for n, v in input_versions.items()]
    return row, lineage


class RunRecorder:
    """Records one run's steps (see the module docstring).

    Args:
        db: The history database.
        run_id: The run.
        heartbeat: Seconds between heartbeats (None: no heartbeat thread).
        flush_delay: Seconds a buffered record may wait for the background commit
            (None: :data:`FLUSH_DELAY`).
    """

    def __init__(
        self,
        db: Database,
        run_id: str,
        heartbeat: float | None = None,
        flush_delay: float | None = None,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.flush_delay = FLUSH_DELAY if flush_delay is None else flush_delay
        self._buffer: list[tuple[str, Row, list[Row], bool]] = []
        self._buffer_lock = threading.Lock()  # held only to add to or take the buffer
        self._lock = threading.Lock()  # held while a batch is written: batches in order
        self._wake = threading.Event()  # set when a record arrives in an empty buffer
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        self._lineage: list[Row] = []  # lineage rows of records committed without them
        self._heartbeat: Heartbeat | None = None
        if heartbeat is not None:
            self._heartbeat = Heartbeat(self._beat, heartbeat)
            self._heartbeat.start()

    @property
    def pending(self) -> bool:
        """True when step records (not lineage rows) wait to be written."""
        return bool(self._buffer)

    def _beat(self) -> None:
        self.db.execute(
            "UPDATE runs SET heartbeat = ? WHERE run_id = ?", [time.time(), self.run_id]
        )

    def step(
        self,
        record: Any,
        input_versions: Mapping[str, str],
        fingerprint: str | None = None,
        peak_memory: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        logs: StepLogs | None = None,
        revised: bool = False,
    ) -> None:
        """Buffer a finished step's record (a :class:`~plait.StepResult`), with the values
        it received from params or defaults and its log lines; ``revised`` when it
        replaces a record already given. Its rows are built now (see :func:`step_rows`):
        what is buffered is what the record said when it was given."""
        row, lineage = step_rows(
            self.run_id, record, input_versions, fingerprint, peak_memory, params, logs
        )
        self.add(record.name, row, lineage, revised)

    def add(self, name: str, row: Row, lineage: list[Row], revised: bool = False) -> None:
        """Buffer step ``name``'s rows, as :func:`step_rows` builds them."""
        buffer = self._buffer
        with self._buffer_lock:
            buffer.append((name, row, lineage, revised))
            first = len(buffer) == 1
        if first and not self._closed.is_set():
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="plait-history-flush", daemon=True
                )
                self._flusher.start()
            self._wake.set()

    def _flush_loop(self) -> None:
        """The background commits: a batch at most ``flush_delay`` after its first record,
        with the lineage rows waiting since the last one."""
        while True:
            self._wake.wait()
            if self._closed.wait(self.flush_delay):
                return  # finish() writes what is left
            self._wake.clear()
            self._flush(lineage=True)

    def flush(self) -> None:
        """Commit every buffered step record, in one transaction (a failure is a warning);
        their lineage rows wait for the background thread's next commit (see the module
        docstring)."""
        self._flush(lineage=False)

    def _flush(self, *, lineage: bool) -> None:
        with self._lock:
            with self._buffer_lock:
                batch, self._buffer = self._buffer, []
            if not batch and not (lineage and self._lineage):
                return
            try:
                self._write(batch, lineage)
            except Exception as exc:
                _log.warning(
                    "could not record %d step record(s) of run %s in %s (the run goes on): %s",
                    len(batch),
                    self.run_id,
                    self.db.url,
                    exc,
                )

    def _write(self, batch: list[tuple[str, Row, list[Row], bool]], lineage: bool) -> None:
        """Write ``batch``'s step records, and with ``lineage`` every waiting lineage row
        (else its own rows join them)."""
        steps: list[Row]
        new: list[Row]
        revised: list[str] = []
        if any(item[3] for item in batch):  # a step given twice: its last record wins
            latest = {item[0]: item for item in batch}
            revised = [name for name, item in latest.items() if item[3]]
            steps = [item[1] for item in latest.values()]
            new = [line for item in latest.values() for line in item[2]]
            gone = set(revised)  # their lineage rows still waiting are superseded too
            self._lineage = [line for line in self._lineage if line[2] not in gone]
        else:  # the common case: each step once, in the order they finished
            steps = [item[1] for item in batch]
            new = [line for item in batch for line in item[2]]
        written = self._lineage + new if lineage else []
        with self.db.transaction() as cursor:
            if revised:
                cursor.executemany(
                    self.db.sql("DELETE FROM data WHERE run_id = ? AND step = ?"),
                    [(self.run_id, name) for name in revised],
                )
            self.db.insert(cursor, "steps", StepRecord.COLUMNS, steps, conflict=_UPSERT)
            self.db.insert(cursor, "data", "version, run_id, step, name, role", written)
        if lineage:
            self._lineage = []
        else:
            self._lineage += new

    def finish(self, status: str, finished_at: float, duration: float, error: str | None) -> None:
        """Write the last step records and the run's end (a failure is a warning)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._closed.set()
        self._wake.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        self._flush(lineage=True)
        for attempt in range(3):
            try:
                self.db.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, duration = ?, error = ? "
                    "WHERE run_id = ?",
                    [status, finished_at, duration, error, self.run_id],
                )
                return
            except Exception as exc:
                if attempt == 2:
                    _log.warning(
                        "could not record the end (%s) of run %s in %s: %s",
                        status,
                        self.run_id,
                        self.db.url,
                        exc,
                    )
                time.sleep(0.05 * (attempt + 1))
