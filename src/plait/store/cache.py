"""Cache keys and the cache's side of a run.

A step's cache key is a Merkle hash of everything its result depends on:

- its code fingerprint (its source and the project-local code it calls) and ``version=``;
- the data version of every input: upstream outputs (their content hashes), params,
  bound constants, and the config values it actually reads;
- the contents of its declared ``input_files``;
- for one element of a map step, that element's own data version (so adding an element
  computes one element).

Because upstream outputs enter by *content*, an upstream step that re-runs and produces
identical data leaves its consumers' keys unchanged: they hit (early cutoff).

When a key misses, the reason is found by comparing the key's parts with the parts the
step had the last time it ran: ``"code changed"``, ``"input 'x' changed"``,
``"config.a changed"``, ``"file data.csv changed"``, ``"expired"``, ``"forced"``,
``"no entry"``. A step that is never reused says so: ``"cache disabled (cache=False)"``,
or for a sink (a step with no outputs, not cached unless ``cache=True``) ``"runs every
time: a sink (no outputs) is not cached"``. When nothing changed but the entry is gone
because the store's index was missing or damaged (and rebuilt empty), the reason names
that: ``"no entry: the cache index was missing and has been rebuilt"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from plait.steps import MISSING, Step
from plait.store.expiry import Expiry, Never
from plait.store.fingerprint import function_fingerprint
from plait.store.hashing import data_version, file_version
from plait.store.index import RebuiltIndex
from plait.store.store import SESSION, ArtifactRef, Entry, Store

__all__ = [
    "SINK_REASON",
    "UNVERSIONED",
    "Lazy",
    "RunCache",
    "Ticket",
    "cache_key",
    "persist",
    "unversioned_ref",
]

SINK_REASON = "runs every time: a sink (no outputs) is not cached"
UNVERSIONED = "unversioned"  # the serializer name of a value with no data version

_log = logging.getLogger("plait.store")
_NEVER = Never()
_PARTS_BATCH = 256  # key parts waiting to be written at most


@dataclass(frozen=True, slots=True)
class Lazy:
    """A stored value not loaded yet: loaded only if a step that executes needs it."""

    ref: ArtifactRef


@dataclass(slots=True)
class Ticket:
    """What a worker needs to store a task's outputs under its key."""

    store: Store
    key: str
    pipeline: str
    run_id: str
    reusable: bool
    parts: dict[str, Any] = field(default_factory=dict)
    session: str = SESSION  # the caller's process, even when a worker writes the entry


def cache_key(parts: Mapping[str, Any]) -> str:
    """The key for a set of parts: a 128-bit xxh3 hash of their typed, length-prefixed
    encoding (:func:`_encode`: no JSON, and no two different parts encode alike).

    ``sources`` (names only, for explanations) is left out of the key. The encoding
    changed with issue 16 (it was canonical JSON): entries written before are never found
    again and the steps run once more (see ``docs/trust.md``).
    """
    out = [_KEY_VERSION]
    for name in sorted(parts):
        if name != "sources":
            _encode_part(name, parts[name], out)
    return _xxh3_128("".join(out).encode("utf-8", "surrogatepass"))


def _encode_part(name: str, value: Any, out: list[str]) -> None:
    """Append one named part's encoding (the common shapes inline: a hit computes one key
    per step)."""
    append = out.append
    kind = type(value)
    append(f"{len(name)}:{name}")
    if kind is str:
        append(f"s{len(value)}:{value}")
    elif value is None:
        append("n")
    elif kind is dict and all(type(k) is str and type(v) is str for k, v in value.items()):
        append(f"d{len(value)}:")
        for key, item in sorted(value.items()):
            append(f"s{len(key)}:{key}s{len(item)}:{item}")
    elif kind is list and all(type(item) is str for item in value):
        append(f"l{len(value)}:")
        for item in value:
            append(f"s{len(item)}:{item}")
    else:
        _encode(value, out)


