"""Pipelines: assembly, composition, handle-style wiring and subsets.

A :class:`Pipeline` is an ordered collection of uniquely named steps plus the config and
constant params they read. It is built either from a list of steps (wired by data names)
or inside a ``with Pipeline() as p:`` block, where calling a step adds it and returns
:class:`~plait.steps.Handle` objects that wire later calls. Both build the same graph.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plait.errors import PipelineValidationError, StepDefinitionError, suggest
from plait.graph import Graph, Plan, resolve, select_steps
from plait.steps import MISSING, Handle, Step

if TYPE_CHECKING:
    from plait.results import RunResult

__all__ = ["Pipeline", "active_builder", "param"]

_BUILDER: contextvars.ContextVar[Pipeline | None] = contextvars.ContextVar(
    "plait_builder", default=None
)


def active_builder() -> Pipeline | None:
    """The pipeline of the innermost ``with Pipeline()`` block, if any."""
    return _BUILDER.get()


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A param declared with :func:`param`: its type and default."""

    name: str
    type: Any = None
    default: Any = MISSING


def param(name: str, type: Any = None, default: Any = MISSING) -> Handle:
    """Declare a run-time param inside a ``with Pipeline()`` block and return its handle.

    Args:
        name: The param's name (what ``run(params={name: ...})`` sets).
        type: Its expected type, checked when the run starts (None: any).
        default: The value used when the run does not give one.

    Raises:
        StepDefinitionError: When called outside a ``with Pipeline()`` block.
    """
    builder = active_builder()
    if builder is None:
        raise StepDefinitionError(
            f"param({name!r}) declares a param of a pipeline: call it inside "
            "'with Pipeline() as p:'"
        )
    builder._declared[name] = ParamSpec(name, type, default)
    builder._invalidate()
    return Handle(builder, None, name)


