"""The graph model: name resolution, topological order and validation.

Design note
-----------
A :class:`Graph` is built once per set of steps (a pipeline caches it until it changes).
It knows each data name's producer, each step's upstream steps, and a stable topological
order: the declaration order when it is one (checked in one pass), else Kahn's algorithm
over a FIFO ready queue seeded in declaration order (:mod:`plait._order`: iterative, over
integer indices). Nodes left over after Kahn's algorithm lie on or behind a cycle; one
cycle is extracted by an iterative walk and reported in order.

Resolution of a step's inputs depends on the run (which params are given, which config),
so it is done by :func:`resolve`, which returns a :class:`Plan`: the steps to run (pruned
to the requested outputs), where each input comes from, and every problem found. Nothing
raises until every problem has been collected. Most inputs are other steps' outputs: the
graph knows which steps have only those (``Graph.sourced``, a mapping that makes a step's
sources when read instead of keeping them), and a plan takes them as they are (the whole
mapping, when every input of every step is one and no config key is in the way). A plan
for some outputs is cut out of the problem-free plan of every step when there is one
(:func:`narrow`), so validating and then running resolves each step once.

Everything is linear in the number of steps and edges, with few objects per step (a
million-step chain is the yardstick: ``benchmarks/bench_build.py``). A graph keeps the
steps (the pipeline's own dict, not a copy), the producers, one tuple of upstream step
names per step (a step's own one-name ``outputs`` tuple when its upstream step is named
like its output) and the order; what a plan may need but validation rarely does (the
sources, the set of names read) is derived on use. The cyclic garbage collector is
paused while a large model is built (:class:`paused_collection`).

Input sources, in the order a bare data name is looked up: the whole config (``"config"``),
a path into it (``"config.a.b"``), a step's output, a source dataset (a dataset no step
produces: ``plait.io``; this module knows only its name), a param, a top-level config key,
the function parameter's default. Sources never shadow each other: ambiguity is a problem.

Step selection (``Pipeline.select``) lives in :mod:`plait.selection`, the annotation
check in :mod:`plait.typecheck` and the work of :func:`resolve` and :func:`narrow` in
:mod:`plait._resolution`; all build on this module.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from plait._order import topological_order
from plait._step_parts import MISSING, NO_ENTRIES
from plait.errors import CycleProblem, Problem, suggest
from plait.steps import Step
from plait.typecheck import compatible, type_problems

__all__ = [
    "Graph",
    "Plan",
    "Source",
    "compatible",
    "config_lookup",
    "narrow",
    "paused_collection",
    "resolve",
]

_T = TypeVar("_T")

# where a step input comes from
FROM_STEP, FROM_PARAM, FROM_CONFIG, FROM_CONFIG_PATH, FROM_DEFAULT, FROM_DATASET = range(6)


class Source(NamedTuple):
    """Where one parameter of a step gets its value (a named tuple: one per edge of the
    graph, so it is the cheapest immutable record to build)."""

    param: str
    data: str
    kind: int
    producer: str | None = None  # the producing step for FROM_STEP


@dataclass(slots=True)
class Plan:
    """The resolved, pruned graph of one run.

    Attributes:
        order: Steps to run, in topological order.
        sources: Step name -> where each of its parameters comes from.
        upstream: Step name -> distinct upstream step names (data and ``after``).
        requested: Data names to keep in the result, or None for all.
        problems: Everything wrong; the run must not start unless empty.
        warnings: Things worth telling but not fatal.
    """

    order: list[Step]
    sources: Mapping[str, tuple[Source, ...]]
    upstream: Mapping[str, tuple[str, ...]]
    requested: frozenset[str] | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    consumed: AbstractSet[str] = frozenset()  # every data name the planned steps read
    compiled: Any = None  # the scheduler's skeleton of this plan, built on first run
    datasets: Mapping[str, Any] = field(default_factory=dict)  # name -> dataset (plait.io)


class LazyNames(AbstractSet[str]):
    """A set of names computed on first use (by ``compute``, which may keep it)."""

    __slots__ = ("_compute", "_names")

    def __init__(self, compute: Callable[[], AbstractSet[str]]) -> None:
        self._compute = compute
        self._names: AbstractSet[str] | None = None

    def _get(self) -> AbstractSet[str]:
        if self._names is None:
            self._names = self._compute()
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    @classmethod
    def _from_iterable(cls, names: Iterable[_T]) -> set[_T]:
        return set(names)  # what ``|``, ``&`` and ``-`` return

    def __repr__(self) -> str:
        return f"LazyNames({set(self._get())!r})"


class Sourced(Mapping[str, tuple[Source, ...]]):
    """Step name -> its sources, for the steps whose every input is another step's output
    (not config): the graph's own resolution, which every plan shares.

    A value is made on each read from the step and the producers (a read is one dict
    look-up and a tuple or two): a graph keeps only the names of the other steps, not two
    tuples a step (a million-step chain would keep two million).
    """

    __slots__ = ("_producers", "_steps", "_unsourced")

    def __init__(
        self, steps: Mapping[str, Step], producers: Mapping[str, str], unsourced: set[str]
    ) -> None:
        self._steps = steps
        self._producers = producers
        self._unsourced = unsourced

    @property
    def producers(self) -> Mapping[str, str]:
        """Data name -> the step that makes it (the graph's own)."""
        return self._producers

    def __getitem__(
        self,
        name: str,
        _new: Any = tuple.__new__,  # a Source without NamedTuple's Python-level __new__
        _source: type[Source] = Source,
        _none: Mapping[str, Any] = NO_ENTRIES,  # locals: a read is on a run's first path
    ) -> tuple[Source, ...]:
        item = self._steps[name]
        feeds = item._feeds
        if len(feeds) == 1 and item.bound is _none and item.extra_inputs is _none:
            data = feeds[0]
            up = self._producers.get(data)
            if up is not None and not data.startswith("config"):
                return (_new(_source, (item.signature.params[0], data, FROM_STEP, up)),)
        elif name not in self._unsourced:
            found = step_sources(item, self._producers)
            if found is not None:
                return found
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._steps and name not in self._unsourced

    def __iter__(self) -> Iterator[str]:
        unsourced = self._unsourced
        return (name for name in self._steps if name not in unsourced)

    def __len__(self) -> int:
        return len(self._steps) - len(self._unsourced)


def step_sources(item: Step, producers: Mapping[str, str]) -> tuple[Source, ...] | None:
    """The sources of ``item`` when every input is another step's output (not config)."""
    get = producers.get
    made: list[Source] = []
    for param, data in item._data_pairs():
        up = get(data)
        if up is None or data.startswith("config"):
            return None
        made.append(Source(param, data, FROM_STEP, up))
    return tuple(made)


class paused_collection:  # used as a function: ``with paused_collection(n):``
    """Pause the cyclic garbage collector while a large graph model is built, if it runs.

    Building, resolving and compiling a graph allocates a few small containers per step
    and frees none of them: they hold no cycles to collect, yet each full collection
    walks every object alive, and a growing heap triggers a collection at each 25% of
    growth: several walks over the whole heap, about half the build time at a million
    steps. Paused, the new objects are looked at once, at the next collection after.
    Only for ``size`` >= 1,000 steps; the collector's state is restored on the way out
    (left alone if it was already off).
    """

    __slots__ = ("paused", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.paused = False

    def __enter__(self) -> None:
        if self.size >= 1_000 and gc.isenabled():
            gc.disable()
            self.paused = True

    def __exit__(self, *exc_info: object) -> None:
        if self.paused:
            gc.enable()


class Graph:
    """Steps indexed by name and by the data they produce, with a stable topological order.

    Args:
        steps: The steps, in declaration order; or a dict of uniquely named steps (name
            -> step), which the graph keeps as its ``steps`` without copying it (the
            caller must not change it afterwards: a pipeline copies its own on change).
    """

    def __init__(self, steps: Iterable[Step] | dict[str, Step]) -> None:
        with paused_collection(len(steps) if isinstance(steps, Sized) else 0):
            self._build(steps)

    def _build(self, steps: Iterable[Step] | dict[str, Step]) -> None:
        self.producers: dict[str, str] = {}
        self.problems: list[Problem] = []
        if isinstance(steps, dict):  # unique names already: shared, not copied
            self.steps: dict[str, Step] = steps
            annotated = self._index(steps.values(), unique=True)
        else:
            self.steps = {}
            annotated = self._index(steps, unique=False)
        self.order_view: tuple[Step, ...] | None = None
        self.upstream: dict[str, tuple[str, ...]] = {}
        # step name -> its sources when each input is another step's output (not config):
        # most steps; every plan shares them (the whole mapping, when every step has one).
        # Computed on each read, not kept: only the names of the other steps are.
        unsourced: set[str] = set()
        self.sourced: Mapping[str, tuple[Source, ...]] = Sourced(
            self.steps, self.producers, unsourced
        )
        self._read: set[str] | None = None
        self._sinks: frozenset[str] | None = None  # see needs_all
        index, declared_in_order = self._upstreams(unsourced)
        cycle: list[str] = []
        if declared_in_order:  # what Kahn's algorithm would give, known without running it
            self.order = list(self.steps.values())
        else:
            if index is None:
                index = {name: position for position, name in enumerate(self.steps)}
            self.order, cycle = topological_order(self.steps, self.upstream, index)
        if cycle:
            self.problems.append(
                CycleProblem(
                    "cycle",
                    "cycle between steps: " + " -> ".join(cycle) + "; a step cannot depend "
                    "on its own output: break the loop",
                    cycle[0],
                    cycle=tuple(cycle),
                )
            )
        if annotated:  # without a return annotation there is no type to compare
            self.problems.extend(type_problems(self))

    @property
    def read(self) -> AbstractSet[str]:
        """Every data name some step reads (computed on first use: a plan that needs it
        asks for it; most validations never do)."""
        return LazyNames(self._read_names)

    def _read_names(self) -> set[str]:
        if self._read is None:
            self._read = {data for item in self.steps.values() for _, data in item._data_pairs()}
        return self._read

    def _index(self, steps: Iterable[Step], unique: bool) -> bool:
        """Fill ``producers`` (and ``steps`` unless ``unique``: they are already there);
        True when some step annotates its return."""
        by_name, producers, annotated = self.steps, self.producers, False
        setdefault = producers.setdefault
        for item in steps:
            name = item.name
            if not unique:
                if name in by_name:
                    self.problems.append(
                        Problem(
                            "duplicate_step",
                            f"two steps are named {name!r}; give one another name with "
                            f".with_options(name=...)",
                            name,
                        )
                    )
                    continue
                by_name[name] = item
            if not annotated and "return" in item.signature.annotations:
                annotated = True
            outputs = item.outputs
            if len(outputs) == 1:  # the usual step: no loop
                other = setdefault(outputs[0], name)
                if other is not name and other != name:
                    self._duplicate_output(outputs[0], other, name)
                continue
            for output in outputs:
                other = setdefault(output, name)
                if other != name:
                    self._duplicate_output(output, other, name)
        return annotated

    def _duplicate_output(self, output: str, other: str, name: str) -> None:
        self.problems.append(
            Problem(
                "duplicate_output",
                f"{output!r} is produced by two steps, {other!r} and {name!r}; "
                f"rename one output (outputs=[...]) or drop one step",
                name,
            )
        )

    def _upstreams(self, unsourced: set[str]) -> tuple[dict[str, int] | None, bool]:
        """Fill ``upstream``: step name -> its distinct upstream steps (producers of its
        inputs, then after=), and ``unsourced``: the steps with an input that is not
        another step's output (see :class:`Sourced`). Return each step's position, if it
        was needed (else None), and whether Kahn's algorithm would keep the declaration
        order.

        It would when the steps come after their upstream steps, and the position of each
        step's last-declared upstream step never decreases along the declaration (so
        steps without upstream come first). Kahn's ready queue holds steps sorted by
        (the position of the upstream step whose end released them, own position), and
        that is then the declaration order itself. The usual way of writing a pipeline,
        a chain included, passes; anything else runs Kahn's algorithm.

        A chain's link reads the step declared just before it, whose position is known:
        positions are looked up (all computed at once) only for other upstream steps, and
        only while the declaration order still holds. At a million steps each look-up
        in a big dict is a cache miss, so the usual link makes three: its producer, its
        own upstream entry and (in ``_index``) its outputs.
        """
        steps, upstream = self.steps, self.upstream
        get = self.producers.get
        index: dict[str, int] | None = None
        in_order, last, released = True, -1, -1
        previous: Step | None = None  # the step declared just before, at position - 1
        for position, (name, item) in enumerate(steps.items()):
            feeds = item._feeds
            if (
                len(feeds) == 1
                and item.bound is NO_ENTRIES
                and item.extra_inputs is NO_ENTRIES
                and not item.after
            ):
                # one input and nothing else, the usual link: no lists
                data = feeds[0]
                up = get(data)
                if up is None:
                    unsourced.add(name)
                    ups: tuple[str, ...] = ()
                    released = -1
                else:
                    if data.startswith("config"):
                        unsourced.add(name)
                    chained = previous is not None and previous.name == up
                    made = (previous if chained and previous else steps[up]).outputs
                    if len(made) == 1:  # one tuple for equal ones (a chain's link has three)
                        if made[0] == data and made is not feeds:
                            item._feeds = made  # the same names: nothing else changes
                        ups = made if made[0] == up else (up,)
                    else:
                        ups = (up,)
                    if chained:
                        released = position - 1
                    elif in_order:
                        if index is None:
                            index = {step_name: at for at, step_name in enumerate(steps)}
                        released = index[up]
            else:
                ups = self._step_upstream(item, unsourced)
                if not ups:
                    released = -1
                elif in_order:
                    if index is None:
                        index = {step_name: at for at, step_name in enumerate(steps)}
                    released = max(index[up] for up in ups)  # declared later: out of order
            upstream[name] = ups
            if in_order:
                in_order = last <= released < position
                last = released
            previous = item
        return index, in_order

    def _step_upstream(self, item: Step, unsourced: set[str]) -> tuple[str, ...]:
        """A step's distinct upstream steps (any wiring); adds it to ``unsourced`` unless
        every input is another step's output (not config)."""
        get = self.producers.get
        found: list[str] = []
        sourced = True
        for _, data in item._data_pairs():
            up = get(data)
            if up is None or data.startswith("config"):
                sourced = False  # a param, config, dataset or default: resolved per plan
            if up is not None:
                found.append(up)
        if not sourced:
            unsourced.add(item.name)
        if item.after:
            found.extend(self._after_steps(item))
        if len(found) <= 1:
            return tuple(found)
        return tuple(dict.fromkeys(found))

    def _after_steps(self, item: Step) -> list[str]:
        found = []
        for name in item.after:
            if name in self.steps:
                found.append(name)
            else:
                self.problems.append(
                    Problem(
                        "unknown_after",
                        f"step {item.name!r}: after= names {name!r}, which is not a step"
                        f"{suggest(name, self.steps)}",
                        item.name,
                    )
                )
        return found

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """The given steps and every step they depend on (iteratively)."""
        stack = list(names)
        found: set[str] = set()
        add, pop, extend, get = found.add, stack.pop, stack.extend, self.upstream.get
        while stack:
            name = pop()
            if name not in found:
                add(name)
                extend(get(name, ()))
        return found

    def needs_all(self, names: Iterable[str]) -> bool:
        """True when every step is among ``names`` or their ancestors: when ``names``
        hold every sink (a step nothing depends on) of a graph without problems (every
        step of a DAG leads to a sink). The sinks are found once per graph; the usual
        ``outputs=[last]`` of a big pipeline then needs no walk over it."""
        if self.problems:
            return False
        if self._sinks is None:
            depended: set[str] = set().union(*self.upstream.values())
            self._sinks = frozenset(name for name in self.steps if name not in depended)
        return self._sinks.issubset(names)

    def descendants(self, names: Iterable[str]) -> set[str]:
        """The given steps and every step that depends on them."""
        downstream: dict[str, list[str]] = {}
        for name, ups in self.upstream.items():
            for up in ups:
                downstream.setdefault(up, []).append(name)
        stack = list(names)
        found: set[str] = set()
        while stack:
            name = stack.pop()
            if name not in found:
                found.add(name)
                stack.extend(downstream.get(name, ()))
        return found


def config_lookup(config: Any, path: Sequence[str]) -> Any:
    """Follow ``path`` through dict keys or attributes; return MISSING where it breaks.

    >>> config_lookup({"a": {"b": 1}}, ["a", "b"])
    1
    """
    value = config
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        else:
            value = getattr(value, part, MISSING)
        if value is MISSING:
            return MISSING
    return value


def config_keys(config: Any) -> set[str]:
    """Top-level names a config offers (dict keys, dataclass/pydantic fields, attributes)."""
    if config is None:
        return set()
    if isinstance(config, Mapping):
        return {str(key) for key in config}
    fields = getattr(type(config), "model_fields", None) or getattr(
        config, "__dataclass_fields__", None
    )
    if fields:
        return set(fields)
    return (
        {name for name in vars(config) if not name.startswith("_")}
        if hasattr(config, "__dict__")
        else set()
    )


def resolve(
    graph: Graph,
    *,
    params: Mapping[str, Any],
    config: Any,
    outputs: Sequence[str] | None,
    pipeline_name: str = "pipeline",
    left_out: Mapping[str, str] | None = None,
    outside_inputs: Iterable[str] = (),
    datasets: Iterable[str] = (),
) -> Plan:
    """Resolve every input of the steps needed for ``outputs`` and collect every problem.

    ``left_out`` maps data names to the steps that make them but were left out of a
    selection (see ``Pipeline.select``): a missing input among them is reported as such.
    Params read only by ``outside_inputs`` (inputs of left-out steps) are not unused.
    ``datasets`` names the pipeline's datasets: one that no step produces is a source.
    (The work is in :mod:`plait._resolution`.)
    """
    from plait._resolution import resolve_plan

    with paused_collection(len(graph.steps)):
        return resolve_plan(graph, params, config, outputs, left_out, outside_inputs, datasets)


def narrow(graph: Graph, plan: Plan, outputs: Sequence[str], params: Mapping[str, Any]) -> Plan:
    """The plan :func:`resolve` would return for ``outputs``, cut out of ``plan``, the
    problem-free plan of every step with the same params and config.

    Each step's sources do not depend on which steps are kept, and a param that every
    step together reads is not unused for fewer steps (the inputs of pruned steps count
    as read), so the kept steps' sources carry over and the only possible new problem is
    an unknown output. No step is resolved twice: a run after ``validate()`` does not
    pay for resolution again.
    """
    from plait._resolution import narrow_plan

    return narrow_plan(graph, plan, outputs, params)