_KEY_VERSION = "plait-key/2;"
# Step -> (step, code fingerprint, encoded head, encoded tail) of RunCache.key: plans and
# their steps outlive a run, so a warm run reuses them. Bounded; cleared when full.
_FIXED: dict[int, tuple[Step, str, str, str]] = {}
_FIXED_MAX = 1 << 13


def _xxh3_128(data: bytes) -> str:
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(data))


def _encode(value: Any, out: list[str]) -> None:
    """Append the encoding of ``value`` to ``out``: a type tag, and a length before
    anything of variable length, so the concatenation has one reading only.

    Strings, numbers, None, booleans, lists/tuples (alike, as JSON had them) and dicts
    (items sorted by key) are encoded as such; anything else by its ``repr`` (as the JSON
    encoding's ``default=repr`` did), under a tag of its own.
    """
    kind = type(value)
    if kind is str:
        out.append(f"s{len(value)}:{value}")
    elif kind is dict:
        out.append(f"d{len(value)}:")
        try:
            items = sorted(value.items())
        except TypeError:  # keys of several types: order them by their encoding
            items = sorted(value.items(), key=lambda item: _encoded(item[0]))
        for key, item in items:
            if type(key) is str:
                out.append(f"s{len(key)}:{key}")
            else:
                _encode(key, out)
            if type(item) is str:
                out.append(f"s{len(item)}:{item}")
            else:
                _encode(item, out)
    elif kind is list or kind is tuple:
        out.append(f"l{len(value)}:")
        for item in value:
            _encode(item, out)
    elif value is None:
        out.append("n")
    elif kind is bool:
        out.append("t" if value else "f")
    elif kind is int:
        out.append(f"i{value};")
    elif kind is float:
        out.append(f"r{value!r};")
    else:
        text = repr(value)
        out.append(f"o{len(text)}:{text}")


def _encoded(value: Any) -> str:
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def unversioned_ref(value: Any, cause: BaseException) -> ArtifactRef:
    """A stand-in ref for a value with no data version: a version of its own that no other
    value shares (so no key built on it ever hits), and the cause in its checksum field.
    """
    import secrets

    why = f"a {type(value).__module__}.{type(value).__qualname__}: {cause}"
    return ArtifactRef(secrets.token_hex(16), UNVERSIONED, why[:300], -1)


def persist(
    ticket: Ticket, item: Step, values: tuple[Any, ...], element: Any
) -> dict[str, ArtifactRef]:
    """Store a task's outputs and its entry; return the outputs' artifacts.

    Runs where the values are (the worker). Never raises: a failure to store is logged and
    the run goes on with the values in memory. A value with no data version
    (:class:`~plait.errors.UnhashableValueError`) is not stored, nor is the entry: its ref
    says so (serializer :data:`UNVERSIONED`) and the step's reason will name it.
    """
    from plait.errors import UnhashableValueError

    names = ("element",) if element is not MISSING else item.outputs
    refs: dict[str, ArtifactRef] = {}
    versions: dict[str, str] = {}
    for name, value in zip(names, values, strict=False):
        try:
            versions[name] = data_version(value)
        except UnhashableValueError as exc:
            refs[name] = unversioned_ref(value, exc)
    if refs:  # an output with no data version: the entry could never be found again
        for name, version in versions.items():
            refs[name] = ArtifactRef(version, "unstored", "", -1)
        return refs
    store = ticket.store
    # small artifacts, written with the entry in one transaction (a Store; a stand-in
    # such as the history-only store takes the plain calls)
    inline: list[tuple[str, bytes]] | None = [] if isinstance(store, Store) else None
    try:
        for name, value in zip(names, values, strict=False):
            if inline is None:
                refs[name] = store.put(value, versions[name])
            else:
                refs[name] = store.put(value, versions[name], inline=inline)
        entry = Entry(
            ticket.key,
            item.name,
            ticket.pipeline,
            refs,
            time.time(),
            ticket.run_id,
            ticket.session,
            ticket.reusable,
            ticket.parts,
        )
        if inline is None:
            store.save(entry)
        else:
            store.save(entry, inline=inline)
    except Exception as exc:
        _log.warning("could not store the outputs of step %r in %s: %s", item.name, store.url, exc)
        unwritten = {path for path, _ in inline or ()}  # went with the failed transaction
        for name in names:
            ref = refs.get(name)
            if (ref is None and name in versions) or (ref is not None and ref.path in unwritten):
                # downstream keys still need the version; the value stays in memory
                refs[name] = ArtifactRef(versions[name], "unstored", "", -1)
    return refs


