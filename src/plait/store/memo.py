"""``@cached``: memoize any function in a store, with the same keys and expiry as steps.

The key covers the function's code fingerprint (its source and the project-local code it
calls), its ``version`` label and the data version of every argument after defaults are
applied, so ``f(1)`` and ``f(x=1)`` share an entry while ``f(1)`` and ``f(1.0)`` do not.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from plait.errors import UnhashableValueError
from plait.store.cache import cache_key
from plait.store.expiry import Expiry, expire
from plait.store.fingerprint import function_fingerprint
from plait.store.hashing import data_version
from plait.store.store import SESSION, CorruptArtifact, Entry, Store, as_store

_log = logging.getLogger("plait.store")

__all__ = ["cached"]

F = TypeVar("F", bound=Callable[..., Any])
_MEMORY: Store | None = None


def _memory_store() -> Store:
    global _MEMORY
    if _MEMORY is None:
        _MEMORY = Store("memory://plait-cached")
    return _MEMORY


def _policy(
    ttl: float | timedelta | None,
    min_ttl: float | timedelta | None,
    max_ttl: float | timedelta | None,
) -> Expiry:
    if min_ttl is not None or max_ttl is not None:
        if min_ttl is None or max_ttl is None:
            raise ValueError("@cached: give both min_ttl and max_ttl, or neither")
        return expire.refresh(min_ttl, max_ttl)
    return expire.ttl(ttl) if ttl is not None else expire.never()


@overload
def cached(func: F, /) -> F: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    store: Store | str | None = ...,
    ttl: float | timedelta | None = ...,
    min_ttl: float | timedelta | None = ...,
    max_ttl: float | timedelta | None = ...,
    version: str | None = ...,
) -> Callable[[F], F]: ...


def cached(
    func: Callable[..., Any] | None = None,
    /,
    *,
    store: Store | str | None = None,
    ttl: float | timedelta | None = None,
    min_ttl: float | timedelta | None = None,
    max_ttl: float | timedelta | None = None,
    version: str | None = None,
) -> Any:
    """Memoize a function (sync or async) in a store.

    Args:
        store: A Store, directory or URL; default ``PLAIT_STORE``, else memory (this
            process only).
        ttl: Entries expire after this long.
        min_ttl: With ``max_ttl``: probabilistic refresh between the two (see
            ``expire.refresh``).
        max_ttl: See ``min_ttl``.
        version: A label; changing it invalidates every entry.

    Example:
        >>> calls = []
        >>> @cached
        ... def square(x):
        ...     calls.append(x)
        ...     return x * x
        >>> square(3), square(3), len(calls)
        (9, 9, 1)
    """
    policy = _policy(ttl, min_ttl, max_ttl)

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)
        name = f"{function.__module__}.{function.__qualname__}"

        def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
            """The call's key, or None when an argument has no data version (then the
            function just runs: nothing is looked up or stored)."""
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            try:
                inputs = {k: data_version(v) for k, v in bound.arguments.items()}
            except UnhashableValueError as exc:
                _log.info("%s: not cached, an argument has no data version (%s)", name, exc)
                return None
            return cache_key(
                {
                    "function": name,
                    "code": function_fingerprint(function),
                    "version": version,
                    "inputs": inputs,
                }
            )

        def chosen() -> Store:
            return as_store(store) or _memory_store()

        def hit(target: Store, key: str) -> tuple[bool, Any]:
            entry = target.lookup(key)
            if entry is None or not policy.fresh(
                entry.created, time.time(), same_run=False, same_session=entry.session == SESSION
            ):
                return False, None
            try:
                return True, target.get(entry.outputs["value"])
            except (CorruptArtifact, KeyError):
                return False, None

        def save(target: Store, key: str, value: Any) -> None:
            try:
                version = data_version(value)
            except UnhashableValueError as exc:
                _log.info("%s: result not cached, it has no data version (%s)", name, exc)
                return
            inline: list[tuple[str, bytes]] = []
            ref = target.put(value, version, inline=inline)
            entry = Entry(key, name, "@cached", {"value": ref}, time.time(), "", SESSION)
            target.save(entry, inline=inline)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                target, key = chosen(), key_of(args, kwargs)
                if key is None:
                    return await function(*args, **kwargs)
                found, value = hit(target, key)
                if not found:
                    value = await function(*args, **kwargs)
                    save(target, key, value)
                return value

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target, key = chosen(), key_of(args, kwargs)
            if key is None:
                return function(*args, **kwargs)
            found, value = hit(target, key)
            if not found:
                value = function(*args, **kwargs)
                save(target, key, value)
            return value

        return wrapper

    return wrap(func) if func is not None else wrap
