"""Run history and lineage (SQLite by default; PostgreSQL and DuckDB)."""

from plait.history.history import History, RunRecorder
from plait.history.records import RecordedPipeline, RecordedStep, RunRecord, StepRecord

__all__ = [
    "History",
    "RecordedPipeline",
    "RecordedStep",
    "RunRecord",
    "RunRecorder",
    "StepRecord",
]
