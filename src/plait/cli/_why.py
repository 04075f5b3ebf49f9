"""``plait why``: would a step run now, and why? A cache check that executes nothing.

The step and its upstream steps are looked up in the store in topological order, exactly
as a run would look them up (same cache keys, through the scheduler's own cache agent),
but nothing is executed and nothing is written:

- a step whose key is in the store is a *hit*, and its outputs' data versions (read from
  the entry) feed the keys of the steps after it;
- a step whose key is not there *would run*, for the reason a run would record
  (``code changed``, ``input 'x' changed``, ``config.a changed``, ``expired`` ...);
- a step that runs every time (forced, expired, ``cache=False``, a sink, or reading a
  value with no data version) *would run*, whatever its upstream steps do;
- a step fed by a step that would run cannot be decided without running it: its new
  output may equal the stored one (early cutoff). Such a step is checked as if the
  upstream output came out unchanged: if it would then hit, it *may run*; if it would
  miss anyway, it would run for that other reason.

``when=`` predicates and upstream failures are not evaluated: this is about the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from plait.cli._errors import CommandError

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["Verdict", "explain"]

Decision = Literal["hit", "run", "maybe", "unknown"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a run would do with one step, and why."""

    step: str
    decision: Decision
    reason: str
    waits_on: tuple[str, ...] = ()  # upstream steps whose new outputs decide ("maybe")


def explain(
    pipeline: Pipeline,
    step: str,
    store: Store,
    params: Mapping[str, Any],
    config: Any,
) -> list[Verdict]:
    """Verdicts for ``step`` and every step upstream of it, in topological order.

    Raises:
        CommandError: For an unknown step.
        PipelineValidationError: When the pipeline does not validate with these params.
    """
    from plait.errors import PipelineValidationError, suggest

    if step not in pipeline.steps:
        raise CommandError(
            f"pipeline {pipeline.name!r} has no step {step!r}{suggest(step, pipeline.steps)}",
            f"its steps: {', '.join(pipeline.steps)}",
        )
    plan = pipeline.plan(params, None, config)
    if plan.problems:
        raise PipelineValidationError(plan.problems, pipeline.name)
    wanted = _ancestors(step, plan.upstream)
    walker = _Walker(pipeline, plan, store, params, config)
    return [walker.check(item.name) for item in plan.order if item.name in wanted]


def _ancestors(step: str, upstream: Mapping[str, tuple[str, ...]]) -> set[str]:
    found, stack = {step}, [step]
    while stack:
        for parent in upstream.get(stack.pop(), ()):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def _runs_regardless(reason: str) -> bool:
    """Whether a miss for ``reason`` stands whatever the upstream steps produce.

    A forced or expired step, one that is not cached (``cache=False``, a sink) and one
    that reads a value with no data version run every time: checking them "as if the
    upstream output came out unchanged" could only find a hit that a run would never use.
    """
    from plait.store.cache import SINK_REASON

    return reason in ("forced", "expired", SINK_REASON) or reason.startswith(
        ("cache disabled", "not cached:")
    )


class _Walker:
    """Looks steps up one by one, in order, over a run state that never executes."""

    def __init__(
        self,
        pipeline: Pipeline,
        plan: Any,
        store: Store,
        params: Mapping[str, Any],
        config: Any,
    ) -> None:
        from plait.run.runner import new_run_id
        from plait.run.state import RunState
        from plait.store.cache import RunCache

        run_id = new_run_id()
        self.plan = plan
        self.cache = RunCache(store, pipeline.name, run_id)
        self.state = RunState(
            plan,
            run_id=run_id,
            params=pipeline.run_params(params),
            config=pipeline.config if config is None else config,
            on_error="continue",
            cache=self.cache,
        )
        self.agent: Any = self.state.agent  # built with a cache, so never None
        self.undecided: dict[str, tuple[str, ...]] = {}  # data name -> steps deciding it

    def check(self, name: str) -> Verdict:
        from plait.graph import FROM_STEP

        state, agent = self.state, self.agent
        node = state.nodes[name]
        item = node.step
        state.seen[name] = True
        if item.options.map is not None or item.options.dynamic:
            self._undecided(item, (name,))
            kind = "a map step" if item.options.map is not None else "a dynamic step"
            return Verdict(
                name,
                "unknown",
                f"{kind}: looked up element by element (or expanded) only as it runs",
                (name,),
            )
        waits = tuple(
            dict.fromkeys(
                step
                for source in self.plan.sources[name]
                if source.kind == FROM_STEP and source.data in self.undecided
                for step in self.undecided[source.data]
            )
        )
        entry, reason, ticket = agent.check(node)
        if entry is not None:
            agent.hit(node, entry)
            if waits:  # a hit only if the steps that would run reproduce their data
                return self._maybe(item, waits)
            return Verdict(name, "hit", f"cache hit (stored by run {entry.run_id})")
        if not waits or ticket is None or _runs_regardless(reason):
            self._undecided(item, (name,))
            return Verdict(name, "run", reason)
        return self._if_unchanged(name, node, ticket.parts, waits)

    def _if_unchanged(
        self, name: str, node: Any, parts: dict[str, Any], waits: tuple[str, ...]
    ) -> Verdict:
        """Check a step fed by steps that would run, as if their outputs came out the same."""
        from plait.store.cache import cache_key

        item = node.step
        last = self.cache.store.last_parts(self.cache.pipeline, name) or {}
        before = last.get("inputs") or {}
        pending = [d for d in parts["inputs"] if d in self.undecided]
        patched = {
            **parts,
            "inputs": {**parts["inputs"], **{d: before.get(d, "unknown") for d in pending}},
        }
        entry, known = self.cache.lookup(item, cache_key(patched))
        if entry is None:
            self._undecided(item, (name,))
            return Verdict(name, "run", self.cache.why(item, patched, known), waits)
        self.agent.hit(node, entry)
        return self._maybe(item, waits)

    def _maybe(self, item: Any, waits: tuple[str, ...]) -> Verdict:
        self._undecided(item, waits)
        names = ", ".join(repr(w) for w in waits)
        return Verdict(
            item.name,
            "maybe",
            f"runs only if the new output of {names} (which would run) differs from the "
            "stored one; otherwise a cache hit (early cutoff)",
            waits,
        )

    def _undecided(self, item: Any, waits: tuple[str, ...]) -> None:
        for output in item.outputs:
            self.undecided[output] = waits


def render(verdicts: list[Verdict], step: str, pipeline: str, store: str) -> str:
    """The explanation as text: the verdict on ``step`` first, then the steps upstream."""
    target = next(v for v in verdicts if v.step == step)
    headline = {
        "hit": f"step {step!r} would not run: {target.reason}",
        "run": f"step {step!r} would run: {target.reason}",
        "maybe": f"step {step!r} may run: it {target.reason}",
        "unknown": f"step {step!r} cannot be decided without running: {target.reason}",
    }[target.decision]
    lines = [headline, f"  (pipeline {pipeline!r}, store {store}; nothing was executed)"]
    upstream = [v for v in verdicts if v.step != step]
    if upstream:
        width = max(len(v.step) for v in upstream)
        lines.append("upstream steps, in order:")
        labels = {"hit": "hit", "run": "RUN", "maybe": "maybe", "unknown": "?"}
        for verdict in upstream:
            label = labels[verdict.decision]
            lines.append(f"  {verdict.step.ljust(width)}  {label:<5}  {verdict.reason}")
    return "\n".join(lines)
