"""Code fingerprints: what a step's code is, ignoring what does not change behaviour.

A step's fingerprint hashes the normalised syntax tree of its function (comments,
docstrings and formatting do not count) and its ``version=`` label. When the source is not
available (built-ins, C extensions, some REPL definitions) the compiled bytecode and
constants stand in for it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from plait.steps import Step

__all__ = ["function_fingerprint", "step_fingerprint"]

_CACHE: dict[Any, str] = {}


def _strip_docstrings(tree: ast.AST) -> ast.AST:
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
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []  # the decorator's options are fingerprinted separately
    return tree


def _source_text(func: Callable[..., Any]) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = _strip_docstrings(ast.parse(source))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _code_text(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    if code is None:
        return repr(func)
    return repr((code.co_code, code.co_consts, code.co_names))


def function_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of a function's code, stable across cosmetic edits and processes."""
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    key = code if code is not None else id(target)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    text = _source_text(target) or _code_text(target)
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    _CACHE[key] = digest
    return digest


def step_fingerprint(item: Step) -> str:
    """The fingerprint of a step: its function's code and its ``version=`` label."""
    code = function_fingerprint(item.func)
    version = item.options.version or ""
    return hashlib.blake2b(f"{code}|{version}".encode(), digest_size=16).hexdigest()
