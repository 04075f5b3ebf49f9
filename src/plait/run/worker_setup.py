"""Setting up worker processes: the user's setup function, and the hashers and
serializers registered in the driver.

Design note
-----------
A worker process of Dask, Ray, Celery or a process pool imports the modules that hold
the steps' functions, and nothing else of the driver. Hashers and serializers registered
by another module (the pipeline's file, a ``settings`` module, a notebook cell) are
therefore missing there: an output hashed on a worker got another data version than on
the driver (its pickle instead of its registered hasher) and was stored with another
serializer. Setup code (logging, a GPU, a connection pool) had no place to run at all.

So the driver packs, into one :class:`Bundle`, the user's setup callable and a copy of
both registries, cloudpickled, with a token (the hash of the bytes). A worker installs a
bundle once per process (:func:`install`): the driver's registrations first, then the
setup function. The bundle reaches the workers:

- Dask: as a ``WorkerPlugin``, which the scheduler hands to every worker, including
  workers that join later, before they run a task; registered again when the driver's
  registries change;
- Ray, Celery, process pools: with every task (a bundle is small: a few hundred bytes
  for a few registrations), installed on the first task a worker process sees.

:func:`bundle` is cached by the identity of the registrations, so packing costs nothing
while nothing is registered anew.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError, UsageError

__all__ = ["Bundle", "bundle", "install", "resolve_setup"]

Setup = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a worker installs once: registrations and setup, pickled, and their token."""

    token: str
    data: bytes


def resolve_setup(spec: str | Setup | None) -> Setup | None:
    """A setup callable from ``"module:function"`` (imported now), a callable, or None.

    Raises:
        UsageError: When the string is malformed, the module cannot be imported or the
            name is not a callable.
    """
    if spec is None or callable(spec):
        return spec
    if not isinstance(spec, str):
        raise UsageError(f"worker setup must be 'module:function' or a callable, got {spec!r}")
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise UsageError(
            f"worker setup {spec!r}: write it as 'module:function', e.g. 'myproject.workers:setup'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"worker setup {spec!r}: cannot import module {module_name!r} ({exc}); run from "
            "the project's directory or install the project"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"worker setup {spec!r}: module {module_name!r} has no function {name!r}")
    return function  # type: ignore[no-any-return]


_LAST: list[tuple[tuple[Any, ...], Bundle | None]] = []  # (registry key, bundle): one
_LAST_LOCK = threading.Lock()


def _registrations() -> tuple[list[tuple[type, Any]], list[Any]]:
    from plait.store import hashing, serializers

    return list(hashing._CUSTOM.items()), list(serializers._REGISTERED)


def bundle(setup: Setup | None = None) -> Bundle | None:
    """The bundle of ``setup`` and the registrations of this process; None when there is
    nothing to install.

    Raises:
        PlaitError: When a registration or the setup function cannot be pickled.
    """
    hashers, custom_serializers = _registrations()
    key = (
        id(setup),
        tuple((id(kind), id(function)) for kind, function in hashers),
        tuple(map(id, custom_serializers)),
    )
    with _LAST_LOCK:
        if _LAST and _LAST[0][0] == key:
            return _LAST[0][1]
    made = _pack(setup, hashers, custom_serializers)
    with _LAST_LOCK:
        # the objects stay referenced by the key's owner (the registries, the executor)
        _LAST[:] = [(key, made)]
    return made


def _pack(setup: Setup | None, hashers: list[Any], custom_serializers: list[Any]) -> Bundle | None:
    if setup is None and not hashers and not custom_serializers:
        return None
    import cloudpickle

    try:
        data = bytes(cloudpickle.dumps((setup, hashers, custom_serializers)))
    except Exception as exc:
        raise PlaitError(
            "the worker setup function or a registered hasher or serializer cannot be "
            f"pickled to reach the workers ({type(exc).__name__}: {exc}); define them in a "
            "module the workers can import"
        ) from exc
    return Bundle(hashlib.blake2b(data, digest_size=16).hexdigest(), data)


_INSTALLED: set[str] = set()  # tokens of the bundles installed in this process
_INSTALL_LOCK = threading.Lock()


def install(item: Bundle | None) -> None:
    """Worker side: install ``item`` unless this process already did.

    The driver's hashers replace this process's for the same class; its serializers are
    added in front (one of the same name is replaced). Then the setup function runs.

    Raises:
        PlaitError: When the bundle does not load here, or the setup function raises.
    """
    if item is None or item.token in _INSTALLED:
        return
    with _INSTALL_LOCK:
        if item.token in _INSTALLED:
            return
        setup, hashers, custom_serializers = _load(item)
        _register(hashers, custom_serializers)
        if setup is not None:
            try:
                setup()
            except Exception as exc:
                raise PlaitError(
                    f"the worker setup function {_name(setup)} raised {type(exc).__name__}: {exc}"
                ) from exc
        _INSTALLED.add(item.token)


def _load(item: Bundle) -> tuple[Setup | None, list[Any], list[Any]]:
    import cloudpickle

    try:
        loaded: tuple[Setup | None, list[Any], list[Any]] = cloudpickle.loads(item.data)
    except Exception as exc:
        raise PlaitError(
            "the worker setup and the driver's registered hashers and serializers do not "
            f"load on this worker ({type(exc).__name__}: {exc}); install the modules they "
            "come from on the workers"
        ) from exc
    return loaded


def _register(hashers: list[tuple[type, Any]], custom_serializers: list[Any]) -> None:
    from plait.store import hashing, serializers

    for kind, function in hashers:
        hashing._CUSTOM[kind] = function
    names = {item.name for item in custom_serializers}
    kept = [item for item in serializers._REGISTERED if item.name not in names]
    serializers._REGISTERED[:] = [*custom_serializers, *kept]


def _name(function: Any) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}:{name}" if module else name
