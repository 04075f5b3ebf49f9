"""Code fingerprints: what a step's code is, ignoring what does not change behaviour.

A function's fingerprint hashes

- the normalised syntax tree of its source (comments, docstrings, decorators and
  formatting do not count; without source, as for some REPL definitions, its bytecode,
  constants and names stand in);
- the fingerprints of the *project-local* functions and classes it refers to, by global
  name, through a project-local module (``helpers.scale``) or through a closure cell,
  followed transitively (a helper's helper counts too);
- the value of every plain-data constant it or those helpers read from a module global
  or a closure cell (``THRESHOLD = 1``, a tuple of column names, an enum member...; see
  :mod:`plait.store.free_variables`).

Project-local is decided by the file the code was compiled from: code is the project's
unless that file lies in the standard library, in a ``site-packages``/``dist-packages``
directory or in plait itself. It does not depend on how the module was loaded: imported,
run as ``__main__``, executed from a file without entering ``sys.modules``, or loaded by
``plait run``; nor does the module's name enter the fingerprint. The same code therefore
has the same fingerprint in every process, however it got there.

Other values a function reads from outside its arguments (a numpy array, a DataFrame,
an object, a list a step appends to) are not part of the fingerprint: :func:`free_reads`
lists them, and :func:`read_warnings` turns those of cached steps into the warnings
``Pipeline.validate()`` issues.

A step's fingerprint adds its ``version=`` label. Digests of a function's own code are
cached per function object and the bytecode scan per code object; what names point to is
looked up afresh on every fingerprint, so a rebound helper or an edited constant counts.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import hashlib
import inspect
import linecache
import os
import sys
import sysconfig
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitWarning
from plait.steps import Step
from plait.store.free_variables import constant_text, is_code_like, reads_of

__all__ = [
    "FreeRead",
    "free_reads",
    "function_fingerprint",
    "is_project_local",
    "pipeline_fingerprint",
    "read_warnings",
    "step_fingerprint",
]

_CACHE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_PARSE_LOCK = threading.Lock()  # ast.parse is not thread-safe in CPython 3.11 (gh-106905)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True, slots=True)
class FreeRead:
    """A value code reads from outside its arguments that its fingerprint does not cover.

    Attributes:
        name: The name as the code reads it (``"WEIGHTS"``, ``"settings.TABLE"``).
        type_name: The type of the value it holds now.
        closure: True for a closure variable, False for a module global.
        reader: The qualified name of the function that reads it.
    """

    name: str
    type_name: str
    closure: bool
    reader: str


# -- project-local: decided by the code's own file ------------------------------------------


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(p for p in sys.path if "site-packages" in p or "dist-packages" in p)
    import plait

    roots.update(plait.__path__)
    resolved = {os.path.realpath(root) for root in roots if root}
    return tuple(sorted(root.rstrip(os.sep) + os.sep for root in resolved))


@functools.lru_cache(maxsize=16_384)
def _is_local_file(filename: str) -> bool:
    path = os.path.realpath(filename)
    return not any(part in ("site-packages", "dist-packages") for part in path.split(os.sep)) and (
        not path.startswith(_library_roots())
    )


def _class_functions(cls: type) -> Iterator[types.FunctionType]:
    """The functions defined in a class body (methods, static and class methods, properties)."""
    for member in list(vars(cls).values()):
        target = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        if isinstance(target, property):
            yield from (f for f in (target.fget, target.fset) if inspect.isfunction(f))
        elif inspect.isfunction(target):
            yield target


def _defining_file(obj: Any, home: Mapping[str, Any] | None) -> str | None:
    """The file ``obj``'s code was compiled from, found without ``sys.modules`` when possible."""
    if isinstance(obj, types.ModuleType):
        return getattr(obj, "__file__", None)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename
    if not inspect.isclass(obj):
        return None
    for member in _class_functions(obj):
        if not member.__code__.co_filename.startswith("<"):  # skip generated (dataclass) code
            return member.__code__.co_filename
    if home is not None and home.get("__name__") == obj.__module__:  # defined beside its user
        filename = home.get("__file__")
        return filename if isinstance(filename, str) else None
    module = sys.modules.get(obj.__module__)
    return getattr(module, "__file__", None)


def is_project_local(obj: Any, home: Mapping[str, Any] | None = None) -> bool:
    """True when ``obj`` (a function, class or module) is the user's code, not a library's.

    Args:
        obj: The function, class or module.
        home: The globals of the code that refers to ``obj``: a class defined in the same
            module is found there when that module is not in ``sys.modules``.
    """
    filename = _defining_file(obj, home)
    if not filename or filename.startswith("<"):  # typed at a prompt, ``python -c``
        name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
        return name == "__main__"
    return _is_local_file(filename)


