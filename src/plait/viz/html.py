"""Self-contained HTML views: a pipeline for notebooks and a run's report page.

Nothing here references an external resource: styles are inline and scoped to the
view's root class (so a notebook's own styles are left alone), drawings are inline SVG,
and there is no script. Every piece of user text goes through :func:`html.escape`.
Element ids carry a prefix derived from the content, so several views can share one
notebook page.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Mapping
from typing import Any

from plait.viz._model import Graph, Node, build_graph, build_run_graph
from plait.viz._protocols import (
    OUTCOME_STYLES,
    ErrorLike,
    OutcomeStyle,
    PipelineLike,
    RunLike,
    StepResultLike,
    format_seconds,
    format_timestamp,
    outcome_class,
)
from plait.viz._svg import draw_graph, draw_timeline
from plait.viz.ascii import pipeline_to_ascii

__all__ = ["pipeline_to_html", "run_to_html"]

_STEP_STYLE = OutcomeStyle("#ffffff", "#57606a")
_OPTIONAL_STYLE = OutcomeStyle("#ffffff", "#57606a", dashed=True)
_INPUT_STYLE = OutcomeStyle("#f6f8fa", "#8c959f", text="#424a53")
_MAX_LISTED = 1000
_RUN_STATUS_COLOURS = {"succeeded": "#1a7f37", "failed": "#cf222e", "cancelled": "#6e7781"}
_COLUMNS = (
    "Step",
    "Status",
    "Cached",
    "Attempts",
    "Duration",
    "Reason",
    "Data versions",
    "Metrics",
    "Failed elements",
)

_CSS = """
.plait-view{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;
background:#fff;padding:12px 16px;border:1px solid #d0d7de;border-radius:8px;max-width:100%}
.plait-view code,.plait-view pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12px}
.plait-view .plait-title{font-size:18px;font-weight:600;margin:0 0 8px}
.plait-view h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #d0d7de;padding-bottom:3px}
.plait-view .plait-scroll{overflow-x:auto}
.plait-view .plait-note{color:#57606a;font-style:italic}
.plait-view dl.plait-facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
.plait-view dl.plait-facts dt{color:#57606a}.plait-view dl.plait-facts dd{margin:0}
.plait-view .plait-badge{display:inline-block;padding:0 8px;border-radius:10px;color:#fff;
font-size:12px;font-weight:600;vertical-align:middle}
.plait-view .plait-legend span{display:inline-block;margin-right:12px;font-size:12px}
.plait-view .plait-legend i{display:inline-block;width:11px;height:11px;border:1.5px solid;
border-radius:3px;margin-right:4px;vertical-align:-1px}
.plait-view table{border-collapse:collapse;width:100%;font-size:13px}
.plait-view th,.plait-view td{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;
vertical-align:top}
.plait-view th{background:#f6f8fa;font-weight:600}
.plait-view td.plait-num{text-align:right;white-space:nowrap}
.plait-view tr.plait-error-row td{background:#fff5f5}
.plait-view pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px;
overflow-x:auto;white-space:pre;margin:6px 0}
.plait-view ul{margin:0;padding-left:16px}
.plait-view details summary{cursor:pointer}
.plait-view a{color:inherit;text-decoration:none}
""".strip()


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _prefix(*parts: str) -> str:
    """A stable id prefix for one view, unique enough to share a notebook page."""
    digest = hashlib.sha1("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()
    return f"plait-{digest[:10]}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# -- pipelines ----------------------------------------------------------------------------------
def pipeline_to_html(pipeline: PipelineLike) -> str:
    """A small self-contained HTML fragment drawing ``pipeline`` (for ``_repr_html_``).

    Args:
        pipeline: The pipeline to draw.

    Returns:
        A ``<div>`` with its own scoped ``<style>``, an inline SVG of the graph and the
        text listing in a collapsed ``<details>``.
    """
    graph = build_graph(pipeline)
    prefix = _prefix("pipeline", graph.name, *graph.steps)
    svg = draw_graph(
        graph,
        id_prefix=prefix,
        style_of=_pipeline_style,
        subtitle=lambda node: ", ".join(node.tags),
    )
    return (
        f'<div class="plait-view plait-pipeline" id="{prefix}">'
        f"<style>{_CSS}</style>"
        f'<div class="plait-title">Pipeline <code>{_esc(graph.name)}</code> · '
        f"{_plural(len(graph.steps), 'step')}</div>"
        f'<div class="plait-scroll">{svg}</div>'
        f"<details><summary>Text listing</summary>"
        f"<pre>{_esc(_listing(pipeline))}</pre></details></div>"
    )


def _listing(pipeline: PipelineLike) -> str:
    """The text listing, cut after :data:`_MAX_LISTED` steps to keep notebooks light."""
    lines = pipeline_to_ascii(pipeline).splitlines()
    if len(lines) <= _MAX_LISTED + 1:
        return "\n".join(lines)
    rest = len(lines) - 1 - _MAX_LISTED
    return "\n".join([*lines[: _MAX_LISTED + 1], f"... and {rest} more (see to_ascii())"])


def _pipeline_style(node: Node) -> OutcomeStyle:
    if node.kind == "input":
        return _INPUT_STYLE
    return _OPTIONAL_STYLE if "optional" in node.tags else _STEP_STYLE


# -- runs ---------------------------------------------------------------------------------------
def run_to_html(result: RunLike, fragment: bool = False) -> str:
    """A self-contained report of a run: header, graph, timeline and per-step details.

    Args:
        result: The run to report.
        fragment: Return only the body content (a ``<div>`` with its own scoped style),
            for notebooks, instead of a whole page.

    Returns:
        HTML without any external resource (inline CSS and SVG, no script).
    """
    graph = build_run_graph(result)
    prefix = _prefix("run", result.run_id, result.pipeline)
    body = "".join(
        [
            f'<div class="plait-view plait-report" id="{prefix}"><style>{_CSS}</style>',
            _header(result),
            "<h2>Graph</h2>",
            _legend(result),
            f'<div class="plait-scroll">{_run_graph(result, graph, prefix)}</div>',
            "<h2>Timeline</h2>",
            f'<div class="plait-scroll">{draw_timeline(result)}</div>',
            "<h2>Steps</h2>",
            _table(result, graph, prefix),
            "</div>",
        ]
    )
    if fragment:
        return body
    title = _esc(f"plait run {result.run_id} · {result.pipeline}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title></head><body style="margin:16px;background:#fff">'
        f"{body}</body></html>\n"
    )


def _header(result: RunLike) -> str:
    colour = _RUN_STATUS_COLOURS.get(result.status, "#6e7781")
    counts: dict[str, int] = {}
    for record in result.steps.values():
        counts[record.status] = counts.get(record.status, 0) + 1
    tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items())
    facts = [
        ("Pipeline", f"<code>{_esc(result.pipeline)}</code>"),
        ("Status", _esc(result.status)),
        ("Duration", _esc(format_seconds(result.duration))),
        ("Started", _esc(format_timestamp(result.start_time))),
        ("Steps", _esc(f"{len(result.steps)}" + (f" ({tally})" if tally else ""))),
    ]
    params = getattr(result, "params", None)
    if isinstance(params, Mapping) and params:
        shown = ", ".join(f"{key}={_short(value)}" for key, value in params.items())
        facts.append(("Params", f"<code>{_esc(shown)}</code>"))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return (
        f'<div class="plait-title">Run <code>{_esc(result.run_id)}</code> '
        f'<span class="plait-badge" style="background:{colour}">{_esc(result.status)}</span>'
        f'</div><dl class="plait-facts">{rows}</dl>'
    )


def _legend(result: RunLike) -> str:
    present = {outcome_class(record) for record in result.steps.values()}
    items = []
    for outcome, style in OUTCOME_STYLES.items():
        if outcome in present:
            border = "dashed" if style.dashed else "solid"
            items.append(
                f'<span><i style="background:{style.fill};border-color:{style.stroke};'
                f'border-style:{border}"></i>{outcome.replace("_", " ")}</span>'
            )
    return f'<div class="plait-legend">{"".join(items)}</div>'


def _run_graph(result: RunLike, graph: Graph, prefix: str) -> str:
    def subtitle(node: Node) -> str:
        if node.kind == "input":
            return ""
        record = result.steps.get(node.name)
        text = outcome_class(record).replace("_", " ")
        if record is not None and record.status != "not_run":
            text += f" · {format_seconds(record.duration)}"
        return text

    def style_of(node: Node) -> OutcomeStyle:
        if node.kind == "input":
            return _INPUT_STYLE
        return OUTCOME_STYLES[outcome_class(result.steps.get(node.name))]

    def link_of(node: Node) -> str | None:
        return f"{prefix}-{node.id}" if node.name in result.steps else None

    return draw_graph(
        graph, id_prefix=prefix, style_of=style_of, subtitle=subtitle, link_of=link_of
    )


# -- the step table ----------------------------------------------------------------------------
def _table(result: RunLike, graph: Graph, prefix: str) -> str:
    if not result.steps:
        return '<p class="plait-note">No steps ran.</p>'
    head = "".join(f"<th>{name}</th>" for name in _COLUMNS)
    rows: list[str] = []
    for name, record in result.steps.items():
        anchor = f"{prefix}-{graph.steps[name].id}"
        rows.append(_row(name, record, anchor))
        if record.error is not None:
            rows.append(
                f'<tr class="plait-error-row"><td colspan="{len(_COLUMNS)}">'
                f"{_error_details(record.error, open_=True)}</td></tr>"
            )
        logs = _logs(name, record)
        if logs:
            rows.append(
                f'<tr class="plait-logs-row"><td colspan="{len(_COLUMNS)}">{logs}</td></tr>'
            )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _step_logs(record: StepResultLike) -> tuple[tuple[str, ...], int]:
    """A step's log lines and how many earlier ones were not kept: a recorded step has
    ``logs`` and ``logs_dropped``; a live :class:`~plait.StepResult` carries them with
    its metrics (``metrics.logs``, see :mod:`plait.run.context`)."""
    if hasattr(record, "logs_dropped"):
        return tuple(getattr(record, "logs", ())), int(record.logs_dropped)
    carried = getattr(record.metrics, "logs", None)
    if carried is None:
        return (), 0
    return tuple(carried.lines), int(carried.dropped)


def _logs(name: str, record: StepResultLike) -> str:
    lines, dropped = _step_logs(record)
    if not lines and not dropped:
        return ""
    note = f"{dropped} earlier lines not kept\n" if dropped else ""
    summary = f"Logs of <code>{_esc(name)}</code> ({_plural(len(lines), 'line')})"
    opened = " open" if record.error is not None else ""
    return (
        f'<details class="plait-logs"{opened}><summary>{summary}</summary>'
        f"<pre>{_esc(note + chr(10).join(lines))}</pre></details>"
    )


def _row(name: str, record: StepResultLike, anchor: str) -> str:
    outcome = outcome_class(record)
    style = OUTCOME_STYLES[outcome]
    status = record.status.replace("_", " ") + (" (fallback)" if record.fallback else "")
    cells = [
        f'<td style="border-left:4px solid {style.stroke}"><code>{_esc(name)}</code></td>',
        f'<td><span class="plait-badge" style="background:{style.stroke}">'
        f"{_esc(status)}</span></td>",
        f"<td>{'yes' if record.cached else ''}</td>",
        f'<td class="plait-num">{record.attempts}</td>',
        f'<td class="plait-num">{_esc(format_seconds(record.duration))}</td>',
        f"<td>{_esc(record.reason)}</td>",
        f"<td>{_versions(record.data_versions)}</td>",
        f"<td>{_metrics(record.metrics)}</td>",
        f"<td>{_failed_elements(record.failed_elements)}</td>",
    ]
    return f'<tr id="{_esc(anchor)}" class="plait-{outcome}">{"".join(cells)}</tr>'


def _versions(versions: Mapping[str, str]) -> str:
    return _list(
        f'<code title="{_esc(digest)}">{_esc(name)}: {_esc(digest[:12])}</code>'
        for name, digest in versions.items()
    )


def _metrics(metrics: Mapping[str, Any]) -> str:
    return _list(
        f"<code>{_esc(name)} = {_esc(_short(value))}</code>" for name, value in metrics.items()
    )


def _failed_elements(failed: Mapping[Any, ErrorLike]) -> str:
    return _list(
        f"<code>{_esc(_short(key))}</code>: {_error_details(error, open_=False)}"
        for key, error in failed.items()
    )


def _error_details(error: ErrorLike, *, open_: bool) -> str:
    summary = f"<strong>{_esc(error.type)}</strong>: {_esc(error.message)}"
    trace = f"<pre>{_esc(error.traceback)}</pre>" if error.traceback else ""
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{trace}</details>"


def _list(items: Iterable[str]) -> str:
    entries = "".join(f"<li>{item}</li>" for item in items)
    return f"<ul>{entries}</ul>" if entries else ""


def _short(value: object, limit: int = 60) -> str:
    """A one-line repr of ``value``, cut to ``limit`` characters."""
    text = f"{value:.4g}" if isinstance(value, float) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
