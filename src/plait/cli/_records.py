"""Presenting history records: text tables and JSON.

The HTML report of a recorded run is ``plait.viz``'s own, fed the record through
:func:`plait.viz.recorded.as_run`, so a recorded run gets the same page as
``RunResult.to_html()``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.history import RunRecord, StepRecord
    from plait.store.store import Entry

__all__ = [
    "compare_text",
    "entries_text",
    "lineage_text",
    "logs_text",
    "record_json",
    "run_text",
    "runs_text",
    "seconds",
    "table",
]


# -- small formatting helpers ------------------------------------------------------------
def seconds(value: float | None) -> str:
    """A short duration (``-`` when unknown)."""
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"


def _moment(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns (the last column is not padded)."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split()) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# -- runs ------------------------------------------------------------------------------------
def runs_text(records: Sequence[RunRecord]) -> str:
    """The table of ``plait runs list``."""
    rows = [("RUN", "PIPELINE", "STATUS", "STARTED (UTC)", "DURATION", "ORIGIN")]
    for record in records:
        rows.append(
            (
                record.run_id,
                record.pipeline,
                record.status,
                _moment(record.start_time),
                seconds(record.duration),
                record.origin_run_id or "",
            )
        )
    return table(rows)


def run_text(record: RunRecord) -> str:
    """``plait runs show``: the run, its steps, and the tracebacks of failed steps."""
    lines = [
        f"run {record.run_id} of {record.pipeline!r}: {record.status} in "
        f"{seconds(record.duration)}",
        f"  started {_moment(record.start_time)} UTC on {record.host or '?'} · executor "
        f"{record.executor or '?'} · plait {record.plait_version} · python "
        f"{record.python_version}",
    ]
    if record.params:
        lines.append(f"  params: {_pairs(record.params, 40)}")
    if record.config:
        lines.append(f"  config: {_pairs(record.config, 40)}")
    if record.tags:
        lines.append(f"  tags: {', '.join(map(str, record.tags))}")
    if record.origin_run_id:
        lines.append(f"  resumed from run {record.origin_run_id}")
    if record.error:
        lines.append(f"  error: {_first_line(record.error)}")
    rows = [("STEP", "STATUS", "CACHED", "ATTEMPTS", "DURATION", "OUTPUTS", "REASON / ERROR")]
    for step in record.steps.values():
        detail = (
            f"{step.error['type']}: {_first_line(step.error['message'])}"
            if step.error
            else step.reason
        )
        versions = ", ".join(f"{k}={v[:12]}" for k, v in step.data_versions.items())
        rows.append(
            (
                step.name,
                step.status,
                "yes" if step.cached else "",
                str(step.attempts),
                seconds(step.duration),
                versions,
                detail,
            )
        )
    lines.append(table(rows))
    metrics = [(s.name, s.metrics) for s in record.steps.values() if s.metrics]
    if metrics:
        lines.append("metrics:")
        for name, values in metrics:
            shown = ", ".join(f"{k}={_short(v, 30)}" for k, v in values.items())
            lines.append(f"  {name}: {shown}")
    mapped = [s for s in record.steps.values() if s.element_attempts]
    if mapped:
        lines.append("map elements (attempts per element):")
        for step in mapped:
            tries = step.element_attempts
            retried = {k: v for k, v in tries.items() if v > 1}
            summary = f"{_plural(len(tries), 'element')}, {sum(tries.values())} calls"
            if retried:
                summary += "; retried: " + _pairs(retried, 10)
            lines.append(f"  {step.name}: {summary}")
    logged = [s for s in record.steps.values() if s.logs]
    if logged:
        counts = ", ".join(f"{s.name} ({_plural(len(s.logs), 'line')})" for s in logged)
        lines.append(f"logs: {counts}; print them with: plait runs show {record.run_id} --logs")
    for step in record.steps.values():
        if step.error and step.error.get("traceback"):
            lines.append(f"\nstep {step.name!r} failed:")
            lines.append(step.error["traceback"].rstrip())
    return "\n".join(lines)


def _pairs(values: Mapping[str, Any], limit: int) -> str:
    return ", ".join(f"{k}={_short(v, limit)}" for k, v in values.items())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def logs_text(record: RunRecord, step: str | None = None) -> str:
    """``plait runs show RUN --logs [STEP]``: each step's log lines, in run order."""
    chosen = [record.steps[step]] if step is not None else list(record.steps.values())
    lines: list[str] = []
    for item in chosen:
        if step is None and not item.logs:
            continue
        lines.append(f"== {item.name} ({item.status})")
        if item.logs_dropped:
            lines.append(
                f"   ... {_plural(item.logs_dropped, 'earlier line')} not kept "
                "(the last 1000 lines / 64 KiB of a step are)"
            )
        lines.extend(f"   {line}" for line in item.logs)
        if not item.logs:
            lines.append("   (no log lines)")
    if not lines:
        return f"no step of run {record.run_id} logged anything at INFO or above"
    return "\n".join(lines)


