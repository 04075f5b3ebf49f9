"""Run history and lineage (SQLite by default; PostgreSQL and DuckDB)."""

from plait.history.history import History, RunRecorder
from plait.history.records import RunRecord, StepRecord

__all__ = ["History", "RunRecord", "RunRecorder", "StepRecord"]
