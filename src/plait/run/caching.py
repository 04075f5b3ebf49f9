"""The scheduler's use of the cache: data versions, lookups, lazy values, checkpoints.

With a store, every value of a run has a data version (its content hash) and an artifact
in the store. A cache hit does not load anything: its outputs enter the run as
:class:`~plait.store.cache.Lazy` references carrying their data versions, so a chain of
hits costs one entry read per step. A value is loaded only when a step that actually
executes needs it, or when the caller asked for it. If loading finds the artifact damaged,
the step that produced it is recomputed on the spot (its own inputs are reloaded from
their artifacts the same way) and the run goes on; that step's record then says so
(``cached=False``, reason ``"artifact damaged, recomputed"``) and is handed to the
state's ``revised`` listeners.

A value with no data version (:class:`~plait.errors.UnhashableValueError`: a lock, a
generator, an open connection) is never guessed at: the step that made it is not cached
(its reason names the output and the cause), and a step that reads it, as an upstream
output, a param or a bound constant, has no cache key: it runs every time and says so.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from plait.errors import UnhashableValueError
from plait.graph import FROM_DATASET, Source
from plait.results import RELEASED, Ok, StepResult
from plait.run.task import Task, TaskResult, execute
from plait.steps import MISSING
from plait.store.cache import UNVERSIONED, Lazy, RunCache, Ticket, unversioned_ref
from plait.store.hashing import data_version
from plait.store.store import ArtifactRef, CorruptArtifact, Entry

if TYPE_CHECKING:
    from plait.run.compiled import Node
    from plait.run.state import RunState

__all__ = ["DAMAGED_REASON", "CacheAgent"]

DAMAGED_REASON = "artifact damaged, recomputed"

_log = logging.getLogger("plait.store")
# Node -> (node, parameter -> data name) of CacheAgent.sources: a plan's nodes outlive a
# run, so a warm run reuses them. Bounded; cleared when full.
_SOURCES: dict[int, tuple[Node, dict[str, str]]] = {}
_SOURCES_MAX = 1 << 13


class CacheAgent:
    """Data versions and cache decisions for one run over a :class:`RunState`."""

    def __init__(self, cache: RunCache, state: RunState) -> None:
        self.cache = cache
        self.state = state
        self.versions: dict[str, str] = {}  # data name -> data version
        self.artifacts: dict[str, ArtifactRef] = {}  # data name -> where it is stored
        self.damaged_elements: dict[str, int] = {}  # map step -> elements found damaged
        self.unversioned: dict[str, str] = {}  # data name -> why it has no data version
        self._static: dict[str, str] = {}

    # -- versions ----------------------------------------------------------------
    def _static_version(self, source: Source) -> str:
        found = self._static.get(source.data)
        if found is None:
            datasets = self.state.datasets
            if source.kind == FROM_DATASET and datasets is not None:
                found = datasets.version(source.data)  # its file's content: not loaded
            else:
                found = data_version(self.state._static_value(source))
            self._static[source.data] = found
        return found

    def input_versions(self, node: Node, skip: str | None = None) -> dict[str, str]:
        """Parameter -> data version of every input of ``node`` (but ``skip``).

        Keyed by parameter, not data name: the same data fed to other parameters is
        another computation.
        """
        versions: dict[str, str] = {}
        item = node.step
        for param, value in item.bound.items():
            if param != skip:  # a dynamic step's inner binding may be a remote reference
                versions[param] = data_version(self.state._local(value))
        for source in node.statics:
            if source.param != skip:
                versions[source.param] = self._static_version(source)
        seen = self.state.seen
        for param, data, producer in node.inputs:
            if param == skip:
                continue
            outcome = seen[producer]
            if outcome is True:
                versions[param] = self.versions.get(data, "unknown")
            else:
                versions[param] = type(outcome).__name__.lower()
        return versions

    def sources(self, node: Node) -> dict[str, str]:
        """Parameter -> the data name feeding it (``"<constant>"`` for bound values);
        fixed with the plan, whose nodes outlive a run, so kept between runs
        (:data:`_SOURCES`; callers must not modify it)."""
        found = _SOURCES.get(id(node))
        if found is None or found[0] is not node:
            names = {param: "<constant>" for param in node.step.bound}
            names.update({source.param: source.data for source in node.statics})
            names.update({param: data for param, data, _ in node.inputs})
            if len(_SOURCES) >= _SOURCES_MAX:
                _SOURCES.clear()
            found = _SOURCES[id(node)] = (node, names)
        return found[1]

    def unversioned_input(self, node: Node, skip: str | None = None) -> str | None:
        """Why ``node`` can have no cache key (an input with no data version), or None."""
        if not self.unversioned:
            return None
        for param, data, _ in node.inputs:
            cause = self.unversioned.get(data) if param != skip else None
            if cause is not None:
                return f"not cached: input {param!r} has no data version ({cause})"
        return None

    # -- lookups -------------------------------------------------------------------
    def check(self, node: Node) -> tuple[Entry | None, str, Ticket | None]:
        """Look the step up; return the entry to reuse (or None), the reason, a ticket
        (None when the step can have no cache key: it runs and nothing is stored)."""
        item = node.step
        unkeyed = self.unversioned_input(node)
        if unkeyed is not None:
            return None, unkeyed, None
        try:
            versions = self.input_versions(node)
        except UnhashableValueError as exc:
            param = self._unhashable_param(node)
            return None, f"not cached: input {param!r} has no data version ({exc})", None
        parts = self.cache.parts(item, versions, None, self.sources(node))
        key = self.cache.key(item, parts)
        entry, known = self.cache.lookup(item, key)
        ticket = Ticket(
            self.cache.store, key, self.cache.pipeline, self.cache.run_id, item.options.cache, parts
        )
        reason = known if entry is not None else self.cache.why(item, parts, known)
        return entry, reason, ticket

    def _unhashable_param(self, node: Node) -> str:
        """The first parameter of ``node`` whose bound or static value cannot be hashed."""
        values = dict(node.step.bound)
        for source in node.statics:
            values[source.param] = self.state._static_value(source)
        for param, value in values.items():
            try:
                data_version(self.state._local(value))
            except UnhashableValueError:
                return param
        return "?"

    def check_element(
        self, node: Node, base: dict[str, str], element: Any, lookup: bool = True
    ) -> tuple[Any, Ticket | None]:
        """Look one map element up: its value (loaded) or MISSING, and its ticket (None
        for an element with no data version: it is computed and not stored)."""
        item = node.step
        try:
            version = data_version(element)
        except UnhashableValueError:
            return MISSING, None
        parts = self.cache.parts(item, base, version, self.sources(node))
        key = self.cache.key(item, parts)
        ticket = Ticket(
            self.cache.store, key, self.cache.pipeline, self.cache.run_id, item.options.cache, parts
        )
        entry = self.cache.lookup(item, key)[0] if lookup else None
        if entry is None or "element" not in entry.outputs:
            return MISSING, ticket
        try:
            return self.cache.store.get(entry.outputs["element"]), ticket
        except CorruptArtifact as exc:
            _log.warning("%s", exc)
            self.cache.store.drop(key)
            self.damaged_elements[item.name] = self.damaged_elements.get(item.name, 0) + 1
            return MISSING, ticket

    # -- results -------------------------------------------------------------------
    def hit(self, node: Node, entry: Entry) -> dict[str, str]:
        """Enter a hit's outputs as lazy values; return their data versions."""
        versions = {}
        for output in node.step.outputs:
            ref = entry.outputs.get(output)
            if ref is None:
                continue
            versions[output] = ref.version
            self.versions[output] = ref.version
            self.artifacts[output] = ref
        return versions

    def lazy_values(self, node: Node, entry: Entry) -> tuple[Any, ...]:
        """The outputs of a hit as lazy references, in output order."""
        return tuple(Lazy(entry.outputs[o]) for o in node.step.outputs if o in entry.outputs)

    def executed(self, node: Node, result: TaskResult, ticket: Ticket | None) -> dict[str, str]:
        """Take note of an execution's stored outputs; return their data versions."""
        versions = {}
        for output, ref in (result.artifacts or {}).items():
            versions[output] = ref.version
            self.versions[output] = ref.version
            if ref.serializer == UNVERSIONED:
                self.unversioned[output] = ref.checksum  # the cause, see unversioned_ref
            elif ref.size >= 0:
                self.artifacts[output] = ref
        if ticket is not None:
            self.cache.remember(node.step, ticket.parts)
        return versions

    def version_value(self, output: str, value: Any) -> str:
        """Version a value computed on the driver (a map's list, a dynamic step's dict, the
        outputs of a step with no cache key)."""
        try:
            version = data_version(value)
        except UnhashableValueError as exc:
            ref = unversioned_ref(value, exc)
            self.unversioned[output] = ref.checksum
            version = ref.version
        self.versions[output] = version
        return version

    def unversioned_outputs(self, node: Node) -> str | None:
        """Why ``node``'s outputs were not cached (one has no data version), or None."""
        for output in node.step.outputs:
            cause = self.unversioned.get(output)
            if cause is not None:
                return f"not cached: output {output!r} has no data version ({cause})"
        return None

    # -- loading -------------------------------------------------------------------
    def load(self, data: str) -> Any:
        """The value of ``data``, loading a lazy one; a damaged artifact is recomputed."""
        values = self.state.values
        value = values.get(data, values)
        if value is values:  # released: reload from its artifact
            ref = self.artifacts[data]
        elif isinstance(value, Lazy):
            ref = value.ref
        else:
            return value
        try:
            loaded = self.cache.store.get(ref)
        except CorruptArtifact as exc:
            _log.warning("%s", exc)
            loaded = self._recompute(data, ref)
        if data in values:
            values[data] = loaded
        return loaded

    def _recompute_map(
        self, node: Node, kwargs: dict[str, Any], ticket: Ticket | None
    ) -> TaskResult:
        """Recompute a map step here, element by element (their entries are rewritten)."""
        from plait.run.mapping import assemble

        item, mapped = node.step, node.step.options.map
        assert mapped is not None
        collection = kwargs[mapped]
        keys = list(collection) if isinstance(collection, dict) else list(range(len(collection)))
        items = list(collection.values()) if isinstance(collection, dict) else list(collection)
        base = self.input_versions(node, skip=mapped)
        results: list[Any] = []
        for key, element in zip(keys, items, strict=True):
            _, element_ticket = self.check_element(node, base, element, lookup=False)
            task = Task(item, {**kwargs, mapped: element}, self.state.run_id, key, element_ticket)
            done = execute(task)
            if not done.ok:
                return done
            results.append(done.values[0])
        result = TaskResult(
            True, values=assemble(item, keys, results, isinstance(collection, dict))
        )
        if ticket is not None:
            from plait.store.cache import persist

            result.artifacts = persist(ticket, item, result.values, MISSING)
        return result

    def _recompute(self, data: str, ref: ArtifactRef) -> Any:
        """Run the producer of ``data`` again, here, and store its outputs afresh."""
        state = self.state
        producer = state.producers[data]
        node = state.nodes[producer]
        record = state.results.get(producer)
        if record is not None and record.cache_key:
            self.cache.store.drop(record.cache_key)
        self.cache.store.delete_artifact(ref.path)
        kwargs = dict(node.step.bound)
        for source in node.statics:
            kwargs[source.param] = state._static_value(source)
        for param, upstream, _ in node.inputs:
            kwargs[param] = self.load(upstream)
        _, _, ticket = self.check(node)
        if node.step.options.map is not None:
            result = self._recompute_map(node, kwargs, ticket)
        else:
            result = execute(Task(node.step, kwargs, state.run_id, ticket=ticket))
        if not result.ok:
            raise CorruptArtifact(
                f"{data!r} was damaged in the store and recomputing step {producer!r} failed: "
                f"{result.error}"
            ) from result.error
        versions = self.executed(node, result, ticket)
        for output, value in zip(node.step.outputs, result.values, strict=False):
            if output in state.values:
                state.values[output] = value
        if record is not None and isinstance(record.outcome, Ok):
            self._revise(record, result, ticket.key if ticket else None, versions)
        return result.values[node.step.outputs.index(data)]

    def _revise(
        self, record: StepResult, result: TaskResult, key: str | None, versions: dict[str, str]
    ) -> None:
        """A hit that was recomputed is no hit: say so, and tell the ``revised`` listeners
        (hooks saw the step end once already and are not told twice)."""
        from plait.run.finishing import outcome_value

        item = self.state.nodes[record.name].step
        values = self.state.values
        record.outcome = Ok(
            outcome_value(item, tuple(values.get(o, RELEASED) for o in item.outputs))
        )
        record.cached = False
        record.reason = DAMAGED_REASON
        record.attempts = result.attempts
        record.duration = result.duration
        record.start_time, record.end_time = result.start, result.end
        record.cache_key = key
        record.data_versions.update(versions)
        for listener in self.state.revised:
            listener(record)
