"""Recording a run in the store's history: the run record at start, step records as
steps end, the final status at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plait.graph import FROM_CONFIG, FROM_CONFIG_PATH
from plait.results import StepResult
from plait.store.fingerprint import pipeline_fingerprint

if TYPE_CHECKING:
    from plait.history.history import RunRecorder
    from plait.pipeline import Pipeline
    from plait.run.state import RunState
    from plait.store.cache import RunCache

__all__ = ["start_recording"]

_log = logging.getLogger("plait.history")


def _config_read(state: RunState) -> dict[str, Any]:
    """The config values the run's steps read, by their data names."""
    read: dict[str, Any] = {}
    for node in state.nodes.values():
        for source in node.statics:
            if source.kind in (FROM_CONFIG, FROM_CONFIG_PATH) and source.data != "config":
                read[source.data] = state._static_value(source)
            elif source.data == "config":
                read["config"] = repr(state.config)
    return read


def _inputs_blob(
    params: Mapping[str, Any], config: Any, outputs: Sequence[str] | None
) -> bytes | None:
    """The exact params, config and requested outputs, pickled for resume."""
    import cloudpickle

    try:
        return bytes(
            cloudpickle.dumps(
                {
                    "params": dict(params),
                    "config": config,
                    "outputs": None if outputs is None else list(outputs),
                }
            )
        )
    except Exception as exc:
        _log.warning("cannot pickle the run's params/config for resume: %s", exc)
        return None


def start_recording(
    pipeline: Pipeline,
    state: RunState,
    cache: RunCache,
    *,
    executor: str,
    tags: Sequence[str],
    outputs: Sequence[str] | None,
    origin: str | None,
) -> RunRecorder | None:
    """Record the run as started; return the recorder of its steps (None without history)."""
    store = cache.store
    if not store.has_history:
        return None
    recorder = store.history.start_run(
        run_id=state.run_id,
        pipeline=pipeline.name,
        fingerprint=pipeline_fingerprint(pipeline.graph.steps.values(), cache.code),
        params=state.params,
        config=_config_read(state),
        tags=tags,
        started_at=time.time(),
        executor=executor,
        origin_run_id=origin,
        inputs=_inputs_blob(state.params, state.config, outputs),
    )

    def record(result: StepResult) -> None:
        parts = state.key_parts.get(result.name, {})
        sources = parts.get("sources", {})
        by_data = {sources.get(p, p): v for p, v in parts.get("inputs", {}).items()}
        peak = result.metrics.get("peak_memory_bytes")  # from ProfileHook, which runs first
        recorder.step(result, by_data, parts.get("code"), peak if isinstance(peak, int) else None)

    state.listeners.append(record)
    state.before_execute = recorder.flush
    return recorder