def record_json(value: Any) -> str:
    """A record (or a dict of records) as indented JSON."""

    from plait.history import RunRecord

    def default(obj: Any) -> Any:
        if isinstance(obj, RunRecord):
            return obj.to_dict()
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        return repr(obj)

    return json.dumps(value, indent=2, default=default, sort_keys=False)


def compare_text(diff: Mapping[str, Any]) -> str:
    """``plait runs compare``: params, config, metrics, code and each step side by side."""
    run_a, run_b = diff["runs"]
    status_a, status_b = diff["status"]
    fingerprint_a, fingerprint_b = diff["fingerprint"]
    lines = [
        f"A = run {run_a} ({status_a})",
        f"B = run {run_b} ({status_b})",
        "code: " + ("same" if fingerprint_a == fingerprint_b else "changed (fingerprints differ)"),
    ]
    for part, title in (("params", "params"), ("config", "config values")):
        changed = diff.get(part) or {}
        if changed:
            lines.append(f"{title} that differ:")
            for key, (left, right) in changed.items():
                lines.append(f"  {key}: {_short(left, 30)} -> {_short(right, 30)}")
        else:
            lines.append(f"{part}: same")
    metrics_a, metrics_b = diff.get("metrics") or ({}, {})
    if metrics_a or metrics_b:
        lines.append("metrics:")
        for key in dict.fromkeys([*metrics_a, *metrics_b]):
            left, right = metrics_a.get(key), metrics_b.get(key)
            mark = "" if left == right else "  (changed)"
            lines.append(f"  {key}: {_short(left, 30)} -> {_short(right, 30)}{mark}")
    rows = [
        (
            "STEP",
            "STATUS A",
            "STATUS B",
            "CACHED A/B",
            "DURATION A",
            "DURATION B",
            "CODE",
            "OUTPUT",
        )
    ]
    for name, step in diff["steps"].items():
        left, right = step["status"]
        cached_a, cached_b = step["cached"]
        duration_a, duration_b = step["duration"]
        if left is None or right is None:
            output = code = "only in " + ("B" if left is None else "A")
        else:
            output = "same" if step["same_output"] else "CHANGED"
            code = "same" if step.get("same_code", True) else "CHANGED"
        rows.append(
            (
                name,
                left or "-",
                right or "-",
                f"{'yes' if cached_a else 'no'}/{'yes' if cached_b else 'no'}",
                seconds(duration_a),
                seconds(duration_b),
                code,
                output,
            )
        )
    lines.append(table(rows))
    return "\n".join(lines)


def lineage_text(version: str, upstream: Sequence[StepRecord], users: Sequence[StepRecord]) -> str:
    """``plait lineage``: the executions upstream of a value, then those that read it."""
    lines = [f"data version {version}"]
    if upstream:
        lines.append("made by, nearest first (run, step, outputs <- inputs):")
        for record in upstream:
            outputs = ", ".join(f"{k}={v[:12]}" for k, v in record.data_versions.items())
            inputs = ", ".join(f"{k}={v[:12]}" for k, v in record.input_versions.items())
            cached = " (cache hit)" if record.cached else ""
            params = f" · params {_pairs(record.params, 30)}" if record.params else ""
            lines.append(
                f"  {record.run_id}  {record.name}{cached}: {outputs} <- {inputs or '-'}{params}"
            )
    else:
        lines.append("made by: no recorded step produced it")
    if users:
        lines.append("read by:")
        for record in users:
            lines.append(f"  {record.run_id}  {record.name} ({record.status})")
    return "\n".join(lines)


def entries_text(entries: Sequence[Entry]) -> str:
    """``plait cache list``: one line per cache entry, newest first, and a total."""
    rows = [("KEY", "PIPELINE", "STEP", "CREATED (UTC)", "SIZE", "RUN", "OUTPUTS")]
    total = 0
    for entry in entries:
        size = sum(max(ref.size, 0) for ref in entry.outputs.values())
        total += size
        note = "" if entry.reusable else " (checkpoint only)"
        rows.append(
            (
                entry.key[:16],
                entry.pipeline,
                entry.step,
                _moment(entry.created),
                _size(size),
                entry.run_id,
                ", ".join(entry.outputs) + note,
            )
        )
    return f"{table(rows)}\n{len(entries)} entries, {_size(total)}"
