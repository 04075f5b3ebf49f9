"""Run and step records, as read back from the history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["RunRecord", "StepRecord"]


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step execution as recorded.

    Attributes mirror :class:`~plait.StepResult`; ``input_versions`` maps each input's data
    name to its data version, ``data_versions`` each output's.
    """

    run_id: str
    name: str
    status: str
    cached: bool
    reason: str
    attempts: int
    start_time: float | None
    end_time: float | None
    duration: float
    cache_key: str | None
    input_versions: dict[str, str]
    data_versions: dict[str, str]
    error: dict[str, str] | None
    metrics: dict[str, Any]
    peak_memory: int | None = None
    fingerprint: str | None = None

    @property
    def started_at(self) -> datetime | None:
        """When the step started (UTC)."""
        return _moment(self.start_time)

    @property
    def finished_at(self) -> datetime | None:
        """When the step finished (UTC)."""
        return _moment(self.end_time)

    COLUMNS = (
        "run_id, name, status, cached, reason, attempts, started_at, finished_at, duration, "
        "cache_key, input_versions, data_versions, error_type, error_message, "
        "error_traceback, metrics, peak_memory, fingerprint"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StepRecord:
        """Build from a row of :attr:`COLUMNS`."""
        error = None
        if row[12]:
            error = {"type": row[12], "message": row[13] or "", "traceback": row[14] or ""}
        return cls(
            row[0],
            row[1],
            row[2],
            bool(row[3]),
            row[4] or "",
            int(row[5] or 0),
            row[6],
            row[7],
            float(row[8] or 0.0),
            row[9],
            _json(row[10], {}),
            _json(row[11], {}),
            error,
            _json(row[15], {}),
            row[16],
            row[17],
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as recorded, with its steps when read with ``history.run(run_id)``."""

    run_id: str
    pipeline: str
    fingerprint: str
    status: str
    params: dict[str, Any]
    config: dict[str, Any]
    tags: list[str]
    start_time: float
    end_time: float | None
    duration: float | None
    host: str
    plait_version: str
    python_version: str
    origin_run_id: str | None
    executor: str
    error: str | None
    steps: dict[str, StepRecord] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime:
        """When the run started (UTC)."""
        return datetime.fromtimestamp(self.start_time, UTC)

    @property
    def finished_at(self) -> datetime | None:
        """When the run finished (UTC), None while running or after a kill."""
        return _moment(self.end_time)

    COLUMNS = (
        "run_id, pipeline, fingerprint, status, params, config, tags, started_at, "
        "finished_at, duration, host, plait_version, python_version, origin_run_id, "
        "executor, error"
    )

    @classmethod
    def from_row(
        cls, row: tuple[Any, ...], steps: dict[str, StepRecord] | None = None
    ) -> RunRecord:
        """Build from a row of :attr:`COLUMNS`."""
        return cls(
            row[0],
            row[1],
            row[2] or "",
            row[3],
            _json(row[4], {}),
            _json(row[5], {}),
            _json(row[6], []),
            float(row[7]),
            row[8],
            row[9],
            row[10] or "",
            row[11] or "",
            row[12] or "",
            row[13],
            row[14] or "",
            row[15],
            steps or {},
        )
