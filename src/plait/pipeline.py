"""Pipelines: assembly, composition, handle-style wiring and subsets.

A :class:`Pipeline` is an ordered collection of uniquely named steps plus the config and
constant params they read. It is built either from a list of steps (wired by data names)
or inside a ``with Pipeline() as p:`` block, where calling a step adds it and returns
:class:`~plait.steps.Handle` objects that wire later calls. Both build the same graph.

The class is the facade; the work lives beside it: :mod:`plait.handles` (the ``with``
block, ``param``, wiring a call), :mod:`plait.composition` (``+`` and sub-pipelines),
:mod:`plait.selection` (``select``) and :mod:`plait.graph` (resolution and validation).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plait.errors import PipelineValidationError, Problem, StepDefinitionError
from plait.handles import _BUILDER as _BUILDER  # noqa: PLC0414 (run/runner.py imports it)
from plait.handles import (
    ParamSpec,
    active_builder,
    ordered_after,
    param,
    param_problems,
    wire_call,
)
from plait.steps import MISSING, Handle, Step

if TYPE_CHECKING:
    from plait.composition import SubPipeline, namespaced
    from plait.graph import Graph, Plan
    from plait.results import RunResult
    from plait.snapshot import Change, Snapshot

# SubPipeline, namespaced and _BUILDER are re-exported for the run layer's imports.
__all__ = ["Pipeline", "SubPipeline", "active_builder", "namespaced", "param"]


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
        datasets: Data name -> dataset (any object with ``load()``/``save(data)``, e.g.
            :class:`plait.io.CSV`): one named like an input no step produces is a source,
            one named like an output a sink (see ``docs/datasets.md``).
        experiment: The experiment its runs belong to (default: the pipeline's name);
            recorded with each run.
        version: The pipeline's version (any text, e.g. ``"1.2.0"``), recorded with each
            run.
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
        datasets: Mapping[str, Any] | None = None,
        experiment: str | None = None,
        version: str | None = None,
    ) -> None:
        if isinstance(steps, str):
            name, steps = name or steps, None
        self.name = name or "pipeline"
        self.config = config
        self.params: dict[str, Any] = dict(params or {})
        self.hooks = list(hooks)
        self.store = store
        self.datasets: dict[str, Any] = dict(datasets or {})
        self.experiment = experiment
        self.version = version
        self._steps: dict[str, Step] = {}
        self._declared: dict[str, ParamSpec] = {}
        self._graph: Graph | None = None
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self._left_out: dict[str, str] = {}  # data -> its producer left out by select()
        self._outside: frozenset[str] = frozenset()  # inputs of steps select() left out
        self._token: contextvars.Token[Pipeline | None] | None = None
        own = self._steps
        for item in steps or ():
            if type(item) is Step and item.name not in own:
                own[item.name] = item  # the usual case: no graph to forget yet
            else:
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
            for key, value in item.datasets.items():
                self.datasets.setdefault(key, value)
            return
        if not isinstance(item, Step):
            from plait.composition import SubPipeline  # loaded on first use, like graph

            if isinstance(item, SubPipeline):
                for inner in item.expand():
                    self._add_one(inner)
                return
            raise StepDefinitionError(
                f"pipeline {self.name!r}: expected a Step (decorate the function with @step), "
                f"got {item!r}"
            )
        if item.name in self._steps:
            raise StepDefinitionError(
                f"pipeline {self.name!r} already has a step named {item.name!r}; add the "
                f"second one as {item.name}.with_options(name='...')"
            )
        self._invalidate()
        self._steps[item.name] = item

    def __add__(self, other: Pipeline) -> Pipeline:
        if not isinstance(other, Pipeline):
            return NotImplemented
        from plait.composition import combine

        combined = combine(self, other)
        combined.datasets = {**other.datasets, **self.datasets}
        return combined

    def _invalidate(self) -> None:
        """Forget the graph and plans; called before ``_steps`` changes."""
        graph = self._graph
        if graph is not None:
            if graph.steps is self._steps:  # the graph shares the dict: copy it to change it
                self._steps = dict(self._steps)
            self._graph = None
        if self._plans:
            self._plans.clear()

    def _declare(self, spec: ParamSpec) -> None:
        """Declare a param (see :func:`plait.param`)."""
        self._declared[spec.name] = spec
        self._invalidate()

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
        node = wire_call(item, args, kwargs)
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
            self._invalidate()
            self._steps[after.step_name] = ordered_after(target, before.step_name)

    # -- graph --------------------------------------------------------------------
    @property
    def steps(self) -> dict[str, Step]:
        """Steps by name, in declaration order (a copy)."""
        return dict(self._steps)

    @property
    def graph(self) -> Graph:
        """The graph model of the current steps (rebuilt after a change)."""
        if self._graph is None:
            from plait.graph import Graph  # not at ``import plait``: see __getattr__ below

            self._graph = Graph(self._steps)  # shared: _invalidate copies it before a change
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
        return self._derived(plan.order, self._left_out, self._outside)

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
        from plait.selection import as_names, select

        chosen = select(
            self.graph,
            from_steps=as_names(from_steps),
            to_steps=as_names(to_steps),
            tags=as_names(tags),
            outputs=as_names(outputs),
            pipeline=self.name,
        )
        left_out = {**self._left_out, **chosen.left_out}
        return self._derived(chosen.steps, left_out, self._outside | chosen.outside)

    def _derived(
        self, steps: Iterable[Step], left_out: Mapping[str, str], outside: frozenset[str]
    ) -> Pipeline:
        """A pipeline of ``steps`` with this one's settings and the params they read."""
        new = Pipeline(
            list(steps),
            name=self.name,
            config=self.config,
            hooks=self.hooks,
            store=self.store,
        )
        needed = {data for item in new._steps.values() for data in item.data_inputs.values()}
        made = {data for item in new._steps.values() for data in item.outputs}
        new.datasets = {k: v for k, v in self.datasets.items() if k in needed or k in made}
        new.params = {k: v for k, v in self.params.items() if k in needed}
        new._declared = {k: v for k, v in self._declared.items() if k in needed}
        new._left_out, new._outside = dict(left_out), outside
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
        from plait.composition import SubPipeline

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
        from plait.graph import narrow, resolve

        merged = self.run_params(params)
        key = (frozenset(merged), None if outputs is None else tuple(outputs), check_params)
        use_cache = config is None
        if use_cache and key in self._plans:
            return self._plans[key]
        whole = self._plans.get((key[0], None, check_params)) if use_cache else None
        if whole is not None and outputs is not None and not whole.problems:
            plan = narrow(self.graph, whole, outputs, merged)  # nothing resolved twice
        else:
            plan = resolve(
                self.graph,
                params=merged,
                config=self.config if config is None else config,
                outputs=outputs,
                pipeline_name=self.name,
                left_out=self._left_out,
                outside_inputs=self._outside,
                datasets=self.datasets,
            )
        plan.datasets = self.datasets
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
        # one step a function first (a big pipeline has few functions): the warnings
        # depend on the function, so only then every step, to name each one that reads
        cached = {id(item.func): item for item in plan.order if item.options.cache and item.outputs}
        if read_warnings(cached.values()):
            for warning in read_warnings(plan.order):
                warnings.warn(warning, stacklevel=2)
        return self

    def _param_problems(self, params: Mapping[str, Any], plan: Plan) -> list[Problem]:
        """Declared params the plan reads that have no value or the wrong type; and the
        datasets' problems, which depend on the files at the time of the run."""
        problems = param_problems(self._declared, params, plan.consumed)
        if self.datasets:
            from plait.io._checks import dataset_problems

            problems.extend(dataset_problems(self.graph, plan, self.datasets))
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
        config_overrides: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
        progress: bool = False,
        target: str | None = None,
        history: Any = None,
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
            config: Merged deeply into the pipeline's config for this run when it is a
                mapping (a key given replaces only that key); any other object (a
                dataclass, a model) replaces the config.
            config_overrides: Dotted keys set over that config, e.g.
                ``{"model_options.test_size": 0.3}`` (a deep merge).
            max_concurrency: The most steps running at once, run-wide.
            progress: Show progress (a live display on a terminal, log lines elsewhere).
            target: Where the pipeline's code is, recorded with the run so a resume can
                find it (``plait ui``, ``plait runs resume``): ``"module:name"``,
                ``"/abs/flow.py:name"`` or a YAML file. None: for a resume or rerun, the
                target of its origin; else ``module:name`` when the pipeline is a
                module-level global of an importable module (looked up in the modules
                of its steps' functions); else nothing.
            history: Record the run there without a store: ``"sqlite:///runs.db"``,
                ``"duckdb:///runs.duckdb"``, ``"postgresql://..."``, ``"memory"`` (this
                process's) or a :class:`~plait.history.History`. Every step runs and no
                value is kept; runs, data versions and lineage are recorded. With a
                store, give the store its history instead (``Store(url, history=...)``).

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
            config=self._run_config(config, config_overrides),
            max_concurrency=max_concurrency,
            progress=progress,
            target=target,
            history=history,
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
        config_overrides: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
        progress: bool = False,
        target: str | None = None,
        history: Any = None,
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
            config=self._run_config(config, config_overrides),
            max_concurrency=max_concurrency,
            progress=progress,
            target=target,
            history=history,
        )

    def _run_config(self, config: Any, overrides: Mapping[str, Any] | None) -> Any:
        """The config of a run: ``config`` and ``overrides`` merged over the pipeline's."""
        if config is None and not overrides:
            return None  # the pipeline's own (and its cached plans)
        from plait.config import effective_config

        return effective_config(self.config, config, overrides)

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

    # -- versions (plait.snapshot) ---------------------------------------------------------
    def freeze(self) -> Snapshot:
        """A sealed :class:`~plait.snapshot.Snapshot` of this pipeline as it is now: its
        structure, each step's code fingerprint, source, options and defaults, its params
        and config (``verify()``, ``save(path)``, ``diff(other)``)."""
        from plait.snapshot import freeze

        return freeze(self)

    def compare_with(self, version: str, store: Any = None) -> list[Change]:
        """What changed since the last recorded run of pipeline version ``version``:
        steps added or removed, step code, and the params and config values that run
        read (see :func:`plait.snapshot.compare_with_run`).

        Raises:
            PlaitError: When the store has no run of that version.
        """
        from plait.snapshot import compare_with_run

        return compare_with_run(self, version, store if store is not None else self.store)


def __getattr__(name: str) -> Any:
    """``SubPipeline`` and ``namespaced``, re-exported for the run layer, load on first use:
    the graph model and composition are not needed by ``import plait`` (issue 16)."""
    if name in ("SubPipeline", "namespaced"):
        import plait.composition

        return getattr(plait.composition, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