class RunCache:
    """The cache decisions of one run: keys, lookups, reasons.

    Args:
        store: The store.
        pipeline: The pipeline's name (entries and reasons are kept per pipeline).
        run_id: This run's id.
        force: True to recompute everything, or the names of steps to recompute.
        reuse_runs: Runs whose checkpoints may be reused even when not reusable by others
            (the origin run of a resume).
    """

    def __init__(
        self,
        store: Store,
        pipeline: str,
        run_id: str,
        force: bool | frozenset[str] = False,
        reuse_runs: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.run_id = run_id
        self.force_all = force is True
        self.forced: frozenset[str] = force if isinstance(force, frozenset) else frozenset()
        self.reuse_runs = reuse_runs
        self._code: dict[int, tuple[Any, str]] = {}  # fingerprints, fixed for the run
        self._pending_parts: list[tuple[str, str, Mapping[str, Any]]] = []
        self._pending_since = 0.0
        # the parts recorded before this run (see why()); False: ask per step
        self._recorded: frozenset[str] | Literal[False] | None = None

    def code(self, item: Step) -> str:
        """The step function's code fingerprint, computed once per run."""
        found = self._code.get(id(item.func))
        if found is None or found[0] is not item.func:
            found = (item.func, function_fingerprint(item.func))
            self._code[id(item.func)] = found
        return found[1]

    def parts(
        self,
        item: Step,
        inputs: Mapping[str, str],
        element: str | None,
        sources: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The ingredients of a key: code, version label, outputs, input and file versions.

        ``inputs`` maps each parameter to its data version; ``sources`` (parameter -> data
        name) is kept for explanations and lineage but is not part of the key.
        """
        parts: dict[str, Any] = {
            "code": self.code(item),
            "version": item.options.version,
            "outputs": list(item.outputs),
            "inputs": dict(inputs),
        }
        if item.options.input_files:
            parts["files"] = {path: _file_version(path) for path in item.options.input_files}
        if element is not None:
            parts["element"] = element
        if sources is not None:
            parts["sources"] = dict(sources)
        return parts

    def key(self, item: Step, parts: Mapping[str, Any]) -> str:
        """``cache_key(parts)`` for parts made by :meth:`parts` for ``item``, with the
        encoding of the parts that change only with the step (code, version, outputs)
        kept between runs (:data:`_FIXED`): the same string, so the same key."""
        code = self.code(item)
        found = _FIXED.get(id(item))
        if found is None or found[0] is not item or found[1] != code:
            head: list[str] = []
            _encode_part("code", code, head)
            tail: list[str] = []
            _encode_part("outputs", list(item.outputs), tail)
            _encode_part("version", item.options.version, tail)
            if len(_FIXED) >= _FIXED_MAX:
                _FIXED.clear()
            found = _FIXED[id(item)] = (item, code, _KEY_VERSION + "".join(head), "".join(tail))
        out = [found[2]]
        for name in ("element", "files", "inputs"):  # sorted, between code and outputs
            if name in parts:
                _encode_part(name, parts[name], out)
        out.append(found[3])
        return _xxh3_128("".join(out).encode("utf-8", "surrogatepass"))

    def lookup(self, item: Step, key: str) -> tuple[Entry | None, str]:
        """The entry to reuse, or None and why not."""
        if self.force_all or item.name in self.forced:
            return None, "forced"
        entry = self.store.lookup(key)
        if entry is None:
            return None, ""
        own_run = entry.run_id == self.run_id or entry.run_id in self.reuse_runs
        if not entry.reusable and not own_run:
            return None, _uncached(item)
        policy: Expiry = item.options.expire or _NEVER
        if not policy.fresh(
            entry.created, time.time(), same_run=own_run, same_session=entry.session == SESSION
        ):
            return None, "expired"
        return entry, "cache hit"

    def why(self, item: Step, parts: Mapping[str, Any], known: str) -> str:
        """Why a step runs: ``known`` if the lookup said, else the first part that changed."""
        if known:
            return known
        if not item.options.cache:
            return _uncached(item)
        if self._recorded is None:  # which steps have parts at all: one query per run
            self._recorded = self.store.recorded_parts(self.pipeline) or False
        if self._recorded is not False and not self.store.has_parts(
            self._recorded, self.pipeline, item.name
        ):
            last = None
        else:
            last = self.store.last_parts(self.pipeline, item.name)
        if last is None:  # never ran, or its parts went with a lost index
            return self.index_note(item, {}) or "no entry (first run)"
        if last.get("code") != parts.get("code"):
            return "code changed"
        if last.get("version") != parts.get("version"):
            return "version changed"
        sources = parts.get("sources") or {}
        for kind, label in (("inputs", "input"), ("files", "file")):
            before, now = last.get(kind) or {}, parts.get(kind) or {}
            for name in sorted(set(before) | set(now)):
                if before.get(name) != now.get(name):
                    data = sources.get(name, name) if kind == "inputs" else name
                    if data.startswith("config"):
                        return f"{data} changed"
                    return f"{label} {data!r} changed"
        return self.index_note(item, last) or "no entry (the last execution stored no result)"

    def index_note(self, item: Step, last: Mapping[str, Any] | None = None) -> str:
        """``"no entry: the cache index was missing and has been rebuilt"`` when the index
        was rebuilt after the step's last execution (whose entry went with it), else ``""``.
        """
        rebuilt: RebuiltIndex | None = getattr(self.store.index, "rebuilt", None)
        if rebuilt is None:
            return ""
        if last is None:
            last = self.store.last_parts(self.pipeline, item.name)
        if last is None or float(last.get("recorded_at", 0.0)) >= rebuilt.at:
            return ""
        return f"no entry: the cache index was {rebuilt.cause} and has been rebuilt"

    def remember(self, item: Step, parts: Mapping[str, Any]) -> None:
        """Record the parts of an execution (and when), for later explanations.

        Kept in memory and written in batches (:meth:`flush_parts`): at the end of the
        run, and on the way when 256 are waiting or the oldest waited a second. A step's
        own reason only ever compares with an earlier run's parts, so the run never needs
        its own unwritten ones; a killed run may lose its last second of them (a later
        miss of those steps then reads "no entry (first run)" instead of what changed).
        """
        now = time.time()
        if not self._pending_parts:
            self._pending_since = now
        self._pending_parts.append((self.pipeline, item.name, {**parts, "recorded_at": now}))
        if len(self._pending_parts) >= _PARTS_BATCH or now - self._pending_since >= 1.0:
            self.flush_parts()

    def flush_parts(self) -> None:
        """Write the parts :meth:`remember` keeps (a failure is a warning)."""
        pending, self._pending_parts = self._pending_parts, []
        if not pending:
            return
        try:
            self.store.record_many_parts(pending)
        except OSError as exc:
            _log.warning("could not record why %d step(s) ran: %s", len(pending), exc)


def _uncached(item: Step) -> str:
    """Why a step with ``cache=False`` runs: a sink's default, or the step's own choice."""
    return SINK_REASON if not item.outputs else "cache disabled (cache=False)"


def _file_version(path: str) -> str:
    try:
        return file_version(path)
    except FileNotFoundError:
        return "missing"
