"""Code fingerprints: what a step's code is, ignoring what does not change behaviour.

A function's fingerprint hashes the normalised syntax tree of its source (comments,
docstrings and formatting do not count) together with the fingerprints of the
*project-local* functions and classes it refers to by global name, followed transitively
(a helper's helper counts too). Project-local means defined in a module that is not part
of the standard library, site-packages or plait itself. When source is not available
(built-ins, some REPL definitions), the bytecode, constants and names stand in for it.

A step's fingerprint adds its ``version=`` label. Values read from globals or closure
cells are not code and are not part of it: pass them as inputs or params.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import sys
import sysconfig
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from plait.steps import Step

__all__ = ["function_fingerprint", "is_project_local", "pipeline_fingerprint", "step_fingerprint"]

_CACHE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_PARSE_LOCK = threading.Lock()  # ast.parse is not thread-safe in CPython 3.11 (gh-106905)


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
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []  # step options are fingerprinted on their own
    return tree


def _source_text(obj: Any) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        with _PARSE_LOCK:
            tree = _strip(ast.parse(source))
            return ast.dump(tree, annotate_fields=False, include_attributes=False)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None


def _code_text(code: types.CodeType) -> str:
    consts = tuple(
        _code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return repr((code.co_code, consts, code.co_names))


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(p for p in sys.path if "site-packages" in p or "dist-packages" in p)
    import plait

    roots.add(next(iter(plait.__path__)))
    return tuple(sorted(roots))


def is_project_local(obj: Any) -> bool:
    """True when ``obj`` was defined in the user's own code (not a library, not plait)."""
    if isinstance(obj, types.ModuleType):
        module: types.ModuleType | None = obj
    else:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None:
        return False
    if module.__name__ == "__main__":
        return True
    filename = getattr(module, "__file__", None)
    if not filename:
        return False
    return not filename.startswith(_library_roots())


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _referenced(func: Callable[..., Any]) -> list[Any]:
    """Project-local functions and classes that ``func``'s code names as globals."""
    code = getattr(func, "__code__", None)
    namespace = getattr(func, "__globals__", None)
    if code is None or namespace is None:
        return []
    found: dict[int, Any] = {}
    names = {name for c in _codes(code) for name in c.co_names}
    for name in sorted(names):
        target = namespace.get(name)
        if isinstance(target, types.ModuleType):
            if is_project_local(target):
                for attr in sorted(names):
                    member = getattr(target, attr, None)
                    if _is_code_object(member) and is_project_local(member):
                        found[id(member)] = member
            continue
        if isinstance(target, Step):
            target = target.func
        if callable(target) and hasattr(target, "__wrapped__"):  # functools.wraps, lru_cache
            target = inspect.unwrap(target)
        if _is_code_object(target) and is_project_local(target):
            found[id(target)] = target
    return list(found.values())


def _is_code_object(obj: Any) -> bool:
    return inspect.isfunction(obj) or inspect.isclass(obj)


def _own_digest(obj: Any) -> str:
    """The digest of an object's own code (its source, with default values), cached per
    function object: a redefinition is a new object, and what its global names point to
    is followed afresh on every fingerprint."""
    code = getattr(obj, "__code__", None)
    key: Any = obj
    try:
        cached = _CACHE.get(key)
    except TypeError:  # not weak-referenceable
        cached, key = None, None
    if cached is not None:
        return cached
    text = _source_text(obj)
    if text is None:
        text = _code_text(code) if code is not None else _qualified(obj)
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    if key is not None:
        _CACHE[key] = digest
    return digest


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def function_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of a function's code and of the project-local code it calls."""
    root = inspect.unwrap(func)
    digest = hashlib.blake2b(digest_size=16)
    seen: set[int] = {id(root)}
    stack: list[Any] = [root]
    while stack:  # iterative: deep helper chains and recursion are fine
        obj = stack.pop()
        digest.update(_own_digest(obj).encode())
        members = _class_functions(obj) if inspect.isclass(obj) else _referenced(obj)
        for member in members:
            if id(member) not in seen:
                seen.add(id(member))
                stack.append(member)
    return digest.hexdigest()


def _class_functions(cls: type) -> list[Any]:
    """Functions a class's methods call (the class body itself is in its source)."""
    found: list[Any] = []
    for member in vars(cls).values():
        if inspect.isfunction(member):
            found.extend(_referenced(member))
    return found


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
    code_of = code_of or (lambda item: function_fingerprint(item.func))
    digest = hashlib.blake2b(digest_size=16)
    for item in sorted(steps, key=lambda s: s.name):
        wiring = (item.name, sorted(item.data_inputs.items()), item.outputs, item.after)
        digest.update(repr(wiring).encode())
        digest.update(f"{code_of(item)}|{item.options.version or ''}".encode())
    return digest.hexdigest()