class Pipeline:
    """A DAG of steps, validated before anything runs.

    Args:
        steps: Steps in any order; or the pipeline's name, for a ``with`` block.
        name: The pipeline's name (default ``"pipeline"``).
        config: A dict, dataclass, pydantic model or object the steps may read
            (``"config"``, ``"config.a.b"`` or a top-level key by its bare name).
        params: Constant params; ``run(params=...)`` overrides them.
        hooks: Objects notified of run and step events (see :mod:`plait.observe`).
        store: Where results are kept between runs (a path, URL or Store; planned).
    """

    def __init__(
        self,
        steps: Iterable[Step | Pipeline | SubPipeline] | str | None = None,
        *,
        name: str | None = None,
        config: Any = None,
        params: Mapping[str, Any] | None = None,
        hooks: Sequence[Any] = (),
        store: Any = None,
    ) -> None:
        if isinstance(steps, str):
            name, steps = name or steps, None
        self.name = name or "pipeline"
        self.config = config
        self.params: dict[str, Any] = dict(params or {})
        self.hooks = list(hooks)
        self.store = store
        self._steps: dict[str, Step] = {}
        self._declared: dict[str, ParamSpec] = {}
        self._graph: Graph | None = None
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self._left_out: dict[str, str] = {}  # data -> its producer left out by select()
        self._outside: frozenset[str] = frozenset()  # inputs of steps select() left out
        self._token: contextvars.Token[Pipeline | None] | None = None
        for item in steps or ():
            self._add_one(item)

    # -- assembly ---------------------------------------------------------------
    def add(self, *steps: Step | Pipeline | SubPipeline) -> Pipeline:
        """Add steps (or all steps of other pipelines); returns self for chaining."""
        for item in steps:
            self._add_one(item)
        return self

    def _add_one(self, item: Step | Pipeline | SubPipeline) -> None:
        if isinstance(item, Pipeline):
            for inner in item._steps.values():
                self._add_one(inner)
            self._declared.update(item._declared)
            for key, value in item.params.items():
                self.params.setdefault(key, value)
            return
        if isinstance(item, SubPipeline):
            for inner in item.expand():
                self._add_one(inner)
            return
        if not isinstance(item, Step):
            raise StepDefinitionError(
                f"pipeline {self.name!r}: expected a Step (decorate the function with @step), "
                f"got {item!r}"
            )
        if item.name in self._steps:
            raise StepDefinitionError(
                f"pipeline {self.name!r} already has a step named {item.name!r}; add the "
                f"second one as {item.name}.with_options(name='...')"
            )
        self._steps[item.name] = item
        self._invalidate()

    def __add__(self, other: Pipeline) -> Pipeline:
        if not isinstance(other, Pipeline):
            return NotImplemented
        combined = Pipeline(
            name=self.name if self.name == other.name else f"{self.name}+{other.name}",
            config=self.config if self.config is not None else other.config,
            params={**other.params, **self.params},
            hooks=[*self.hooks, *other.hooks],
            store=self.store if self.store is not None else other.store,
        )
        combined._declared = {**other._declared, **self._declared}
        combined._steps = dict(self._steps)
        for item in other._steps.values():
            if item.name in combined._steps:
                raise StepDefinitionError(
                    f"cannot combine pipelines {self.name!r} and {other.name!r}: both have a "
                    f"step named {item.name!r}; rename one with .with_options(name='...')"
                )
            combined._steps[item.name] = item
        clashes = [p for p in combined.graph.problems if p.kind == "duplicate_output"]
        if clashes:
            raise PipelineValidationError(clashes, combined.name)
        return combined

    def _invalidate(self) -> None:
        self._graph = None
        self._plans.clear()

    # -- handle style -----------------------------------------------------------
    def __enter__(self) -> Pipeline:
        self._token = _BUILDER.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _BUILDER.reset(self._token)
            self._token = None

    def add_call(self, item: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Add ``item`` called with ``args``/``kwargs`` (handles wire, others bind)."""
        params = item.signature.params
        if len(args) > len(params):
            raise StepDefinitionError(
                f"step {item.name!r} takes {len(params)} parameters {list(params)}, "
                f"got {len(args)} positional arguments"
            )
        given = dict(zip(params, args, strict=False))
        for key, value in kwargs.items():
            if key in given:
                raise StepDefinitionError(f"step {item.name!r}: {key!r} given twice")
            if key not in params and item.signature.var_keyword is None:
                raise StepDefinitionError(
                    f"step {item.name!r} has no parameter {key!r}{suggest(key, params)}"
                )
            given[key] = value
        inputs, extra, bound = dict(item.inputs), dict(item.extra_inputs), dict(item.bound)
        after = list(item.after)
        for key, value in given.items():
            target = inputs if key in inputs else extra
            if isinstance(value, Handle):
                if value.data is None:
                    raise StepDefinitionError(
                        f"step {item.name!r}: {key!r} is wired to step {value.step_name!r}, "
                        f"which has no output; use '>>' for an ordering-only dependency"
                    )
                target[key] = value.data
                bound.pop(key, None)
            else:
                target[key] = key
                bound[key] = value
        node = item._rewired(
            name=item.name,
            inputs=inputs,
            extra_inputs=extra,
            outputs=item.outputs,
            after=tuple(after),
            bound=bound,
        )
        self._add_one(node)
        if not node.outputs:
            return Handle(self, node.name, None)
        handles = tuple(Handle(self, node.name, out) for out in node.outputs)
        return handles[0] if len(handles) == 1 else handles

    def add_order(self, before: Handle, after: Handle) -> None:
        """Make ``after``'s step wait for ``before``'s step (the ``>>`` operator)."""
        if before.step_name is None or after.step_name is None:
            raise StepDefinitionError("'>>' orders steps; a param handle has no step to order")
        target = self._steps[after.step_name]
        if before.step_name not in target.after:
            self._steps[after.step_name] = target._rewired(
                name=target.name,
                inputs=target.inputs,
                extra_inputs=target.extra_inputs,
                outputs=target.outputs,
                after=(*target.after, before.step_name),
                bound=target.bound,
            )
            self._invalidate()

    # -- graph --------------------------------------------------------------------
    @property
    def steps(self) -> dict[str, Step]:
        """Steps by name, in declaration order (a copy)."""
        return dict(self._steps)

    @property
    def graph(self) -> Graph:
        """The graph model of the current steps (rebuilt after a change)."""
        if self._graph is None:
            self._graph = Graph(self._steps.values())
        return self._graph

    @property
    def order(self) -> tuple[Step, ...]:
        """The steps in a stable topological order (computed once per change)."""
        graph = self.graph
        if graph.order_view is None:
            graph.order_view = tuple(graph.order)
        return graph.order_view

    @property
    def producers(self) -> Mapping[str, str]:
        """Data name -> the step producing it (a read-only view)."""
        return MappingProxyType(self.graph.producers)

    @property
    def fingerprint(self) -> str:
        """A hash of the structure and every step's code; changes when any of them does."""
        from plait.store.fingerprint import pipeline_fingerprint

        return pipeline_fingerprint(self._steps.values())

    def subset(self, outputs: Sequence[str]) -> Pipeline:
        """A new pipeline with only the steps needed to compute ``outputs``."""
        plan = self.plan(params=None, outputs=outputs, check_params=False)
        if plan.problems:
            raise PipelineValidationError(plan.problems, self.name)
        sub = Pipeline(
            [s for s in plan.order],
            name=self.name,
            config=self.config,
            hooks=self.hooks,
            store=self.store,
        )
        needed = {d for s in plan.order for d in s.data_inputs.values()}
        sub.params = {k: v for k, v in self.params.items() if k in needed}
        sub._declared = {k: v for k, v in self._declared.items() if k in needed}
        sub._left_out, sub._outside = dict(self._left_out), self._outside
        return sub

    def select(
        self,
        *,
        from_steps: str | Iterable[str] | None = None,
        to_steps: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        outputs: str | Iterable[str] | None = None,
    ) -> Pipeline:
        """A new pipeline of the steps that every given selector picks (the intersection).

        Values that selected steps read from steps left out become params of the new
        pipeline: a run must give them (``params={name: ...}``), and validation names the
        left-out step that would have made each one. Params only left-out steps read are
        ignored, as with ``run(outputs=...)``.

        Args:
            from_steps: These steps and every step downstream of them.
            to_steps: These steps and every step upstream of them (what they need).
            tags: The steps tagged (``@step(tags=[...])``) with any of these tags.
            outputs: The steps needed to compute these data names (or sink steps).

        Returns:
            A new pipeline with the same name, config, params, hooks and store.

        Raises:
            UsageError: For an unknown step, tag or output (with suggestions), a selection
                that picks no step, or an output whose step another selector leaves out.

        Example:
            >>> p.select(from_steps="clean", tags=["report"])  # doctest: +SKIP
        """
        names = select_steps(
            self.graph,
            from_steps=_as_names(from_steps),
            to_steps=_as_names(to_steps),
            tags=_as_names(tags),
            outputs=_as_names(outputs),
            pipeline=self.name,
        )
        chosen = [item for item in self._steps.values() if item.name in names]
        left = [item for item in self._steps.values() if item.name not in names]
        new = Pipeline(
            [_without_after(item, names) for item in chosen],
            name=self.name,
            config=self.config,
            hooks=self.hooks,
            store=self.store,
        )
        needed = {d for item in chosen for d in item.data_inputs.values()}
        new.params = {k: v for k, v in self.params.items() if k in needed}
        new._declared = {k: v for k, v in self._declared.items() if k in needed}
        producers = self.graph.producers
        new._left_out = dict(self._left_out)
        new._left_out.update(
            {d: producers[d] for d in needed if d in producers and producers[d] not in names}
        )
        new._outside = self._outside | {d for item in left for d in item.data_inputs.values()}
        return new

    def as_step(
        self,
        name: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> SubPipeline:
        """Use this pipeline inside another: its steps are inlined as ``"<namespace>.<step>"``.

        Args:
            name: The name of the sub-pipeline in the parent.
            inputs: Inner data name -> outer data name feeding it.
            outputs: Inner data name -> the outer name it is published as. Inner values not
                mapped stay addressable as ``"<namespace>.<name>"``.
            namespace: The prefix of inner names (default: ``name``).
        """
        ns = namespace if namespace is not None else name
        if ns == "config" or not ns:
            raise StepDefinitionError(f"{ns!r} is not a valid namespace for a sub-pipeline")
        return SubPipeline(self, name, dict(inputs or {}), dict(outputs or {}), ns)

    def plan(
        self,
        params: Mapping[str, Any] | None,
        outputs: Sequence[str] | None = None,
        config: Any = None,
        *,
        check_params: bool = True,
    ) -> Plan:
        """Resolve the graph for a run; cached per (param names, outputs)."""
        merged = self.run_params(params)
        key = (frozenset(merged), None if outputs is None else tuple(outputs), check_params)
        use_cache = config is None
        if use_cache and key in self._plans:
            return self._plans[key]
        plan = resolve(
            self.graph,
            params=merged,
            config=self.config if config is None else config,
            outputs=outputs,
            pipeline_name=self.name,
            left_out=self._left_out,
            outside_inputs=self._outside,
        )
        if not check_params:
            plan.problems = [p for p in plan.problems if p.kind != "unused_param"]
        if use_cache:
            self._plans[key] = plan
        return plan

    def run_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The params of a run: declared defaults, then constants, then ``params``."""
        merged = {
            name: spec.default
            for name, spec in self._declared.items()
            if spec.default is not MISSING
        }
        merged.update(self.params)
        if params:
            merged.update(params)
        return merged

    def validate(self, params: Mapping[str, Any] | None = None) -> Pipeline:
        """Raise :class:`PipelineValidationError` listing every problem; return self if none.

        A valid pipeline may still get warnings: a :class:`~plait.errors.PlaitWarning`
        (through :func:`warnings.warn`) for each value a cached step reads from a global or
        a closure that its fingerprint does not cover (a DataFrame, an object...).

        Args:
            params: The run-time params to check against (as ``run`` would receive them);
                inputs that only a run-time param would feed are missing without them.
        """
        import warnings

        from plait.store.fingerprint import read_warnings

        plan = self.plan(params)
        problems = list(plan.problems)
        problems.extend(self._param_problems(self.run_params(params), plan))
        if problems:
            raise PipelineValidationError(problems, self.name)
        for warning in read_warnings(plan.order):
            warnings.warn(warning, stacklevel=2)
        return self

    def _param_problems(self, params: Mapping[str, Any], plan: Plan) -> list[Any]:
        from plait.errors import Problem

        problems = []
        for name, spec in self._declared.items():
            if name not in plan.consumed:
                continue
            if name not in params:
                problems.append(
                    Problem(
                        "missing_param",
                        f"param {name!r} has no value and no default; "
                        f"pass params={{{name!r}: ...}}",
                    )
                )
            elif (
                spec.type is not None
                and isinstance(spec.type, type)
                and not isinstance(params[name], spec.type)
            ):
                problems.append(
                    Problem(
                        "param_type",
                        f"param {name!r} expects {spec.type.__name__}, got "
                        f"{params[name]!r} ({type(params[name]).__name__})",
                    )
                )
        return problems

    # -- running --------------------------------------------------------------------
    def run(
        self,
        params: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
        executor: Any = "sequential",
        store: Any = None,
        force: bool | Sequence[str] = False,
        on_error: str = "raise",
        tags: Sequence[str] | Mapping[str, str] | None = None,
        *,
        hooks: Sequence[Any] = (),
        config: Any = None,
        max_concurrency: int | None = None,
        progress: bool = False,
    ) -> RunResult:
        """Run the pipeline and return a :class:`~plait.RunResult`.

        Args:
            params: Values for params (override the pipeline's constants).
            outputs: Data names to compute and keep (None: everything).
            executor: ``"sequential"``, ``"threads[:N]"``, ``"processes[:N]"`` or an
                executor object.
            store: Where results are kept between runs (planned).
            force: True, or step names, to recompute despite the cache (planned).
            on_error: ``"raise"`` (stop and raise RunFailed) or ``"continue"``.
            tags: Labels recorded with the run.
            hooks: Extra hooks for this run.
            config: Replaces the pipeline's config for this run.
            max_concurrency: The most steps running at once, run-wide.
            progress: Show progress (a live display on a terminal, log lines elsewhere).

        Raises:
            PipelineValidationError: Before anything runs, listing every problem.
            RunFailed: When a step fails and ``on_error="raise"``.
        """
        from plait.run.runner import run_pipeline

        return run_pipeline(
            self,
            params=params,
            outputs=outputs,
            executor=executor,
            store=store,
            force=force,
            on_error=on_error,
            tags=tags,
            hooks=hooks,
            config=config,
            max_concurrency=max_concurrency,
            progress=progress,
        )

    async def run_async(
        self,
        params: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
        executor: Any = "sequential",
        store: Any = None,
        force: bool | Sequence[str] = False,
        on_error: str = "raise",
        tags: Sequence[str] | Mapping[str, str] | None = None,
        *,
        hooks: Sequence[Any] = (),
        config: Any = None,
        max_concurrency: int | None = None,
        progress: bool = False,
    ) -> RunResult:
        """Like :meth:`run`, awaited inside a running event loop; cancellation propagates."""
        from plait.run.runner import run_pipeline_async

        return await run_pipeline_async(
            self,
            params=params,
            outputs=outputs,
            executor=executor,
            store=store,
            force=force,
            on_error=on_error,
            tags=tags,
            hooks=hooks,
            config=config,
            max_concurrency=max_concurrency,
            progress=progress,
        )

    def resume(self, run_id: str, store: Any = None, **options: Any) -> RunResult:
        """Re-run what failed, was skipped or never ran in a recorded run; reuse the rest.

        The run's own params and config come from its record: the run id (a unique
        prefix is enough) and the store are all it takes. The resume is a new run linked
        to its origin. Other ``run`` options (executor, hooks...) may be given.
        """
        from plait.run.replay import resume

        return resume(self, run_id, store, **options)

    def rerun(
        self, run_id: str, steps: Sequence[str], store: Any = None, **options: Any
    ) -> RunResult:
        """Re-run ``steps`` of a recorded run and all their descendants; reuse the rest."""
        from plait.run.replay import rerun

        return rerun(self, run_id, steps, store, **options)

    def debug(self, run_id: str, step: str, store: Any = None) -> Any:
        """Call ``step`` in this process on the exact inputs it had in a recorded run.

        Put a breakpoint in the step's function to step through it; returns its value.
        """
        from plait.run.replay import debug_step

        return debug_step(self, run_id, step, store)

    def __call__(self, **params: Any) -> RunResult:
        """``p(x=5)`` is ``p.run(params={"x": 5})``."""
        return self.run(params=params)

    # -- presentation -----------------------------------------------------------------
    def to_ascii(self) -> str:
        """Each step in order with its inputs and outputs."""
        from plait.viz import pipeline_to_ascii

        return pipeline_to_ascii(self)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the pipeline."""
        from plait.viz import pipeline_to_mermaid

        return pipeline_to_mermaid(self)

    def to_dot(self) -> str:
        """A Graphviz DOT description of the pipeline."""
        from plait.viz import pipeline_to_dot

        return pipeline_to_dot(self)

    def _repr_html_(self) -> str:
        from plait.viz import pipeline_to_html

        return pipeline_to_html(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {
            "text/plain": repr(self),
            "text/html": self._repr_html_(),
            "text/markdown": "```mermaid\n" + self.to_mermaid() + "\n```",
        }

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}: {len(self._steps)} steps>"


def _as_names(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """One name or several, as a tuple; None stays None."""
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _without_after(item: Step, kept: Iterable[str]) -> Step:
    """``item`` without ``after=`` references to steps a selection left out."""
    after = tuple(name for name in item.after if name in kept)
    if after == item.after:
        return item
    return item._rewired(
        name=item.name,
        inputs=item.inputs,
        extra_inputs=item.extra_inputs,
        outputs=item.outputs,
        after=after,
        bound=item.bound,
    )


@dataclass(frozen=True, slots=True)
class SubPipeline:
    """A pipeline used as a part of another (see :meth:`Pipeline.as_step`)."""

    pipeline: Pipeline
    name: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    namespace: str

    def expand(self) -> list[Step]:
        """The inner steps renamed into the namespace and rewired to outer names."""
        return namespaced(self.pipeline, self.namespace, self.inputs, self.outputs)


def namespaced(
    inner: Pipeline,
    namespace: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    free: Mapping[str, str] | None = None,
) -> list[Step]:
    """Rename ``inner``'s steps into ``namespace`` and map its data names to outer ones.

    Inner outputs become ``outputs[name]`` or ``"<namespace>.<name>"``; inner inputs that no
    inner step produces become ``inputs[name]`` (or ``free[name]``, or stay as they are, to
    resolve in the parent). Inner constants and config values are bound to the steps.
    """
    produced = set(inner.graph.producers)
    unknown = [n for n in outputs if n not in produced]
    unknown += [n for n in inputs if n in produced]
    if unknown:
        raise StepDefinitionError(
            f"sub-pipeline {namespace!r}: cannot map {unknown[0]!r}: inputs= maps names the "
            f"inner pipeline consumes but does not produce; outputs= maps names it produces"
            f"{suggest(unknown[0], produced)}"
        )
    constants = inner.run_params(None)

    def outer(data: str) -> str:
        if data in produced:
            return outputs.get(data, f"{namespace}.{data}")
        if data in inputs:
            return inputs[data]
        if free is not None and data in free:
            return free[data]
        return data

    expanded = []
    for item in inner._steps.values():
        bound = dict(item.bound)
        wiring: dict[str, dict[str, str]] = {"inputs": {}, "extra": {}}
        for key, mapping in (("inputs", item.inputs), ("extra", item.extra_inputs)):
            for param_name, data in mapping.items():
                if param_name in bound:
                    wiring[key][param_name] = data
                    continue
                if data not in produced and data not in inputs and data in constants:
                    bound[param_name] = constants[data]
                elif inner.config is not None and _reads_config(data, inner):
                    bound[param_name] = _config_value(inner.config, data)
                wiring[key][param_name] = outer(data)
        expanded.append(
            item._rewired(
                name=f"{namespace}.{item.name}",
                inputs=wiring["inputs"],
                extra_inputs=wiring["extra"],
                outputs=tuple(outer(o) for o in item.outputs),
                after=tuple(f"{namespace}.{a}" for a in item.after),
                bound=bound,
            )
        )
    return expanded


def _reads_config(data: str, inner: Pipeline) -> bool:
    from plait.graph import config_keys

    return (
        data == "config"
        or data.startswith("config.")
        or (data not in inner.graph.producers and data in config_keys(inner.config))
    )


def _config_value(config: Any, data: str) -> Any:
    from plait.graph import config_lookup

    if data == "config":
        return config
    path = data.split(".")[1:] if data.startswith("config.") else [data]
    return config_lookup(config, path)