# -- a function's or class's own code --------------------------------------------------------


def _strip(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, _DEFINITIONS):
            node.decorator_list = []  # step options are fingerprinted on their own
    return tree


def _dump(tree: ast.AST) -> str:
    return ast.dump(_strip(tree), annotate_fields=False, include_attributes=False)


def _function_source(func: Any) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
        with _PARSE_LOCK:
            return _dump(ast.parse(source))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None


@functools.lru_cache(maxsize=64)
def _parse_file(filename: str, text: str) -> ast.Module | None:
    try:
        with _PARSE_LOCK:
            return ast.parse(text, filename)
    except (SyntaxError, ValueError):
        return None


def _class_source(cls: type, filename: str | None) -> str | None:
    """The class's definition, found in its file by qualified name (as ``inspect`` does,
    but without needing its module in ``sys.modules``)."""
    if not filename or filename.startswith("<"):
        return None
    tree = _parse_file(filename, "".join(linecache.getlines(filename)))
    if tree is None:
        return None
    lines = {f.__code__.co_firstlineno for f in _class_functions(cls)}
    scopes: Sequence[ast.AST] = [tree]
    for part in cls.__qualname__.split("."):
        if part == "<locals>":
            continue
        found = [
            node
            for scope in scopes
            for node in ast.walk(scope)
            if isinstance(node, _DEFINITIONS) and node.name == part and node is not scope
        ]
        if not found:
            return None
        scopes = found
    classes = [node for node in scopes if isinstance(node, ast.ClassDef)]
    if not classes:
        return None

    def holds_methods(node: ast.ClassDef) -> bool:
        end = node.end_lineno or node.lineno
        return any(node.lineno <= line <= end for line in lines)

    chosen = next((node for node in classes if holds_methods(node)), classes[-1])
    return _dump(copy.deepcopy(chosen))  # the parsed file is cached: strip a copy


def _code_text(code: types.CodeType) -> str:
    consts = tuple(
        _code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return repr((code.co_code, consts, code.co_names))


def _own_digest(obj: Any, home: Mapping[str, Any] | None = None) -> str:
    """The digest of an object's own code (its source, with default values), cached per
    function or class object: a redefinition is a new object, and what its global names
    point to is followed afresh on every fingerprint."""
    try:
        cached = _CACHE.get(obj)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return cached
    if inspect.isclass(obj):
        text = _class_source(obj, _defining_file(obj, home))
        if text is None:  # no file: its name and the code of its methods stand in
            members = sorted((f.__name__, _own_digest(f)) for f in _class_functions(obj))
            text = f"class {obj.__qualname__} {members!r}"
    else:
        text = _function_source(obj)
        code = getattr(obj, "__code__", None)
        if text is None:
            text = _code_text(code) if code is not None else getattr(obj, "__qualname__", "?")
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    with contextlib.suppress(TypeError):  # not weak-referenceable: computed each time
        _CACHE[obj] = digest
    return digest


# -- what code reads: helpers to follow, constants to include, values to warn about -----------


@dataclass(slots=True)
class _Dependencies:
    """What one function's or class's code reads, sorted out."""

    code: list[tuple[Any, Mapping[str, Any]]] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    free: list[FreeRead] = field(default_factory=list)


def _sort(
    found: _Dependencies,
    label: str,
    value: Any,
    *,
    reader: Any,
    closure: bool = False,
    mutable: bool = True,
    assigned: bool = False,
) -> None:
    """File one value that ``reader`` reads under ``label``."""
    home: Mapping[str, Any] = getattr(reader, "__globals__", {})
    if isinstance(value, Step):
        value = value.func
    if callable(value) and hasattr(value, "__wrapped__"):  # functools.wraps, lru_cache
        with contextlib.suppress(ValueError):  # a cycle of __wrapped__
            value = inspect.unwrap(value)
    if inspect.isfunction(value) or inspect.isclass(value):
        if is_project_local(value, home):
            found.code.append((value, home))
        return
    text = None if assigned else constant_text(value, mutable=mutable and not closure)
    if text is not None:
        found.constants.append(f"{label}={text}")
    elif not is_code_like(value):
        reader_name = getattr(reader, "__qualname__", "?")
        found.free.append(FreeRead(label, type(value).__qualname__, closure, reader_name))


def _function_dependencies(func: Any, found: _Dependencies) -> None:
    code = getattr(func, "__code__", None)
    namespace = getattr(func, "__globals__", None)
    if not isinstance(code, types.CodeType) or namespace is None:
        return
    reads = reads_of(code)
    for name in reads.names:
        if (name.startswith("__") and name.endswith("__")) or name not in namespace:
            continue  # module dunders; builtins and names never bound
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            if is_project_local(value):
                for attribute in (a for n, a in reads.attributes if n == name):
                    member = getattr(value, attribute, None)
                    if member is not None and not isinstance(member, types.ModuleType):
                        _sort(found, f"{name}.{attribute}", member, reader=func)
            continue
        mutable = name not in reads.mutated
        _sort(found, name, value, reader=func, mutable=mutable, assigned=name in reads.assigned)
    for name, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: the variable is not bound yet
            continue
        _sort(found, name, value, reader=func, closure=True, assigned=name in reads.assigned)


def _dependencies(obj: Any) -> _Dependencies:
    found = _Dependencies()
    if inspect.isclass(obj):
        for member in _class_functions(obj):  # their source is in the class's own
            _function_dependencies(member, found)
    else:
        _function_dependencies(obj, found)
    return found


def _analyse(func: Callable[..., Any]) -> tuple[str, tuple[FreeRead, ...]]:
    """The fingerprint of ``func`` and the free values its code reads outside it."""
    root = inspect.unwrap(func)
    digest = hashlib.blake2b(digest_size=16)
    seen: set[int] = {id(root)}
    stack: list[tuple[Any, Mapping[str, Any] | None]] = [(root, None)]
    free: dict[tuple[str, str], FreeRead] = {}
    while stack:  # iterative: deep helper chains and recursion are fine
        obj, home = stack.pop()
        digest.update(_own_digest(obj, home).encode())
        found = _dependencies(obj)
        if found.constants:
            digest.update(("|" + ";".join(found.constants)).encode())
        for read in found.free:
            free.setdefault((read.name, read.reader if read.closure else ""), read)
        for member, member_home in found.code:
            if id(member) not in seen:
                seen.add(id(member))
                stack.append((member, member_home))
    return digest.hexdigest(), tuple(free.values())


def function_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of a function's code, the project-local code it calls and the
    plain-data constants they read."""
    return _analyse(func)[0]


def free_reads(func: Callable[..., Any]) -> tuple[FreeRead, ...]:
    """Values ``func`` and its project-local helpers read that its fingerprint misses."""
    return _analyse(func)[1]


def step_fingerprint(item: Step) -> str:
    """The fingerprint of a step: its function's code (with callees) and ``version=``."""
    code = function_fingerprint(item.func)
    version = item.options.version or ""
    return hashlib.blake2b(f"{code}|{version}".encode(), digest_size=16).hexdigest()


def pipeline_fingerprint(
    steps: Iterable[Step], code_of: Callable[[Step], str] | None = None
) -> str:
    """The fingerprint of a set of steps: their wiring and code (``code_of(step)``, the
    function fingerprint by default), independent of declaration order."""
    if code_of is None:
        memo: dict[int, tuple[Any, str]] = {}  # many steps often share one function

        def code_of(item: Step) -> str:
            known = memo.get(id(item.func))
            if known is None or known[0] is not item.func:
                known = memo[id(item.func)] = (item.func, function_fingerprint(item.func))
            return known[1]

    digest = hashlib.blake2b(digest_size=16)
    for item in sorted(steps, key=lambda s: s.name):
        wiring = (item.name, sorted(item.data_inputs.items()), item.outputs, item.after)
        digest.update(repr(wiring).encode())
        digest.update(f"{code_of(item)}|{item.options.version or ''}".encode())
    return digest.hexdigest()


def read_warnings(steps: Iterable[Step]) -> list[PlaitWarning]:
    """A warning for each value a cached step reads that its fingerprint does not cover.

    Steps that are not cached (``cache=False``, sinks) read what they like.
    """
    found: list[PlaitWarning] = []
    memo: dict[int, tuple[Any, tuple[FreeRead, ...]]] = {}
    for item in steps:
        if not item.options.cache or not item.outputs:
            continue
        known = memo.get(id(item.func))
        if known is None or known[0] is not item.func:
            known = memo[id(item.func)] = (item.func, free_reads(item.func))
        if known[1]:  # most steps read nothing to warn about
            found.extend(_warning(item, read) for read in known[1])
    return found


def _warning(item: Step, read: FreeRead) -> PlaitWarning:
    kind = "closure variable" if read.closure else "global"
    root = getattr(inspect.unwrap(item.func), "__qualname__", "")
    through = "" if read.reader == root else f" (through {read.reader!r})"
    return PlaitWarning(
        f"step {item.name!r} reads the {kind} {read.name!r}{through}, a {read.type_name}, "
        f"which is not part of its fingerprint: when it changes, the cache still returns "
        f"results computed with the old value; make it an input or a param "
        f"(or give the step cache=False)",
        step=item.name,
        name=read.name,
    )
